//! What every native handler shares: the use-cases, the native API as a `Face`, the token
//! profiles, and the few settings the handlers read.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_domain::{Face, TokenProfile, TokenService};

/// The settings the native handlers read, taken from the server's configuration at start.
#[derive(Debug, Clone)]
pub struct NativeSettings {
    /// `server.max_body_bytes`: the largest request body read.
    pub max_body_bytes: usize,
    /// `server.public_url`: where clients reach the service, for the metadata's URLs.
    pub public_url: String,
    /// `tokens.issuer`: the `iss` of the tokens and the metadata's `issuer`.
    pub issuer: String,
    /// `tokens.jwks_max_age_seconds`: how long the JWKS may be cached.
    pub jwks_max_age_seconds: u32,
    /// `oauth.default_client_enabled`: a token request without a client uses the default one.
    pub default_client_enabled: bool,
    /// `oauth.default_client_id`.
    pub default_client_id: String,
    /// `oauth.default_profile`: the profile of a client whose own is unknown.
    pub default_profile: String,
    /// `oauth.require_dpop`: every token request must carry a DPoP proof.
    pub require_dpop: bool,
    /// `oauth.dpop_nonce`: DPoP proofs must carry the server's nonce.
    pub dpop_nonce: bool,
}

pub struct NativeState {
    pub service: TokenService,
    /// The native face: how its tokens are written, read and refreshed.
    pub native: Arc<Face>,
    pub settings: NativeSettings,
    pub profiles: BTreeMap<String, TokenProfile>,
}

impl NativeState {
    pub fn profile(&self, name: &str) -> Option<&TokenProfile> {
        self.profiles.get(name)
    }
}
