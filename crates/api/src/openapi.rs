//! The OpenAPI document: paths collected from the handlers by utoipa-actix-web, so the spec and
//! the routes cannot drift apart. `make openapi` writes it to `openapi/openapi.json`.

use actix_web::App;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::Settings;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "A token service: issues, refreshes, verifies and revokes JWT access / refresh token pairs. \
                       The native API follows OAuth 2 (RFC 6749 token endpoint, RFC 7009 revocation); errors outside \
                       OAuth endpoints are RFC 9457 problem documents with a stable `code`.",
        license(name = "MIT OR Apache-2.0")
    ),
    tags(
        (name = "users", description = "Registration, the caller's account, logout"),
        (name = "oauth2", description = "RFC 6749 token endpoint and RFC 7009 revocation"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "discovery", description = "The public keys (JWKS) and the RFC 8414 metadata"),
    ),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        c.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new("/oauth/token", Scopes::new()))])),
        );
    }
}

/// The dialects' own schemes, where they are mounted.
fn dialect_schemes(api: &mut utoipa::openapi::OpenApi, settings: &Settings) {
    let m = crate::dialects::mounts(&settings.dialects);
    let c = api.components.get_or_insert_with(Default::default);
    if m.djoser.is_some() {
        c.add_security_scheme(
            "djoser_jwt",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description("Authorization", "`JWT <access token>`"))),
        );
    }
    let bearer = |what: &str| {
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").description(Some(what)).build())
    };
    if m.flask.is_some() {
        c.add_security_scheme("flask_access", bearer("an access token of the flask-jwt-extended dialect"));
        c.add_security_scheme("flask_refresh", bearer("a refresh token of the flask-jwt-extended dialect"));
    }
    if m.drf_social.is_some() {
        c.add_security_scheme("drf_bearer", bearer("an access token of the drf-social-oauth2 dialect"));
    }
    if m.medods.is_some() {
        c.add_security_scheme("medods_bearer", bearer("an access token of the Medods dialect"));
        c.add_security_scheme(
            "caller_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Caller-Key",
                "the trusted caller's key (`dialects.medods.caller_key`)",
            ))),
        );
    }
    if let Some(at) = &m.drf_social {
        // oauthlib's token endpoint is an OAuth 2 password flow of its own
        let url = at.documented("/auth/token").into_iter().next().unwrap_or_else(|| "/auth/token".into());
        c.add_security_scheme(
            "drf_social_oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(url, Scopes::new()))])),
        );
    }
}

/// The whole document for a configuration: the native API, then each enabled dialect at the
/// paths it is mounted at. Served at `/openapi.json`.
pub fn spec_for(settings: &Settings) -> utoipa::openapi::OpenApi {
    let (_, api) = App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(crate::native::configure).split_for_parts();
    let mut api = api.merge_from(crate::dialects::openapi(&settings.dialects));
    dialect_schemes(&mut api, settings);
    api
}

/// The document of the default configuration.
pub fn spec() -> utoipa::openapi::OpenApi {
    spec_for(&Settings::default())
}

/// The document as committed in `openapi/openapi.json` (pretty, trailing newline).
pub fn spec_json() -> Result<String, serde_json::Error> {
    Ok(spec().to_pretty_json()? + "\n")
}
