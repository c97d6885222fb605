//! Tessera's storage: the domain's repository traits implemented over Postgres with sqlx.
//!
//! Row structs stay private and the crate returns domain types. Each use-case that must be atomic
//! (rotation above all) is one repository call running in one transaction; constraint names map
//! to domain errors in one place ([`postgres::map_err`]).

pub mod postgres;

pub use postgres::{PgStore, REVOCATION_CHANNEL};
