//! Tessera's HTTP faces, configuration and startup. `main.rs` only parses the command line.

pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod dialects;
pub mod hasher;
pub mod native;
pub mod notify;
pub mod openapi;
pub mod problem;
pub mod revocations;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use config::Settings;
pub use startup::Application;
