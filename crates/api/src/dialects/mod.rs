//! The five client contracts, each a thin adapter over the core use-cases: parse the wire format,
//! call a use-case, render the face's own success and error bodies. No business rule lives here.

pub mod docs;
pub mod drf;
pub mod drf_social;
pub mod flask;
pub mod medods;
pub mod simplejwt;

use tessera_domain::{Algorithm, Duration};

use crate::config::Settings;

use actix_web::HttpRequest;
use actix_web::http::header;

/// The peer address, for the session record.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect())
}

/// Builds one route of a face (its method and handler).
pub type MakeRoute = fn() -> actix_web::Route;

/// Mounts a face's routes at `paths`, each with the face's data and the face's own answer to
/// any other method.
pub fn mount<T: 'static>(
    cfg: &mut actix_web::web::ServiceConfig,
    face: &actix_web::web::Data<T>,
    routes: &[(Vec<String>, MakeRoute)],
    other_methods: MakeRoute,
) {
    for (paths, route) in routes {
        for p in paths {
            cfg.service(actix_web::web::resource(p.as_str()).app_data(face.clone()).route(route()).default_service(other_methods()));
        }
    }
}

/// A path with and without its trailing slash, under a prefix: Django clients send the slash,
/// others often do not.
pub fn both_slashes(prefix: &str, path: &str) -> [String; 2] {
    let base = format!("{prefix}{}", path.trim_end_matches('/'));
    [base.clone(), format!("{base}/")]
}

/// The algorithms the enabled faces sign with, beside the native one.
pub fn algorithms(settings: &Settings) -> Vec<Algorithm> {
    let d = &settings.dialects;
    let mut algs = vec![];
    if d.simplejwt.enabled || d.djoser.enabled || d.flask.enabled {
        algs.push(Algorithm::HS256);
    }
    if d.medods.enabled {
        algs.push(Algorithm::HS512);
    }
    algs
}

/// Mounts every enabled dialect.
pub fn configure(
    cfg: &mut actix_web::web::ServiceConfig,
    settings: &Settings,
    profiles: &std::collections::BTreeMap<String, tessera_domain::TokenProfile>,
    drf_face: Option<std::sync::Arc<drf_social::DrfFace>>,
) {
    let d = &settings.dialects;
    let profile = |name: &str| profiles.get(name).cloned().unwrap_or_else(tessera_domain::TokenProfile::standard);
    let sj = |name: &'static str, s: &crate::config::SimpleJwtSettings, scheme: &'static str| simplejwt::SjFace {
        name,
        era_55: s.era == "5.5",
        username_field: if s.username_field == "username" { "username" } else { "email" },
        scheme,
        profile: profile(&s.profile),
        grace: Duration::seconds(i64::from(s.refresh_grace_seconds)),
    };
    if d.medods.enabled {
        let face = medods::MedodsFace {
            profile: profile(&d.medods.profile),
            caller_key: d.medods.caller_key.clone().filter(|k| !k.is_empty()),
            grace: Duration::seconds(i64::from(d.medods.refresh_grace_seconds)),
            new_ip_webhook: d.medods.new_ip_webhook.clone().filter(|u| !u.is_empty()),
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap_or_default(),
        };
        medods::configure(cfg, &d.medods.prefix, face);
    }
    if let Some(face) = drf_face {
        drf_social::configure(cfg, &d.drf_social_oauth2.prefix, face);
    }
    if d.simplejwt.enabled {
        simplejwt::configure_simplejwt(cfg, &d.simplejwt.prefix, sj("simplejwt", &d.simplejwt, "Bearer"));
    }
    if d.djoser.enabled {
        simplejwt::configure_djoser(cfg, &d.djoser.prefix, sj("djoser", &d.djoser, "JWT"));
    }
    if d.flask.enabled {
        let face =
            flask::FlaskFace { era4: d.flask.era == "4", seed_envelope: d.flask.envelope == "seed", profile: profile(&d.flask.profile) };
        flask::configure(cfg, &d.flask.prefix, face);
    }
}
