//! drf-social-oauth2 (seed 002) on django-oauth-toolkit and oauthlib: OAuth clients with
//! client_id/secret in the body or HTTP Basic, oauthlib's error bodies, both revocation forms,
//! session invalidation, and `convert-token`, which exchanges a JWT of a trusted external
//! identity provider (checked behind the domain's `IdentityVerifier` port, by `tessera-oidc` against its JWKS) for a local pair.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tessera_domain::ports::IdentityVerifier;
use tessera_domain::{AuthError, DomainError, Face, LoginOrigin, OAuthClient, OffsetDateTime, RefreshInput, Refreshed, TokenProfile};

use crate::FaceContext;
use crate::config::DrfSocialSettings;
use crate::docs::{DrfConvertRequest, DrfError, DrfInvalidateRequest, DrfRevokeRequest, DrfTokenRequest, DrfTokenResponse};
use tessera_http::body::{BodyError, param, parse_params, read_limited};

/// The face's name, recorded on the sessions it opens.
pub const NAME: &str = "drf-social-oauth2";

/// django-oauth-toolkit's lifetimes, as a profile.
pub fn profile(settings: &DrfSocialSettings) -> Result<TokenProfile, DomainError> {
    TokenProfile::new(
        NAME,
        tessera_domain::Duration::seconds(i64::from(settings.access_token_expire_seconds)),
        tessera_domain::Duration::seconds(i64::from(settings.refresh_token_expire_seconds)),
    )
}

pub struct DrfFace {
    face: Arc<Face>,
    scope: String,
    providers: BTreeMap<String, Arc<dyn IdentityVerifier>>,
}

impl DrfFace {
    /// `providers`: the trusted issuers' verifiers by backend name (the server builds them from
    /// `settings.providers`).
    pub fn new(settings: &DrfSocialSettings, face: Arc<Face>, providers: BTreeMap<String, Arc<dyn IdentityVerifier>>) -> Self {
        Self { face, scope: settings.scope.clone(), providers }
    }
}

/// An oauthlib-shaped refusal: an actix [`ResponseError`](actix_web::ResponseError), so that a
/// handler's `?` answers it.
#[derive(Debug)]
pub struct Fail {
    status: u16,
    body: Value,
    challenge: Option<&'static str>,
}

fn oauth(status: u16, error: &str, description: Option<&str>) -> Fail {
    let body = match description {
        Some(d) => json!({"error": error, "error_description": d}),
        None => json!({"error": error}),
    };
    Fail { status, body, challenge: None }
}

fn invalid_client() -> Fail {
    Fail { status: 401, body: json!({"error": "invalid_client"}), challenge: Some("Bearer error=\"invalid_client\"") }
}

fn unexpected(e: DomainError) -> Fail {
    // DRF's throttling answers before the view: in DRF's words, not OAuth's
    if let Some((status, secs)) = tessera_http::request::retry_later(&e) {
        let (status, body) = crate::drf::retry_later(status, secs);
        return Fail { status, body, challenge: None };
    }
    oauth(tessera_http::request::unexpected(&e), "server_error", None)
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl actix_web::ResponseError for Fail {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }
    fn error_response(&self) -> HttpResponse {
        answer(self.status, Some(self.body.clone()), self.challenge)
    }
}

/// A success: its status and body, if any.
fn success((status, body): (u16, Option<Value>)) -> HttpResponse {
    answer(status, body, None)
}

/// Every answer of this API, success or refusal: no caching, JSON.
fn answer(status: u16, body: Option<Value>, challenge: Option<&'static str>) -> HttpResponse {
    let mut res = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST));
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    res.insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    if let Some(c) = challenge {
        res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(c)));
    }
    match body {
        Some(b) => res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json"))).body(b.to_string()),
        None => res.finish(),
    }
}

async fn params(req: &HttpRequest, payload: web::Payload, state: &FaceContext, known: &[&str]) -> Result<Vec<(String, String)>, Fail> {
    let body = read_limited(payload, state.max_body_bytes).await;
    let body = body.map_err(|e| match e {
        BodyError::TooLarge(_) => oauth(413, "invalid_request", Some("Request body too large.")),
        _ => oauth(400, "invalid_request", Some("The request body could not be read.")),
    })?;
    parse_params(req, &body, known).map_err(|e| match e {
        BodyError::Duplicate(p) => oauth(400, "invalid_request", Some(&format!("Duplicate {p} parameter."))),
        BodyError::UnsupportedMediaType(_) => oauth(400, "invalid_request", Some("Unsupported content type.")),
        _ => oauth(400, "invalid_request", Some("The request body is malformed.")),
    })
}

/// client_id and secret from HTTP Basic or the body.
fn client_credentials(req: &HttpRequest, p: &[(String, String)]) -> Result<(Option<String>, Option<String>), Fail> {
    match tessera_http::request::basic_credentials(req) {
        Ok(Some((id, secret))) => Ok((Some(id), Some(secret).filter(|s| !s.is_empty()))),
        Ok(None) => Ok((param(p, "client_id").map(str::to_owned), param(p, "client_secret").map(str::to_owned))),
        Err(_) => Err(invalid_client()),
    }
}

async fn authenticate_client(state: &FaceContext, req: &HttpRequest, p: &[(String, String)]) -> Result<OAuthClient, Fail> {
    let (id, secret) = client_credentials(req, p)?;
    let id = id.ok_or_else(invalid_client)?;
    match state.service.authenticate_client(&id, secret.as_deref()).await {
        Ok(c) => Ok(c),
        Err(DomainError::Auth(_)) => Err(invalid_client()),
        Err(e) => Err(unexpected(e)),
    }
}

fn token_body(face: &DrfFace, pair: tessera_domain::IssuedPair) -> (u16, Option<Value>) {
    (
        200,
        Some(
            json!({"access_token": pair.access_token, "expires_in": pair.expires_in, "token_type": "Bearer", "scope": face.scope, "refresh_token": pair.refresh_token}),
        ),
    )
}

fn origin<'a>(req: &HttpRequest, client: &'a OAuthClient) -> LoginOrigin<'a> {
    LoginOrigin { client_id: Some(client.client_id.as_str()), request: tessera_http::request::request_meta(req), ..LoginOrigin::default() }
}

/// The password and refresh_token grants (oauthlib's token endpoint); form-encoded or JSON,
/// client credentials in the body or HTTP Basic.
#[utoipa::path(post, path = "/auth/token",
    request_body(content(
        (DrfTokenRequest = "application/x-www-form-urlencoded"),
        (DrfTokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "A token pair", body = DrfTokenResponse),
        (status = 400, description = "invalid_request, invalid_grant or unsupported_grant_type", body = DrfError),
        (status = 401, description = "invalid_client", body = DrfError),
        (status = 413, description = "The body is too large", body = DrfError),
        (status = 429, description = "Request was throttled (DRF's words, `{\"detail\"}`): too many password attempts from this address, or the account is locked out here", body = crate::docs::SjError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "Too many password hashes wait (`{\"detail\"}`)", body = crate::docs::SjError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<Arc<DrfFace>>,
) -> Result<HttpResponse, Fail> {
    let r = async {
        let p = params(&req, payload, &state, &["grant_type", "username", "password", "refresh_token", "client_id", "client_secret", "scope"]).await?;
        let grant = param(&p, "grant_type").unwrap_or("");
        if grant != "password" && grant != "refresh_token" {
            return Err(oauth(400, "unsupported_grant_type", None));
        }
        let client = authenticate_client(&state, &req, &p).await?;
        let now = OffsetDateTime::now_utc();
        if grant == "password" {
            let username =
                param(&p, "username").ok_or_else(|| oauth(400, "invalid_request", Some("Request is missing username parameter.")))?;
            let password =
                param(&p, "password").ok_or_else(|| oauth(400, "invalid_request", Some("Request is missing password parameter.")))?;
            match state.service.login_password(&face.face, username, password.to_owned(), origin(&req, &client), now).await {
                Ok(pair) => Ok(token_body(&face, pair)),
                // deleted since it authenticated
                Err(DomainError::Auth(AuthError::UnknownClient)) => Err(invalid_client()),
                Err(DomainError::Auth(_) | DomainError::Invalid { .. }) => {
                    Err(oauth(400, "invalid_grant", Some("Invalid credentials given.")))
                }
                Err(e) => Err(unexpected(e)),
            }
        } else {
            let raw = param(&p, "refresh_token").ok_or_else(|| oauth(400, "invalid_request", Some("Missing refresh token parameter.")))?;
            let input = RefreshInput { client: Some(client.client_id.as_str()), request: tessera_http::request::request_meta(&req), ..RefreshInput::default() };
            match state.service.refresh(&face.face, raw, input, now).await {
                Ok(Refreshed::Pair(pair)) => Ok(token_body(&face, pair)),
                // `reuse`: the same refresh token is answered again, as oauthlib does without rotation
                Ok(Refreshed::Access(a)) => Ok((
                    200,
                    Some(json!({"access_token": a.access_token, "expires_in": a.expires_in, "token_type": "Bearer", "scope": face.scope, "refresh_token": raw})),
                )),
                Err(DomainError::Auth(_)) => Err(oauth(400, "invalid_grant", None)),
                Err(e) => Err(unexpected(e)),
            }
        }
    }
    .await;
    r.map(success)
}

/// Exchanges a JWT of a configured identity provider for a local pair; the user is created on
/// first sight and linked to the provider's subject.
#[utoipa::path(post, path = "/auth/convert-token",
    request_body(content(
        (DrfConvertRequest = "application/x-www-form-urlencoded"),
        (DrfConvertRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "A token pair", body = DrfTokenResponse),
        (status = 400, description = "An unknown client or backend, an invalid or expired external token", body = DrfError),
        (status = 401, description = "invalid_client", body = DrfError),
        (status = 413, description = "The body is too large", body = DrfError),
    ))]
pub async fn convert_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<Arc<DrfFace>>,
) -> Result<HttpResponse, Fail> {
    let r = async {
        let p = params(&req, payload, &state, &["grant_type", "client_id", "client_secret", "backend", "token"]).await?;
        if param(&p, "grant_type") != Some("convert_token") {
            return Err(oauth(400, "unsupported_grant_type", None));
        }
        let (id, _) = client_credentials(&req, &p)?;
        let known = match &id {
            Some(id) => state.service.client_exists(id).await.map_err(unexpected)?,
            None => false,
        };
        if !known {
            return Err(Fail {
                status: 400,
                body: json!({"detail": "The application for this client_id does not exist."}),
                challenge: None,
            });
        }
        let client = authenticate_client(&state, &req, &p).await?;
        let backend = param(&p, "backend").ok_or_else(|| oauth(400, "invalid_request", Some("Request is missing backend parameter.")))?;
        let token = param(&p, "token").ok_or_else(|| oauth(400, "invalid_request", Some("Request is missing token parameter.")))?;
        let provider = face.providers.get(backend).ok_or_else(|| oauth(400, "invalid_request", Some("Invalid backend parameter.")))?;
        let denied =
            || Fail { status: 400, body: json!({"access_denied": "The token you provided is invalid or expired."}), challenge: None };
        let now = OffsetDateTime::now_utc();
        let user = match state.service.user_for_external_token(backend, provider.as_ref(), token, now).await {
            Ok(user) => user,
            Err(DomainError::Auth(AuthError::TokenInvalid)) => return Err(denied()),
            Err(e) => return Err(unexpected(e)),
        };
        match state.service.open_session(&face.face, &user, origin(&req, &client), now).await {
            Ok(pair) => Ok(token_body(&face, pair)),
            Err(DomainError::Auth(AuthError::UserBlocked)) => Err(oauth(400, "invalid_grant", Some("The account is blocked."))),
            Err(DomainError::Auth(AuthError::UnknownClient)) => Err(invalid_client()),
            Err(e) => Err(unexpected(e)),
        }
    }
    .await;
    r.map(success)
}

/// The token of `Authorization: Bearer`, if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty())
}

/// Revokes a token: `token` with client credentials (older form), or `Authorization: Bearer
/// <token>` with `client_id` (newer form). 204 whatever the token was.
#[utoipa::path(post, path = "/auth/revoke-token",
    request_body(content(
        (DrfRevokeRequest = "application/x-www-form-urlencoded"),
        (DrfRevokeRequest = "application/json"),
    )),
    responses(
        (status = 204, description = "Revoked, or there was nothing to revoke"),
        (status = 400, description = "invalid_request", body = DrfError),
        (status = 401, description = "invalid_client", body = DrfError),
        (status = 413, description = "The body is too large", body = DrfError),
    ))]
pub async fn revoke_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<Arc<DrfFace>>,
) -> Result<HttpResponse, Fail> {
    let r = async {
        let p = params(&req, payload, &state, &["token", "client_id", "client_secret"]).await?;
        let token = match (param(&p, "token"), bearer(&req)) {
            (Some(t), _) => t.to_owned(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => return Err(oauth(400, "invalid_request", Some("Missing token parameter."))),
        };
        let client_id = if bearer(&req).is_some() && param(&p, "client_secret").is_none() {
            let id = param(&p, "client_id").ok_or_else(invalid_client)?;
            if !state.service.client_exists(id).await.map_err(unexpected)? {
                return Err(invalid_client());
            }
            id.to_owned()
        } else {
            authenticate_client(&state, &req, &p).await?.client_id.as_str().to_owned()
        };
        let now = OffsetDateTime::now_utc();
        state.service.revoke_token(&face.face, &token, &client_id, now).await.map_err(unexpected)?;
        Ok((204, None))
    }
    .await;
    r.map(success)
}

/// The caller of `invalidate-*`: a live access token of ours.
fn caller(req: &HttpRequest, state: &FaceContext, face: &DrfFace) -> Result<tessera_domain::AccessContext, Fail> {
    let refuse = |expired: bool| Fail {
        status: 401,
        body: json!({"detail": "Authentication credentials were not provided."}),
        challenge: Some(if expired {
            "Bearer realm=\"api\",error=\"invalid_token\",error_description=\"The access token has expired.\""
        } else {
            "Bearer realm=\"api\",error=\"invalid_token\",error_description=\"The access token is invalid.\""
        }),
    };
    let token = bearer(req).ok_or_else(|| refuse(false))?;
    state.service.resolve_access(&face.face, token, OffsetDateTime::now_utc()).map_err(|e| refuse(e == AuthError::TokenExpired))
}

async fn invalidate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<Arc<DrfFace>>,
    sessions: bool,
) -> Result<HttpResponse, Fail> {
    let r = async {
        let ctx = caller(&req, &state, &face)?;
        let p = params(&req, payload, &state, &["client_id"]).await?;
        let client_id = param(&p, "client_id").ok_or_else(|| oauth(400, "invalid_request", Some("Missing client_id parameter.")))?;
        let now = OffsetDateTime::now_utc();
        if sessions {
            state.service.revoke_client_sessions(ctx.user_id, client_id, now).await.map_err(unexpected)?;
        } else {
            state.service.expire_client_refresh_tokens(ctx.user_id, client_id, now).await.map_err(unexpected)?;
        }
        Ok((204, None))
    }
    .await;
    r.map(success)
}

/// Every token of the caller (`Authorization: Bearer <access>`) for that client ends.
#[utoipa::path(post, path = "/auth/invalidate-sessions", security(("drf_bearer" = [])),
    request_body(content(
        (DrfInvalidateRequest = "application/x-www-form-urlencoded"),
        (DrfInvalidateRequest = "application/json"),
    )),
    responses(
        (status = 204, description = "Invalidated"),
        (status = 400, description = "invalid_request", body = DrfError),
        (status = 401, description = "Authentication credentials were not provided", body = DrfError),
        (status = 413, description = "The body is too large", body = DrfError),
    ))]
pub async fn invalidate_sessions(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<Arc<DrfFace>>,
) -> Result<HttpResponse, Fail> {
    invalidate(req, payload, state, face, true).await
}

/// Only the refresh tokens of the caller for that client end; access tokens live on.
#[utoipa::path(post, path = "/auth/invalidate-refresh-tokens", security(("drf_bearer" = [])),
    request_body(content(
        (DrfInvalidateRequest = "application/x-www-form-urlencoded"),
        (DrfInvalidateRequest = "application/json"),
    )),
    responses(
        (status = 204, description = "Invalidated"),
        (status = 400, description = "invalid_request", body = DrfError),
        (status = 401, description = "Authentication credentials were not provided", body = DrfError),
        (status = 413, description = "The body is too large", body = DrfError),
    ))]
pub async fn invalidate_refresh_tokens(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<Arc<DrfFace>>,
) -> Result<HttpResponse, Fail> {
    invalidate(req, payload, state, face, false).await
}

/// DRF's 405, with `Allow`.
fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, HeaderValue::from_str(&format!("{allow}, OPTIONS")).unwrap_or(HeaderValue::from_static("POST"))))
        .json(json!({"detail": format!("Method \"{}\" not allowed.", req.method())}))
}

use tessera_http::request::{HttpMethod, Mount, Route};

/// The face's routes, under its prefixes.
pub const ROUTES: [Route; 5] = [
    Route { path: "/auth/token", method: HttpMethod::Post, make: || web::post().to(token), doc: "/auth/token" },
    Route { path: "/auth/convert-token", method: HttpMethod::Post, make: || web::post().to(convert_token), doc: "/auth/convert-token" },
    Route { path: "/auth/revoke-token", method: HttpMethod::Post, make: || web::post().to(revoke_token), doc: "/auth/revoke-token" },
    Route {
        path: "/auth/invalidate-sessions",
        method: HttpMethod::Post,
        make: || web::post().to(invalidate_sessions),
        doc: "/auth/invalidate-sessions",
    },
    Route {
        path: "/auth/invalidate-refresh-tokens",
        method: HttpMethod::Post,
        make: || web::post().to(invalidate_refresh_tokens),
        doc: "/auth/invalidate-refresh-tokens",
    },
];

/// Every handler of the face, as each documents itself.
#[derive(utoipa::OpenApi)]
#[openapi(paths(token, convert_token, revoke_token, invalidate_sessions, invalidate_refresh_tokens))]
pub struct Handlers;

pub fn configure(cfg: &mut web::ServiceConfig, at: &Mount, face: Arc<DrfFace>) {
    tessera_http::request::mount(cfg, &web::Data::new(face), at, &ROUTES, method_not_allowed);
}
