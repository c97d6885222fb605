//! The five client contracts, each a thin adapter over the core use-cases: parse the wire format,
//! call a use-case with the face, render the face's own success and error bodies. No business
//! rule lives here, and no store is reachable: the domain's `TokenService` is the only way in.

pub mod body;
pub mod config;
pub mod docs;
pub mod drf;
pub mod drf_social;
pub mod flask;
pub mod http;
pub mod medods;
pub mod simplejwt;

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_domain::{Algorithm, Duration, Face, TokenProfile, TokenService};

use crate::config::DialectSettings;
use crate::http::prefixes;

/// What every dialect handler shares.
pub struct FaceContext {
    pub service: TokenService,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The minimum length of a new password, for djoser's registration message.
    pub min_password_len: usize,
}

/// The algorithms the enabled faces sign with, beside the native one.
pub fn algorithms(d: &DialectSettings) -> Vec<Algorithm> {
    let mut algs = vec![];
    if d.simplejwt.enabled || d.djoser.enabled || d.flask.enabled {
        algs.push(Algorithm::HS256);
    }
    if d.medods.enabled {
        algs.push(Algorithm::HS512);
    }
    algs
}

fn profile(profiles: &BTreeMap<String, TokenProfile>, name: &str) -> TokenProfile {
    profiles.get(name).cloned().unwrap_or_else(TokenProfile::standard)
}

fn grace(seconds: u32) -> Duration {
    Duration::seconds(i64::from(seconds))
}

/// Every enabled dialect's face: the domain data its tokens live by. drf-social-oauth2 writes
/// the native format (`native`), with its own audience.
pub fn faces(
    d: &DialectSettings,
    profiles: &BTreeMap<String, TokenProfile>,
    native: &tessera_domain::NativeFormat,
) -> Result<Vec<Face>, tessera_domain::DomainError> {
    let mut out = vec![];
    if d.medods.enabled {
        let m = &d.medods;
        out.push(Face {
            name: medods::NAME.into(),
            audience: m.audience.clone(),
            profile: profile(profiles, &m.profile),
            refresh: m.refresh_policy,
            grace: grace(m.refresh_grace_seconds),
            risk: m.risk.clone(),
            format: Arc::new(medods::MedodsFormat),
        });
    }
    if d.drf_social_oauth2.enabled {
        let s = &d.drf_social_oauth2;
        out.push(Face {
            name: drf_social::NAME.into(),
            audience: s.audience.clone(),
            profile: drf_social::profile(s)?,
            refresh: s.refresh_policy,
            grace: grace(s.refresh_grace_seconds),
            risk: s.risk.clone(),
            format: Arc::new(native.clone()),
        });
    }
    for (name, s) in [(simplejwt::SIMPLEJWT, &d.simplejwt), (simplejwt::DJOSER, &d.djoser)] {
        if s.enabled {
            out.push(Face {
                name: name.into(),
                audience: s.audience.clone(),
                profile: profile(profiles, &s.profile),
                refresh: s.refresh_policy,
                grace: grace(s.refresh_grace_seconds),
                risk: s.risk.clone(),
                format: Arc::new(simplejwt::SjFormat { era_55: s.era == "5.5" }),
            });
        }
    }
    if d.flask.enabled {
        let f = &d.flask;
        out.push(Face {
            name: flask::NAME.into(),
            audience: f.audience.clone(),
            profile: profile(profiles, &f.profile),
            refresh: f.refresh_policy,
            grace: grace(f.refresh_grace_seconds),
            risk: f.risk.clone(),
            format: Arc::new(flask::FlaskFormat { era4: f.era == "4" }),
        });
    }
    Ok(out)
}

/// Mounts every enabled dialect, each with its face from the service.
pub fn configure(
    cfg: &mut actix_web::web::ServiceConfig,
    d: &DialectSettings,
    service: &TokenService,
    drf_face: Option<Arc<drf_social::DrfFace>>,
) {
    let face = |name: &str| service.faces().get(name).cloned();
    if let Some(f) = face(medods::NAME) {
        let face = medods::MedodsFace { face: f, caller_key: d.medods.caller_key.clone().filter(|k| !k.is_empty()) };
        medods::configure(cfg, &prefixes(&d.medods.prefix, &d.medods.prefixes), face);
    }
    if let Some(face) = drf_face {
        drf_social::configure(cfg, &prefixes(&d.drf_social_oauth2.prefix, &d.drf_social_oauth2.prefixes), face);
    }
    let sj = |f: Arc<Face>, s: &config::SimpleJwtSettings, scheme: &'static str| simplejwt::SjFace {
        era_55: s.era == "5.5",
        username_field: if s.username_field == "username" { "username" } else { "email" },
        scheme,
        face: f,
    };
    if let Some(f) = face(simplejwt::SIMPLEJWT) {
        simplejwt::configure_simplejwt(cfg, &prefixes(&d.simplejwt.prefix, &d.simplejwt.prefixes), sj(f, &d.simplejwt, "Bearer"));
    }
    if let Some(f) = face(simplejwt::DJOSER) {
        simplejwt::configure_djoser(cfg, &prefixes(&d.djoser.prefix, &d.djoser.prefixes), sj(f, &d.djoser, "JWT"));
    }
    if let Some(f) = face(flask::NAME) {
        let face = flask::FlaskFace { era4: d.flask.era == "4", seed_envelope: d.flask.envelope == "seed", face: f };
        flask::configure(cfg, &prefixes(&d.flask.prefix, &d.flask.prefixes), face);
    }
}
