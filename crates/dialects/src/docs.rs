//! The dialects in the OpenAPI document. Each handler documents itself (`#[utoipa::path]` on the
//! handler the router calls); the served document takes every mounted route's operation from its
//! handler and lists it at every path the face is mounted at, so it follows the configuration.
//! This module holds the bodies' schemas and that assembly.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod as OpenApiMethod, Paths};

use tessera_http::request::{HttpMethod, Mount, Route};

/// simplejwt / djoser login.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"email": "user@example.com", "password": "string"}))]
pub struct SjObtain {
    /// Or `username`, per `dialects.simplejwt.username_field`.
    #[schema(
        min_length = 1,
        max_length = 254,
        pattern = "[^\\t-\\r\\x1c-\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub email: String,
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "[^\\t-\\r\\x1c-\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub password: String,
}

/// djoser registration.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse battery"}))]
pub struct DjoserRegister {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least `password.min_length` (8) characters.
    #[schema(
        min_length = 8,
        max_length = 1024,
        pattern = "[^\\t-\\r\\x1c-\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub password: String,
}

/// simplejwt / djoser login when `username_field = "username"`.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"username": "user@example.com", "password": "string-long-enough"}))]
pub struct SjObtainUsername {
    #[schema(
        min_length = 1,
        max_length = 254,
        pattern = "[^\\t-\\r\\x1c-\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub username: String,
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "[^\\t-\\r\\x1c-\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub password: String,
}

/// A refresh's answer: `{"access"}` with `refresh_policy = "reuse"` (the library's default),
/// `{"access","refresh"}` with `rotate`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."}))]
pub struct SjRefreshed {
    pub access: String,
    pub refresh: Option<String>,
}

/// An empty JSON object.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({}))]
pub struct Empty {}

#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "refresh": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCIsImV4cCI6MTcwNjQyNjQ2NiwiaWF0IjoxNzA2MzQwMDY2LCJqdGkiOiJiYzZhYTAyNzQ1YmE0ZjczODFkOGY4MzNmOWZmMzUwYiIsInVzZXJfaWQiOjJ9.1qGtt-ial3F5vH2nmOZhwk2DQcvZPWwxyW7IceMbo20",
    "access": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNzA2MzQwMzY2LCJpYXQiOjE3MDYzNDAwNjYsImp0aSI6IjAzNmRhN2VkNTVjNTQ0YmU5MGY2ODhjYjcxM2FhOGVhIiwidXNlcl9pZCI6Mn0.QYt_JOm20yXTP7bfpzdbMGn3ddsYzPgOaLDx_34p7nE"
}))]
pub struct SjPair {
    pub refresh: String,
    pub access: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"refresh": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."}))]
pub struct SjRefresh {
    #[schema(min_length = 1, pattern = "[^\\t-\\r\\x1c-\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]")]
    pub refresh: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."}))]
pub struct SjVerify {
    #[schema(min_length = 1, pattern = "[^\\t-\\r\\x1c-\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]")]
    pub token: String,
}

/// simplejwt's error: `{"detail", "code"}`, or DRF's per-field lists.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}))]
pub struct SjError {
    pub detail: Option<String>,
    pub code: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "email": "admin@zonesmart.ru", "username": "admin@zonesmart.ru"}))]
pub struct DjoserUser {
    pub id: i64,
    pub email: String,
    pub username: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse battery"}))]
pub struct FlaskLogin {
    /// Or `username`.
    #[schema(min_length = 1)]
    pub email: String,
    #[schema(min_length = 1)]
    pub password: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9...", "refresh_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9..."}))]
pub struct FlaskPair {
    pub access_token: String,
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpYXQiOjE2MTIwMTE0NTAsIm5iZiI6MTYxMjAxMTQ1MCwianRpIjoiZmNlODZhZDctZDc3Ny00YTM1LWFiM2ItMjVkNTBjZDg4ODViIiwiZXhwIjoxNjEyMDEyMzUwLCJpZGVudGl0eSI6ImFkZWRjNzE5LWMzNjMtNDc5OC1iNTMzLTQ0MGNkOTZkYzgxMyIsImZyZXNoIjpmYWxzZSwidHlwZSI6ImFjY2VzcyJ9.P5K5x81cSDDja72inPwiJz-EIRPmOmEEFETc2rSWE5Q"}))]
pub struct FlaskAccess {
    pub access_token: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"logged_in_as": "1"}))]
pub struct FlaskProtected {
    pub logged_in_as: String,
}

/// flask-jwt-extended's errors: `{"msg"}`, or the original application's envelopes.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"code": 401, "errors": [{"msg": "Token has expired", "code": 401}]}))]
pub struct FlaskError {
    pub msg: Option<String>,
}

/// The grants of `/auth/token`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DrfGrant {
    Password,
    RefreshToken,
}

/// `/auth/token`: `username` and `password` for the password grant, `refresh_token` for the
/// refresh grant; client credentials here or in HTTP Basic.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"grant_type": "password", "username": "ann@example.com", "password": "correct horse battery", "client_id": "tessera"}))]
pub struct DrfTokenRequest {
    pub grant_type: DrfGrant,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
}

/// The grant of `/auth/convert-token`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DrfConvertGrant {
    ConvertToken,
}

/// `/auth/convert-token`: a configured identity provider's name (`backend`) and its JWT.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"grant_type": "convert_token", "client_id": "tessera", "backend": "google", "token": "eyJhbGciOiJSUzI1NiIs..."}))]
pub struct DrfConvertRequest {
    pub grant_type: DrfConvertGrant,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub backend: String,
    pub token: String,
}

/// `/auth/revoke-token`, older form: the token and client credentials. The newer form sends
/// `Authorization: Bearer <token>` and `client_id` instead.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"token": "<access or refresh token>", "client_id": "tessera"}))]
pub struct DrfRevokeRequest {
    #[schema(min_length = 1)]
    pub token: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// `/auth/invalidate-*`: the client whose tokens end.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"client_id": "tessera"}))]
pub struct DrfInvalidateRequest {
    /// An empty one is a missing one, as oauthlib reads it.
    #[schema(min_length = 1)]
    pub client_id: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJ0eXAiOiJhdCtqd3Qi...", "expires_in": 36000, "token_type": "Bearer", "scope": "read write", "refresh_token": "q9n2Qm0c7mX8vK4Jt1yZbA2rW5eH6uL3sP0dF8gC1xE"}))]
pub struct DrfTokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub token_type: String,
    pub scope: String,
    pub refresh_token: String,
}

/// oauthlib's error.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": "invalid_grant", "error_description": "Invalid credentials given."}))]
pub struct DrfError {
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The part of the served document for one mounted face: each route's operation, as its
/// handler documents it (found in `handlers` under the route's `doc` path), at every path the face
/// is mounted at, tagged with the face's name. Operation ids are made unique per face and mount.
pub fn document(handlers: &utoipa::openapi::OpenApi, tag: &str, at: &Mount, routes: &[Route]) -> utoipa::openapi::OpenApi {
    let mut out = handlers.clone();
    out.paths = Paths::new();
    out.tags = None;
    let ident: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    for r in routes {
        let item = handlers.paths.get_path_item(r.doc);
        let op = match r.method {
            HttpMethod::Get => item.and_then(|i| i.get.clone()),
            HttpMethod::Post => item.and_then(|i| i.post.clone()),
        };
        // a test checks that every route's handler documents itself
        let Some(op) = op else { continue };
        let method = match r.method {
            HttpMethod::Get => OpenApiMethod::Get,
            HttpMethod::Post => OpenApiMethod::Post,
        };
        for (i, path) in at.documented(r.path).into_iter().enumerate() {
            let mut op = op.clone();
            op.tags = Some(vec![tag.to_owned()]);
            let base = op.operation_id.clone().unwrap_or_default();
            let suffix = if i == 0 { String::new() } else { format!("_{i}") };
            op.operation_id = Some(format!("{ident}_{base}{suffix}"));
            out.paths.add_path_operation(path, vec![method.clone()], op);
        }
    }
    out
}

/// Whether every route's handler documents the operation the route mounts (tests).
pub fn undocumented(handlers: &utoipa::openapi::OpenApi, routes: &[Route]) -> Vec<String> {
    routes
        .iter()
        .filter(|r| {
            let item = handlers.paths.get_path_item(r.doc);
            match r.method {
                HttpMethod::Get => item.and_then(|i| i.get.as_ref()).is_none(),
                HttpMethod::Post => item.and_then(|i| i.post.as_ref()).is_none(),
            }
        })
        .map(|r| format!("{} {}", r.method.as_str(), r.path))
        .collect()
}

/// The login's body names `username`, not `email` (`username_field = "username"`).
pub fn login_by_username(part: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Ref, RefOr};
    let from = "#/components/schemas/SjObtain";
    for item in part.paths.paths.values_mut() {
        let Some(op) = item.post.as_mut() else { continue };
        let Some(RefOr::T(body)) = op.request_body.as_mut() else { continue };
        for content in body.content.values_mut() {
            let RefOr::T(content) = content else { continue };
            if matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location == from) {
                content.schema = Some(RefOr::Ref(Ref::from_schema_name("SjObtainUsername")));
            }
        }
    }
    let components = part.components.get_or_insert_with(Default::default);
    components.schemas.insert("SjObtainUsername".into(), <SjObtainUsername as utoipa::PartialSchema>::schema());
}

/// The tags of the enabled dialects.
pub fn tags(m: &crate::Mounts) -> Vec<utoipa::openapi::tag::Tag> {
    use utoipa::openapi::tag::TagBuilder;
    let all = [
        (
            m.medods.is_some(),
            "medods",
            "The Medods Go token service's API: trusted callers (`X-Caller-Key`) mint HS512 pairs; refresh needs both tokens of one pair.",
        ),
        (
            m.simplejwt.is_some(),
            "simplejwt",
            "djangorestframework-simplejwt: 5 min / 24 h; refresh answers `{\"access\"}` (or, with rotation, a pair); `{\"detail\",\"code\"}` errors.",
        ),
        (m.djoser.is_some(), "djoser", "djoser's JWT endpoints: simplejwt's views under a prefix, `Authorization: JWT <access>`."),
        (
            m.drf_social.is_some(),
            "drf-social-oauth2",
            "drf-social-oauth2 on django-oauth-toolkit: OAuth clients, oauthlib's errors, convert-token against trusted identity providers.",
        ),
        (m.flask.is_some(), "flask-jwt-extended", "flask-jwt-extended: JWT refresh token in `Authorization: Bearer`, `{\"msg\"}` errors."),
    ];
    all.into_iter().filter(|(on, ..)| *on).map(|(_, name, d)| TagBuilder::new().name(name).description(Some(d)).build()).collect()
}

/// convert-token's `backend` names one of the configured identity providers.
pub fn backends(part: &mut utoipa::openapi::OpenApi, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let Ok(mut v) = serde_json::to_value(&*part) else { return };
    if let Some(backend) = v.pointer_mut("/components/schemas/DrfConvertRequest/properties/backend")
        && let Some(o) = backend.as_object_mut()
    {
        o.insert("enum".into(), serde_json::json!(names));
    }
    if let Ok(doc) = serde_json::from_value(v) {
        *part = doc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_not_blank_pattern_is_drfs_blank_check() {
        let schema = serde_json::to_value(<SjObtain as utoipa::PartialSchema>::schema()).unwrap_or_default();
        assert_eq!(schema["properties"]["password"]["pattern"], crate::drf::NOT_BLANK);
    }
}
