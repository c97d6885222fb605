//! The dialects in the OpenAPI document: each a tag, with its seed's examples. Their routes are
//! mounted at configurable prefixes, so they are described here, at their default paths, by
//! documentation items that the router does not call (the handlers live beside them).

use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// simplejwt / djoser login.
#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"email": "user@example.com", "password": "string"}))]
pub struct SjObtain {
    /// Or `username`, per `dialects.simplejwt.username_field`.
    pub email: String,
    pub password: String,
}

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
    pub refresh: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."}))]
pub struct SjVerify {
    pub token: String,
}

/// simplejwt's error: `{"detail", "code"}`, or DRF's per-field lists.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"}))]
pub struct SjError {
    pub detail: String,
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
    pub email: String,
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

/// flask-jwt-extended's errors: `{"msg"}`, or the seed application's envelopes.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"code": 401, "errors": [{"msg": "Token has expired", "code": 401}]}))]
pub struct FlaskError {
    pub msg: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"grant_type": "password", "username": "ann@example.com", "password": "correct horse battery", "client_id": "<client_id>", "client_secret": "<client_secret>"}))]
pub struct DrfTokenRequest {
    /// `password`, `refresh_token` or (convert-token) `convert_token`.
    pub grant_type: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
    /// convert-token: the configured identity provider's name, and its token.
    pub backend: Option<String>,
    pub token: Option<String>,
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
    pub error: String,
    pub error_description: Option<String>,
}

macro_rules! doc_route {
    ($name:ident, $method:ident, $path:literal, $tag:literal, $summary:literal, body = $req:ty, ok = $ok:ty, err = $err:ty) => {
        #[doc = $summary]
        #[utoipa::path($method, path = $path, tag = $tag, request_body = $req, responses((status = 200, body = $ok), (status = 400, body = $err), (status = 401, body = $err)))]
        #[expect(dead_code, reason = "an OpenAPI description; the router mounts the real handler")]
        fn $name() {}
    };
    ($name:ident, $method:ident, $path:literal, $tag:literal, $summary:literal, auth, ok = $ok:ty, err = $err:ty) => {
        #[doc = $summary]
        #[utoipa::path($method, path = $path, tag = $tag, security(("bearer" = [])), responses((status = 200, body = $ok), (status = 401, body = $err), (status = 422, body = $err)))]
        #[expect(dead_code, reason = "an OpenAPI description; the router mounts the real handler")]
        fn $name() {}
    };
}

doc_route!(
    sj_obtain,
    post,
    "/api/token/",
    "simplejwt",
    "Log in: a token pair (slash optional).",
    body = SjObtain,
    ok = SjPair,
    err = SjError
);
doc_route!(
    sj_refresh,
    post,
    "/api/token/refresh/",
    "simplejwt",
    "Rotate: a new pair; the old refresh token is blacklisted.",
    body = SjRefresh,
    ok = SjPair,
    err = SjError
);
doc_route!(
    sj_verify,
    post,
    "/api/token/verify/",
    "simplejwt",
    "Verify any token of ours: `{}` when valid.",
    body = SjVerify,
    ok = serde_json::Value,
    err = SjError
);
doc_route!(
    sj_blacklist,
    post,
    "/api/token/blacklist/",
    "simplejwt",
    "Log out: the refresh token's session ends.",
    body = SjRefresh,
    ok = serde_json::Value,
    err = SjError
);
doc_route!(
    dj_create,
    post,
    "/auth/jwt/create/",
    "djoser",
    "Log in: a token pair (2 h / 90 d); mount under `dialects.djoser.prefix`, e.g. /v1/zonesmart.",
    body = SjObtain,
    ok = SjPair,
    err = SjError
);
doc_route!(dj_refresh, post, "/auth/jwt/refresh/", "djoser", "Rotate: a new pair.", body = SjRefresh, ok = SjPair, err = SjError);
doc_route!(
    dj_verify,
    post,
    "/auth/jwt/verify/",
    "djoser",
    "Verify any token of ours.",
    body = SjVerify,
    ok = serde_json::Value,
    err = SjError
);
doc_route!(dj_register, post, "/users/", "djoser", "Register (201).", body = SjObtain, ok = DjoserUser, err = SjError);
doc_route!(dj_me, get, "/users/me/", "djoser", "The caller, with `Authorization: JWT <access>`.", auth, ok = DjoserUser, err = SjError);
doc_route!(
    drf_token,
    post,
    "/auth/token",
    "drf-social-oauth2",
    "The password and refresh_token grants (form-encoded; client credentials in the body or HTTP Basic).",
    body = DrfTokenRequest,
    ok = DrfTokenResponse,
    err = DrfError
);
doc_route!(
    drf_convert,
    post,
    "/auth/convert-token",
    "drf-social-oauth2",
    "Exchange a configured identity provider's JWT for a local pair.",
    body = DrfTokenRequest,
    ok = DrfTokenResponse,
    err = DrfError
);
doc_route!(
    drf_revoke,
    post,
    "/auth/revoke-token",
    "drf-social-oauth2",
    "Revoke a token: `token` + client credentials, or `Authorization: Bearer` + `client_id` (204).",
    body = DrfTokenRequest,
    ok = serde_json::Value,
    err = DrfError
);
doc_route!(
    drf_invalidate_sessions,
    post,
    "/auth/invalidate-sessions",
    "drf-social-oauth2",
    "Bearer access + `client_id`: every token of the user for that client ends (204).",
    auth,
    ok = serde_json::Value,
    err = DrfError
);
doc_route!(
    drf_invalidate_refresh,
    post,
    "/auth/invalidate-refresh-tokens",
    "drf-social-oauth2",
    "Bearer access + `client_id`: only the refresh tokens end (204).",
    auth,
    ok = serde_json::Value,
    err = DrfError
);
doc_route!(
    fl_login,
    post,
    "/api/v1/login",
    "flask-jwt-extended",
    "Log in: `{access_token, refresh_token}`.",
    body = FlaskLogin,
    ok = FlaskPair,
    err = FlaskError
);
doc_route!(
    fl_refresh,
    post,
    "/api/v1/refresh/token",
    "flask-jwt-extended",
    "The refresh JWT in `Authorization: Bearer`: a new access token (no rotation).",
    auth,
    ok = FlaskAccess,
    err = FlaskError
);
doc_route!(
    fl_logout,
    post,
    "/api/v1/logout",
    "flask-jwt-extended",
    "The refresh JWT in `Authorization: Bearer`: its session ends.",
    auth,
    ok = serde_json::Value,
    err = FlaskError
);
doc_route!(
    fl_protected,
    get,
    "/api/v1/protected",
    "flask-jwt-extended",
    "The library's access-token check: `{\"logged_in_as\"}`.",
    auth,
    ok = serde_json::Value,
    err = FlaskError
);

#[derive(OpenApi)]
#[openapi(
    paths(
        super::medods::generate, super::medods::refresh, super::medods::delete, super::medods::delete_all, super::medods::me, super::medods::logout,
        sj_obtain, sj_refresh, sj_verify, sj_blacklist, dj_create, dj_refresh, dj_verify, dj_register, dj_me,
        fl_login, fl_refresh, fl_logout, fl_protected,
        drf_token, drf_convert, drf_revoke, drf_invalidate_sessions, drf_invalidate_refresh,
    ),
    tags(
        (name = "medods", description = "The Medods token API (seed 000): trusted callers (`X-Caller-Key`) mint HS512 pairs; refresh needs both tokens of one pair."),
        (name = "simplejwt", description = "djangorestframework-simplejwt (seed 001): 5 min / 24 h, rotation with blacklisting, `{\"detail\",\"code\"}` errors."),
        (name = "djoser", description = "djoser's JWT endpoints (seed 003): simplejwt's views under a prefix, `Authorization: JWT <access>`."),
        (name = "drf-social-oauth2", description = "drf-social-oauth2 (seed 002): OAuth clients, oauthlib's errors, convert-token against trusted identity providers."),
        (name = "flask-jwt-extended", description = "flask-jwt-extended (seed 004): JWT refresh token in `Authorization: Bearer`, `{\"msg\"}` errors."),
    )
)]
pub struct DialectsDoc;
