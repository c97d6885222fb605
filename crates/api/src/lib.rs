//! Tessera's HTTP faces, configuration and startup. `main.rs` only parses the command line.

pub mod auth;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod doctor;
pub mod hasher;
pub mod import;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod native;
pub mod notify;
pub mod openapi;
pub mod output;
pub mod problem;
pub use tessera_http::request_id;
pub mod revocations;
pub mod secrets;
pub mod slow_clients;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod throttle;
pub mod tls;

pub use config::Settings;
pub use startup::Application;

/// The five compatible APIs live in their own crate, and the HTTP pieces every API shares in
/// `tessera-http`.
pub use tessera_dialects as dialects;
pub use tessera_http::body;
