//! The five client contracts, each a thin adapter over the core use-cases: parse the wire format,
//! call a use-case with the face, render the face's own success and error bodies. No business
//! rule lives here, and no store is reachable: the domain's `TokenService` is the only way in.

pub mod config;
pub mod docs;
pub mod drf;
pub mod drf_social;
pub mod flask;
pub mod medods;
pub mod simplejwt;

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_domain::{Algorithm, Duration, Face, TokenProfile, TokenService};

use crate::config::DialectSettings;
use tessera_http::request::{Mount, prefixes};

/// What every dialect handler shares.
pub struct FaceContext {
    pub service: TokenService,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// A dialect's configured algorithm (checked at start: an unknown name falls back to HS256).
pub fn algorithm(name: &str) -> Algorithm {
    Algorithm::parse(name).unwrap_or(Algorithm::HS256)
}

/// The algorithms the enabled faces sign with, beside the native one.
pub fn algorithms(d: &DialectSettings) -> Vec<Algorithm> {
    let mut algs = vec![];
    let mut add = |on: bool, alg: Algorithm| {
        if on && !algs.contains(&alg) {
            algs.push(alg);
        }
    };
    add(d.medods.enabled, Algorithm::HS512);
    add(d.drf_social_oauth2.enabled, algorithm(&d.drf_social_oauth2.algorithm));
    add(d.simplejwt.enabled, algorithm(&d.simplejwt.algorithm));
    add(d.djoser.enabled, algorithm(&d.djoser.algorithm));
    add(d.flask.enabled, algorithm(&d.flask.algorithm));
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
            format: Arc::new(tessera_domain::NativeFormat { alg: algorithm(&s.algorithm), ..native.clone() }),
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
                format: Arc::new(simplejwt::SjFormat {
                    era_55: s.era == "5.5",
                    alg: algorithm(&s.algorithm),
                    legacy: legacy_key(name, s.legacy_secret.as_ref(), &s.legacy_algorithm, tessera_domain::ORIGIN_DJANGO)?,
                }),
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
            format: Arc::new(flask::FlaskFormat {
                era4: f.era == "4",
                alg: algorithm(&f.algorithm),
                legacy: legacy_key(flask::NAME, f.legacy_secret.as_ref(), &f.legacy_algorithm, tessera_domain::ORIGIN_FLASK)?,
            }),
        });
    }
    Ok(out)
}

/// The key of a face's legacy tokens: an HMAC algorithm and a secret that is not empty.
fn legacy_key(
    face: &str,
    secret: Option<&config::LegacySecret>,
    alg: &str,
    origin: &'static str,
) -> Result<Option<tessera_domain::LegacyKey>, tessera_domain::DomainError> {
    let Some(secret) = secret else { return Ok(None) };
    let invalid = |m: String| tessera_domain::DomainError::invalid("dialects.legacy_secret", m);
    if secret.expose().is_empty() {
        return Err(invalid(format!("{face}: legacy_secret is empty")));
    }
    let alg = tessera_domain::Algorithm::parse(alg).ok_or_else(|| invalid(format!("{face}: unknown legacy_algorithm {alg}")))?;
    tessera_domain::LegacyKey::hmac(secret.expose(), alg, origin)
        .map(Some)
        .ok_or_else(|| invalid(format!("{face}: legacy_algorithm must be HS256, HS384 or HS512")))
}

/// Where each enabled dialect is mounted: its prefixes, and whether its paths take an optional
/// trailing slash (the Django faces).
pub fn mounts(d: &DialectSettings) -> Mounts {
    let at = |prefix: &str, more: &[String], enabled: bool, both_slashes: bool| {
        enabled.then(|| Mount { prefixes: prefixes(prefix, more), both_slashes })
    };
    Mounts {
        medods: at(&d.medods.prefix, &d.medods.prefixes, d.medods.enabled, false),
        drf_social: at(&d.drf_social_oauth2.prefix, &d.drf_social_oauth2.prefixes, d.drf_social_oauth2.enabled, true),
        simplejwt: at(&d.simplejwt.prefix, &d.simplejwt.prefixes, d.simplejwt.enabled, true),
        djoser: at(&d.djoser.prefix, &d.djoser.prefixes, d.djoser.enabled, true),
        flask: at(&d.flask.prefix, &d.flask.prefixes, d.flask.enabled, false),
    }
}

/// The mount points of the enabled dialects.
#[derive(Debug, Clone)]
pub struct Mounts {
    pub medods: Option<Mount>,
    pub drf_social: Option<Mount>,
    pub simplejwt: Option<Mount>,
    pub djoser: Option<Mount>,
    pub flask: Option<Mount>,
}

/// Mounts every enabled dialect, each with its face from the service.
pub fn configure(
    cfg: &mut actix_web::web::ServiceConfig,
    d: &DialectSettings,
    service: &TokenService,
    drf_face: Option<Arc<drf_social::DrfFace>>,
) {
    let m = mounts(d);
    let face = |name: &str| service.faces().get(name).cloned();
    if let (Some(f), Some(at)) = (face(medods::NAME), &m.medods) {
        // `None` only when configured open: startup refuses or fills in a missing key otherwise
        let key = d.medods.caller_key.clone().filter(|k| !k.is_empty() && !d.medods.open_to_anyone);
        let face = medods::MedodsFace { face: f, caller_key: key };
        medods::configure(cfg, at, face);
    }
    if let (Some(face), Some(at)) = (drf_face, &m.drf_social) {
        drf_social::configure(cfg, at, face);
    }
    let sj = |f: Arc<Face>, s: &config::SimpleJwtSettings, scheme: &'static str| simplejwt::SjFace {
        era_55: s.era == "5.5",
        username_field: if s.username_field == "username" { "username" } else { "email" },
        scheme,
        face: f,
    };
    if let (Some(f), Some(at)) = (face(simplejwt::SIMPLEJWT), &m.simplejwt) {
        simplejwt::configure_simplejwt(cfg, at, sj(f, &d.simplejwt, "Bearer"));
    }
    if let (Some(f), Some(at)) = (face(simplejwt::DJOSER), &m.djoser) {
        simplejwt::configure_djoser(cfg, at, sj(f, &d.djoser, "JWT"));
    }
    if let (Some(f), Some(at)) = (face(flask::NAME), &m.flask) {
        let face = flask::FlaskFace { era4: d.flask.era == "4", seed_envelope: d.flask.envelope != "library", face: f };
        flask::configure(cfg, at, face);
    }
}

/// The dialects' part of the served OpenAPI document, as configured: each enabled dialect a tag,
/// its routes at every prefix it is mounted under, each operation as its handler documents it.
pub fn openapi(d: &DialectSettings) -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let m = mounts(d);
    let mut doc = utoipa::openapi::OpenApiBuilder::new().build();
    let mut add = |part: utoipa::openapi::OpenApi| doc.merge(part);
    if let Some(at) = &m.medods {
        add(docs::document(&medods::Handlers::openapi(), "medods", at, &medods::ROUTES));
    }
    if let Some(at) = &m.drf_social {
        let mut part = docs::document(&drf_social::Handlers::openapi(), "drf-social-oauth2", at, &drf_social::ROUTES);
        docs::backends(&mut part, &d.drf_social_oauth2.providers.keys().cloned().collect::<Vec<_>>());
        add(part);
    }
    let sj = simplejwt::Handlers::openapi();
    for (tag, at, routes, s) in [
        ("simplejwt", &m.simplejwt, &simplejwt::SIMPLEJWT_ROUTES[..], &d.simplejwt),
        ("djoser", &m.djoser, &simplejwt::DJOSER_ROUTES[..], &d.djoser),
    ] {
        if let Some(at) = at {
            let mut part = docs::document(&sj, tag, at, routes);
            if s.username_field == "username" {
                docs::login_by_username(&mut part);
            }
            add(part);
        }
    }
    if let Some(at) = &m.flask {
        add(docs::document(&flask::Handlers::openapi(), "flask-jwt-extended", at, &flask::ROUTES));
    }
    doc.tags = Some(docs::tags(&m));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> BTreeMap<String, TokenProfile> {
        [("standard".to_owned(), TokenProfile::standard()), ("extended".to_owned(), TokenProfile::extended())].into_iter().collect()
    }

    #[test]
    fn a_retired_key_must_outlive_the_refresh_jwts_it_signed() {
        let native = tessera_domain::NativeFormat { issuer: "tessera".into(), accepted_issuers: vec![], alg: Algorithm::ES256 };
        let faces = tessera_domain::Faces::new(faces(&DialectSettings::default(), &profiles(), &native).unwrap()).unwrap();
        // drf-social-oauth2's access tokens live 10 hours; djoser's and flask's refresh JWTs 90 days
        assert_eq!(faces.longest_access_ttl(), Duration::hours(10));
        assert_eq!(faces.longest_signed_ttl(), Duration::days(90));
    }
}
