//! The OpenAPI document: paths collected from the handlers by utoipa-actix-web, so the spec and
//! the routes cannot drift apart. `make openapi` writes it to `openapi/openapi.json`.

use actix_web::App;
use utoipa::openapi::security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

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

/// The whole document, as served at `/openapi.json`.
pub fn spec() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(crate::native::configure).split_for_parts();
    api.merge_from(crate::dialects::docs::DialectsDoc::openapi())
}

/// The document as committed in `openapi/openapi.json` (pretty, trailing newline).
pub fn spec_json() -> Result<String, serde_json::Error> {
    Ok(spec().to_pretty_json()? + "\n")
}
