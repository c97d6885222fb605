//! What every handler shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_domain::{TokenProfile, TokenService};
use tessera_storage::PgStore;

use crate::config::Settings;

pub struct AppState {
    pub service: TokenService,
    pub store: PgStore,
    pub settings: Arc<Settings>,
    pub profiles: BTreeMap<String, TokenProfile>,
}

impl AppState {
    pub fn profile(&self, name: &str) -> Option<&TokenProfile> {
        self.profiles.get(name)
    }
}
