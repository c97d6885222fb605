//! End-to-end tests: real HTTP against a spawned Tessera on a fresh Postgres database each.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly; clippy counts only #[test] fns as tests")]

mod audit;
mod bad_dialect_input;
mod bad_input;
mod client_credentials;
mod deletions;
mod dialects;
mod discovery;
mod dpop;
mod drf_social;
mod emails;
mod faces;
mod fixtures;
mod helpers;
mod identity;
mod legacy;
mod mail;
mod medods;
mod memory;
mod metrics;
mod native;
mod nul_bytes;
mod oauth2_client;
mod openapi;
mod race;
mod routes;
mod sessions;
mod slow_clients;
mod swagger_ui;
mod throttle;
mod token_exchange;
