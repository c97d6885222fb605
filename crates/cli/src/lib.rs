//! The `tessera` binary's commands: `serve` (the server is `tessera-server`), `migrate`, and the
//! operator tooling apart from the server: the admin commands ([`cli`]), [`doctor`], the
//! [`conformance`] kit and [`import`]. `main.rs` only parses the command line.

pub mod cli;
pub mod conformance;
pub mod doctor;
pub mod import;
pub mod output;
