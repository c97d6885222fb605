//! The native face: users, the OAuth 2 token and revocation endpoints, the caller's own
//! account, logout, and health probes.

pub mod health;
pub mod oauth;
pub mod users;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(users::register_user)
        .service(users::get_me)
        .service(users::logout)
        .service(oauth::create_token)
        .service(oauth::revoke_token)
        .service(health::live)
        .service(health::ready);
}
