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
    let m = tessera_dialects::mounts(&settings.dialects);
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
    let (_, api) = App::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(tessera_native::configure).split_for_parts();
    let mut api = api.merge_from(tessera_dialects::openapi(&settings.dialects));
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

/// The documents Swagger UI offers in its "Select a definition" list, one per API, each with only
/// its own ways to authorize: (the tag its operations carry, the name shown, where it is served).
/// The native API comes first, and its Authorize dialog holds one form, the OAuth 2 password flow,
/// so that the first form a person fills in is one that works for it. `/openapi.json` stays the
/// whole document, for tools.
pub const UI_DOCUMENTS: [(&str, &str, &str); 6] = [
    ("", "Tessera (OAuth 2)", "/openapi/native.json"),
    ("simplejwt", "djangorestframework-simplejwt", "/openapi/simplejwt.json"),
    ("djoser", "djoser", "/openapi/djoser.json"),
    ("drf-social-oauth2", "drf-social-oauth2", "/openapi/drf-social-oauth2.json"),
    ("flask-jwt-extended", "flask-jwt-extended", "/openapi/flask-jwt-extended.json"),
    ("medods", "Go token service (Medods)", "/openapi/medods.json"),
];

/// The schemes the native document shows in Swagger UI's Authorize dialog: only the password flow
/// (its `bearer` scheme asks for a token the person does not have yet).
const NATIVE_UI_SCHEMES: [&str; 1] = ["oauth2"];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Swagger UI's documents for `whole` (the served document): for each entry of [`UI_DOCUMENTS`]
/// with an operation, (name, path, the document). The native one holds the operations of no
/// dialect's tag.
pub fn ui_documents(whole: &utoipa::openapi::OpenApi) -> Result<Vec<(&'static str, &'static str, serde_json::Value)>, serde_json::Error> {
    let whole = serde_json::to_value(whole)?;
    let dialect_tags: Vec<&str> = UI_DOCUMENTS.iter().map(|d| d.0).filter(|t| !t.is_empty()).collect();
    let mut out = vec![];
    for (tag, name, path) in UI_DOCUMENTS {
        let part = if tag.is_empty() {
            document_of(&whole, |tags| !tags.iter().any(|t| dialect_tags.contains(&t.as_str())), Some(&NATIVE_UI_SCHEMES))
        } else {
            document_of(&whole, |tags| tags.iter().any(|t| t == tag), None)
        };
        if part["paths"].as_object().is_some_and(|p| !p.is_empty()) {
            out.push((name, path, part));
        }
    }
    Ok(out)
}

/// The operations of `whole` whose tags `keep` accepts, with the tags and security schemes they
/// use (only those of `schemes` when given, the others struck from the operations too).
fn document_of(whole: &serde_json::Value, keep: impl Fn(&[String]) -> bool, schemes: Option<&[&str]>) -> serde_json::Value {
    use serde_json::Value;
    let mut doc = whole.clone();
    let (mut tags_used, mut schemes_used) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            item.retain(|method, op| {
                if !METHODS.contains(&method.as_str()) {
                    return true;
                }
                let tags: Vec<String> = serde_json::from_value(op["tags"].clone()).unwrap_or_default();
                if !keep(&tags) {
                    return false;
                }
                if let (Some(allowed), Some(security)) = (schemes, op.get_mut("security").and_then(Value::as_array_mut)) {
                    security.retain(|req| req.as_object().is_some_and(|r| r.keys().all(|k| allowed.contains(&k.as_str()))));
                }
                for req in op.get("security").and_then(Value::as_array).into_iter().flatten() {
                    schemes_used.extend(req.as_object().into_iter().flat_map(|r| r.keys().cloned()));
                }
                tags_used.extend(tags);
                true
            });
        }
        paths.retain(|_, item| item.as_object().is_some_and(|i| i.keys().any(|k| METHODS.contains(&k.as_str()))));
    }
    if let Some(defined) = doc.pointer_mut("/components/securitySchemes").and_then(Value::as_object_mut) {
        defined.retain(|name, _| schemes_used.contains(name));
    }
    if let Some(tags) = doc.get_mut("tags").and_then(Value::as_array_mut) {
        tags.retain(|t| t["name"].as_str().is_some_and(|n| tags_used.contains(n)));
    }
    doc
}
