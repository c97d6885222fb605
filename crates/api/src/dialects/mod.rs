//! The five client contracts, each a thin adapter over the core use-cases: parse the wire format,
//! call a use-case, render the face's own success and error bodies. No business rule lives here.

pub mod docs;
pub mod drf;
pub mod drf_social;
pub mod flask;
pub mod medods;
pub mod simplejwt;

use std::sync::Arc;

use tessera_domain::{Algorithm, Duration, Face, RequestMeta, TokenProfile};

use crate::config::{Checked, Settings};

use actix_web::HttpRequest;
use actix_web::http::header;

/// The peer address, for the session record.
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect())
}

/// Where a request comes from, as the use-cases see it.
pub fn request_meta(req: &HttpRequest) -> RequestMeta {
    RequestMeta { ip: client_ip(req), user_agent: user_agent(req) }
}

/// Builds one route of a face (its method and handler).
pub type MakeRoute = fn() -> actix_web::Route;

/// Mounts a face's routes, each path once with every method given for it, the face's data and
/// the face's own answer to any other method.
pub fn mount<T: 'static>(
    cfg: &mut actix_web::web::ServiceConfig,
    face: &actix_web::web::Data<T>,
    routes: &[(Vec<String>, MakeRoute)],
    other_methods: MakeRoute,
) {
    let mut by_path: Vec<(&str, Vec<MakeRoute>)> = vec![];
    for (paths, route) in routes {
        for p in paths {
            match by_path.iter_mut().find(|(q, _)| *q == p.as_str()) {
                Some((_, rs)) => rs.push(*route),
                None => by_path.push((p.as_str(), vec![*route])),
            }
        }
    }
    for (path, makers) in by_path {
        let mut resource = actix_web::web::resource(path).app_data(face.clone());
        for m in makers {
            resource = resource.route(m());
        }
        cfg.service(resource.default_service(other_methods()));
    }
}

/// A path under each prefix, with and (for Django faces, whose clients send the slash) without
/// its trailing slash.
pub fn at_prefixes(prefixes: &[String], path: &str, both_slashes: bool) -> Vec<String> {
    let mut out = vec![];
    for prefix in prefixes {
        let base = format!("{prefix}{}", path.trim_end_matches('/'));
        if both_slashes {
            out.push(format!("{base}/"));
        }
        out.push(base);
    }
    out.dedup();
    out
}

/// A dialect's mount points: its prefix, then any more it is also mounted under.
pub fn prefixes(prefix: &str, more: &[String]) -> Vec<String> {
    let mut all = vec![prefix.to_owned()];
    for p in more {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    all
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

fn profile(checked: &Checked, name: &str) -> TokenProfile {
    checked.profiles.get(name).cloned().unwrap_or_else(TokenProfile::standard)
}

fn grace(seconds: u32) -> Duration {
    Duration::seconds(i64::from(seconds))
}

/// Every enabled dialect's face: the domain data its tokens live by.
pub fn faces(settings: &Settings, checked: &Checked) -> Result<Vec<Face>, tessera_domain::DomainError> {
    let d = &settings.dialects;
    let mut out = vec![];
    if d.medods.enabled {
        let m = &d.medods;
        out.push(Face {
            name: medods::NAME.into(),
            audience: m.audience.clone(),
            profile: profile(checked, &m.profile),
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
            format: Arc::new(tessera_domain::NativeFormat { issuer: settings.tokens.issuer.clone(), alg: checked.algorithm }),
        });
    }
    for (name, s) in [(simplejwt::SIMPLEJWT, &d.simplejwt), (simplejwt::DJOSER, &d.djoser)] {
        if s.enabled {
            out.push(Face {
                name: name.into(),
                audience: s.audience.clone(),
                profile: profile(checked, &s.profile),
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
            profile: profile(checked, &f.profile),
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
    settings: &Settings,
    service: &tessera_domain::TokenService,
    drf_face: Option<Arc<drf_social::DrfFace>>,
) {
    let d = &settings.dialects;
    let face = |name: &str| service.faces().get(name).cloned();
    if let Some(f) = face(medods::NAME) {
        let face = medods::MedodsFace { face: f, caller_key: d.medods.caller_key.clone().filter(|k| !k.is_empty()) };
        medods::configure(cfg, &prefixes(&d.medods.prefix, &d.medods.prefixes), face);
    }
    if let Some(face) = drf_face {
        drf_social::configure(cfg, &prefixes(&d.drf_social_oauth2.prefix, &d.drf_social_oauth2.prefixes), face);
    }
    let sj = |f: Arc<Face>, s: &crate::config::SimpleJwtSettings, scheme: &'static str| simplejwt::SjFace {
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
