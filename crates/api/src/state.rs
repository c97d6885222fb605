//! What every handler shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_domain::ports::Store;
use tessera_domain::{NativeFormat, TokenProfile, TokenService};

use crate::config::Settings;

pub struct AppState {
    pub service: TokenService,
    /// How the native face writes its tokens.
    pub native: NativeFormat,
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub profiles: BTreeMap<String, TokenProfile>,
}

impl AppState {
    pub fn profile(&self, name: &str) -> Option<&TokenProfile> {
        self.profiles.get(name)
    }
}
