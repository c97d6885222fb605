//! Tessera's running service: the typed configuration ([`config`]), the one wiring place
//! ([`startup`]: the store, secrets, keyring, APIs, revocations, hasher and the HTTP server
//! around the native API and the five compatible ones), and what runs beside the handlers:
//! signing keys, the revocation list, password hashing, throttling, slow clients, metrics,
//! mail and webhooks, TLS. The operator tooling (the command line, doctor, the conformance
//! kit, imports) is the `tessera-cli` crate, which uses this one.

pub mod config;
pub mod hasher;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod revocations;
pub mod secrets;
pub mod slow_clients;
pub mod startup;
pub mod telemetry;
pub mod throttle;
pub mod tls;

pub use config::Settings;
pub use startup::Application;
