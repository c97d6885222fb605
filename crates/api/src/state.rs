//! What every handler shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_domain::{Face, TokenProfile, TokenService};

use crate::config::Settings;

pub struct AppState {
    pub service: TokenService,
    /// The native face: how its tokens are written, read and refreshed.
    pub native: Arc<Face>,
    pub settings: Arc<Settings>,
    pub profiles: BTreeMap<String, TokenProfile>,
    /// Password hashing: its queue is a metric.
    pub hasher: Arc<crate::hasher::BlockingHasher>,
}

impl AppState {
    pub fn profile(&self, name: &str) -> Option<&TokenProfile> {
        self.profiles.get(name)
    }
}
