//! The native API, a sibling of the five compatible ones: users, the OAuth 2 token and
//! revocation endpoints, the caller's own account, its sessions and password, logout,
//! introspection, the JWKS and metadata, and health probes. Its errors are RFC 9457 problems
//! ([`problem`]); a route is protected by taking the [`auth::Authenticated`] extractor.

pub mod auth;
pub mod binding;
pub mod discovery;
pub mod health;
pub mod oauth;
pub mod problem;
pub mod sessions;
pub mod state;
pub mod users;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(users::register_user)
        .service(users::get_me)
        .service(users::logout)
        .service(sessions::list_sessions)
        .service(sessions::end_session)
        .service(sessions::change_password)
        .service(oauth::create_token)
        .service(oauth::revoke_token)
        .service(oauth::introspect_token)
        .service(discovery::get_jwks)
        .service(discovery::get_metadata)
        .service(health::live)
        .service(health::ready);
}

/// The native paths with the methods each serves. A request with another method gets 405 with
/// `Allow` (RFC 9110 §15.5.6), in the problem shape, rather than the 404 of an unknown path.
const METHODS: [(&str, &str); 13] = [
    ("/oauth/introspect", "POST"),
    ("/.well-known/jwks.json", "GET"),
    ("/.well-known/oauth-authorization-server", "GET"),
    ("/v1/users", "POST"),
    ("/v1/me", "GET"),
    ("/v1/logout", "POST"),
    ("/v1/sessions", "GET"),
    ("/v1/sessions/{id}", "DELETE"),
    ("/v1/password", "POST"),
    ("/oauth/token", "POST"),
    ("/oauth/revoke", "POST"),
    ("/health/live", "GET"),
    ("/health/ready", "GET"),
];

/// Registered after the routes themselves: only requests no route took reach these.
pub fn method_fallbacks(cfg: &mut actix_web::web::ServiceConfig) {
    for (path, allow) in METHODS {
        cfg.service(actix_web::web::resource(path).to(move || async move {
            use actix_web::ResponseError;
            let mut res = crate::problem::Problem::new(
                actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this route answers {allow} only"),
            )
            .error_response();
            res.headers_mut().insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static(allow));
            res
        }));
    }
}
