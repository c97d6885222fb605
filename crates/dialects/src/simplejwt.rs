//! djangorestframework-simplejwt (seed 001) and djoser's JWT endpoints (seed 003), which mount
//! simplejwt's views: token pairs as signed JWTs, `{"detail", "code"}` errors, DRF's field
//! errors, and `WWW-Authenticate: <scheme> realm="api"` on every 401.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_domain::keys::TimedClaims;
use tessera_domain::secret::RefreshSecret;
use tessera_domain::{
    AccessView, Algorithm, AuthError, DomainError, Face, Keyring, LegacyKey, LegacyToken, LoginOrigin, OffsetDateTime, RefreshInput,
    RefreshRecord, RefreshView, Refreshed, Rule, Session, SessionId, TokenFormat, TokenKind, User, UserId,
};
use uuid::Uuid;

use crate::FaceContext;
use crate::docs::{DjoserRegister, DjoserUser, Empty, SjError, SjObtain, SjPair, SjRefresh, SjRefreshed, SjVerify};
use crate::drf::{self, DrfError};
use tessera_http::body::read_limited;

/// The faces' names, recorded on the sessions they open.
pub const SIMPLEJWT: &str = "simplejwt";
pub const DJOSER: &str = "djoser";

/// One mounted face: simplejwt itself, or djoser.
#[derive(Debug, Clone)]
pub struct SjFace {
    /// 5.5 and later: split invalid/expired texts, `user_id` as a string.
    pub era_55: bool,
    pub username_field: &'static str,
    /// `Bearer` (simplejwt) or `JWT` (djoser).
    pub scheme: &'static str,
    pub face: Arc<Face>,
}

/// How simplejwt writes and reads its tokens: both are HS256 JWTs; the refresh token's `jti`
/// is the refresh secret.
#[derive(Debug, Clone)]
pub struct SjFormat {
    pub era_55: bool,
    /// simplejwt's `ALGORITHM`.
    pub alg: Algorithm,
    /// The original deployment's signing key, when its tokens are to be accepted.
    pub legacy: Option<LegacyKey>,
}

/// simplejwt's claims, in its order; `sid` is ours (revocation), and `aud` is the library's
/// own `AUDIENCE` setting, which Tessera always sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SjClaims {
    pub token_type: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub user_id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl TimedClaims for SjClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

impl SjFormat {
    fn user_id(&self, id: i64) -> Value {
        if self.era_55 { Value::String(id.to_string()) } else { json!(id) }
    }

    fn read(&self, keyring: &Keyring, token: &str, want: &str, now: Option<OffsetDateTime>) -> Result<SjClaims, AuthError> {
        let claims: SjClaims = keyring.verify_at(token, &[self.alg], now)?;
        if claims.token_type != want {
            return Err(AuthError::WrongTokenType);
        }
        Ok(claims)
    }
}

impl TokenFormat for SjFormat {
    fn secret_len(&self) -> usize {
        RefreshSecret::JTI_LEN
    }

    fn keys_live_as_long_as_refresh_tokens(&self) -> bool {
        true
    }

    fn render_access(
        &self,
        keyring: &Keyring,
        aud: &str,
        session: &Session,
        jti: Uuid,
        issued_at: OffsetDateTime,
    ) -> Result<String, DomainError> {
        let iat = issued_at.unix_timestamp();
        let access = SjClaims {
            token_type: "access".into(),
            exp: iat + session.profile.access_ttl().whole_seconds(),
            iat,
            jti: jti.simple().to_string(),
            user_id: self.user_id(session.user_id.0),
            sid: Some(session.id.0),
            aud: Some(aud.to_owned()),
        };
        keyring.sign(self.alg, "JWT", &access)
    }

    fn render_refresh(
        &self,
        keyring: &Keyring,
        aud: &str,
        session: &Session,
        record: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<String, DomainError> {
        let refresh = SjClaims {
            token_type: "refresh".into(),
            exp: record.expires_at.unix_timestamp(),
            iat: record.issued_at.unix_timestamp(),
            jti: secret.to_hex(),
            user_id: self.user_id(session.user_id.0),
            sid: None,
            aud: Some(aud.to_owned()),
        };
        keyring.sign(self.alg, "JWT", &refresh)
    }

    fn read_access(&self, keyring: &Keyring, token: &str, now: Option<OffsetDateTime>) -> Result<AccessView, AuthError> {
        let c = self.read(keyring, token, "access", now)?;
        let sid = c.sid.ok_or(AuthError::TokenInvalid)?;
        let user_id = c.user_id.as_i64().or_else(|| c.user_id.as_str().and_then(|s| s.parse().ok())).ok_or(AuthError::TokenInvalid)?;
        let jti = Uuid::parse_str(&c.jti).map_err(|_| AuthError::TokenInvalid)?;
        Ok(AccessView {
            user_id: UserId(user_id),
            session_id: SessionId(sid),
            jti,
            audience: c.aud,
            expires_at: c.exp,
            client_id: None,
            dpop_jkt: None,
        })
    }

    fn read_refresh(&self, keyring: &Keyring, token: &str, now: OffsetDateTime) -> Result<RefreshView, AuthError> {
        let c = self.read(keyring, token, "refresh", Some(now))?;
        let secret = RefreshSecret::from_hex(&c.jti).ok_or(AuthError::TokenInvalid)?;
        Ok(RefreshView { secret, audience: c.aud })
    }

    /// simplejwt's own tokens: `token_type`, `user_id` (`USER_ID_CLAIM`), a hex `jti`.
    fn read_legacy(&self, token: &str, kind: TokenKind, now: OffsetDateTime) -> Option<Result<LegacyToken, AuthError>> {
        self.legacy.as_ref()?.read(token, kind, "token_type", &["user_id"], now)
    }
}

const TOKEN_ALLOW: &str = "POST, OPTIONS";

impl SjFace {
    fn bad_token_text(&self, e: AuthError) -> &'static str {
        match (self.era_55, e) {
            (false, _) => "Token is invalid or expired",
            (true, AuthError::TokenExpired) => "Token is expired",
            (true, _) => "Token is invalid",
        }
    }

    // The face's words for the domain's errors: every mapping of the face is here.

    /// A refused login: one answer whatever the reason, as the library gives.
    fn login_error(e: DomainError) -> DrfError {
        match e {
            DomainError::Auth(_) | DomainError::Invalid { .. } => {
                (401, json!({"detail": "No active account found with the given credentials"}))
            }
            other => unexpected(other),
        }
    }

    /// djoser's registration errors, per field as DRF's serializer words them.
    fn register_error(e: DomainError) -> DrfError {
        match e {
            DomainError::EmailTaken => (400, json!({"email": ["user with this email already exists."]})),
            DomainError::Invalid { field: "email", .. } => (400, json!({"email": ["Enter a valid email address."]})),
            DomainError::Invalid { field: "password", rule: Rule::TooShort { min_chars }, .. } => {
                (400, json!({"password": [format!("This password is too short. It must contain at least {min_chars} characters.")]}))
            }
            DomainError::Invalid { field, message, .. } => (400, json!({ field: [format!("Ensure this field {message}.")] })),
            other => unexpected(other),
        }
    }

    /// A refused token (refresh, verify, blacklist).
    fn token_error(&self, e: DomainError) -> DrfError {
        let a = match e {
            DomainError::Auth(a) => a,
            other => return unexpected(other),
        };
        let detail = match a {
            AuthError::WrongTokenType => "Token has wrong type",
            AuthError::TokenRevoked | AuthError::TokenReused | AuthError::RiskRefused { revoked: true, .. } => "Token is blacklisted",
            AuthError::UserBlocked | AuthError::UnknownUser => {
                return (401, json!({"detail": "No active account found for the given token.", "code": "no_active_account"}));
            }
            other => self.bad_token_text(other),
        };
        (401, json!({"detail": detail, "code": "token_not_valid"}))
    }
}

fn unexpected(e: DomainError) -> DrfError {
    if let Some((status, secs)) = tessera_http::request::retry_later(&e) {
        return drf::retry_later(status, secs);
    }
    (tessera_http::request::unexpected(&e), json!({"detail": "A server error occurred."}))
}

async fn body(req: &HttpRequest, payload: web::Payload, state: &FaceContext) -> Result<Map<String, Value>, DrfError> {
    let bytes = read_limited(payload, state.max_body_bytes).await;
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    drf::parse_json(ct, bytes.as_ref().map(|b| &b[..]).map_err(Clone::clone))
}

/// DRF's answer: JSON, the view's `Allow`, and on a 401 the authentication scheme's challenge.
fn respond(status: u16, body: &Value, allow: &str, scheme: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
    if let Ok(v) = HeaderValue::from_str(allow) {
        res.insert_header((header::ALLOW, v));
    }
    if status == StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str(&format!("{scheme} realm=\"api\""))
    {
        res.insert_header((header::WWW_AUTHENTICATE, v));
    }
    res.body(body.to_string())
}

/// A refusal in DRF's words, with what its answer needs (the view's `Allow`, the scheme of the
/// challenge): an actix [`ResponseError`](actix_web::ResponseError), so that a handler's `?`
/// answers it.
#[derive(Debug)]
pub struct DrfRefusal {
    status: u16,
    body: Value,
    allow: &'static str,
    scheme: &'static str,
}

impl std::fmt::Display for DrfRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl actix_web::ResponseError for DrfRefusal {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }
    fn error_response(&self) -> HttpResponse {
        respond(self.status, &self.body, self.allow, self.scheme)
    }
}

fn finish(face: &SjFace, allow: &'static str, r: Result<(u16, Value), DrfError>) -> Result<HttpResponse, DrfRefusal> {
    match r {
        Ok((status, body)) => Ok(respond(status, &body, allow, face.scheme)),
        Err((status, body)) => Err(DrfRefusal { status, body, allow, scheme: face.scheme }),
    }
}

/// Log in: the e-mail (or, with `username_field = "username"`, the username) and password to a
/// token pair.
#[utoipa::path(post, path = "/api/token/", request_body(content = SjObtain, content_type = "application/json"),
    responses(
        (status = 200, description = "A token pair", body = SjPair),
        (status = 400, description = "A missing or blank field, malformed JSON", body = SjError),
        (status = 401, description = "No active account found with the given credentials", body = SjError),
        (status = 413, description = "The body is too large", body = SjError),
        (status = 415, description = "The body is not JSON", body = SjError),
        (status = 429, description = "Request was throttled (DRF's words): too many attempts from this address, or the account is locked out here for a while", body = SjError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "Too many password hashes wait", body = SjError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn obtain_pair(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<SjFace>,
) -> Result<HttpResponse, DrfRefusal> {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let login = drf::char_field(&data, face.username_field, &mut errors);
        let password = drf::char_field(&data, "password", &mut errors);
        let (Some(login), Some(password)) = (login, password) else { return Err((400, Value::Object(errors))) };
        let origin = LoginOrigin { request: tessera_http::request::request_meta(&req), ..LoginOrigin::default() };
        match state.service.login_password(&face.face, &login, password, origin, OffsetDateTime::now_utc()).await {
            Ok(pair) => Ok((200, json!({"refresh": pair.refresh_token, "access": pair.access_token}))),
            Err(e) => Err(SjFace::login_error(e)),
        }
    }
    .await;
    finish(&face, TOKEN_ALLOW, r)
}

/// Refresh: a refresh token to a new access token (`refresh_policy = "reuse"`, the library's
/// default: keep the refresh token), or to a new pair with the old token blacklisted (`rotate`).
#[utoipa::path(post, path = "/api/token/refresh/", request_body(content = SjRefresh, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"access\"}`, or with rotation `{\"access\",\"refresh\"}`", body = SjRefreshed),
        (status = 400, description = "A missing or blank field, malformed JSON", body = SjError),
        (status = 401, description = "Token is invalid or expired, blacklisted, or of the wrong type", body = SjError),
        (status = 413, description = "The body is too large", body = SjError),
        (status = 415, description = "The body is not JSON", body = SjError),
    ))]
pub async fn refresh_pair(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<SjFace>,
) -> Result<HttpResponse, DrfRefusal> {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let Some(token) = drf::char_field(&data, "refresh", &mut errors) else { return Err((400, Value::Object(errors))) };
        let input = RefreshInput { request: tessera_http::request::request_meta(&req), ..RefreshInput::default() };
        match state.service.refresh(&face.face, &token, input, OffsetDateTime::now_utc()).await {
            Ok(Refreshed::Pair(pair)) => Ok((200, json!({"access": pair.access_token, "refresh": pair.refresh_token}))),
            Ok(Refreshed::Access(a)) => Ok((200, json!({"access": a.access_token}))),
            Err(e) => Err(face.token_error(e)),
        }
    }
    .await;
    finish(&face, TOKEN_ALLOW, r)
}

/// djoser, as its documented clients call it: the refresh as a GET with a JSON body, answered as the POST.
#[utoipa::path(get, path = "/api/token/refresh/", request_body(content = SjRefresh, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"access\"}`, or with rotation `{\"access\",\"refresh\"}`", body = SjRefreshed),
        (status = 400, description = "A missing or blank field, malformed JSON", body = SjError),
        (status = 401, description = "Token is invalid or expired, blacklisted, or of the wrong type", body = SjError),
        (status = 413, description = "The body is too large", body = SjError),
        (status = 415, description = "The body is not JSON", body = SjError),
    ))]
pub async fn refresh_pair_get(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<SjFace>,
) -> Result<HttpResponse, DrfRefusal> {
    refresh_pair(req, payload, state, face).await
}

/// Verify any token of this API (access or refresh): `{}` when it is valid.
#[utoipa::path(post, path = "/api/token/verify/", request_body(content = SjVerify, content_type = "application/json"),
    responses(
        (status = 200, description = "The token is valid", body = Empty),
        (status = 400, description = "A missing field, malformed JSON, or a blacklisted refresh token", body = SjError),
        (status = 401, description = "Token is invalid or expired", body = SjError),
        (status = 413, description = "The body is too large", body = SjError),
        (status = 415, description = "The body is not JSON", body = SjError),
    ))]
pub async fn verify_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<SjFace>,
) -> Result<HttpResponse, DrfRefusal> {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let Some(token) = drf::char_field(&data, "token", &mut errors) else { return Err((400, Value::Object(errors))) };
        let now = OffsetDateTime::now_utc();
        match state.service.accept_access(&face.face, &token, now).await {
            Ok(_) => Ok((200, json!({}))),
            Err(DomainError::Auth(AuthError::WrongTokenType)) => match state.service.check_refresh(&face.face, &token, now).await {
                Ok(_) => Ok((200, json!({}))),
                // blocking revokes every session: its tokens are blacklisted too
                Err(DomainError::Auth(AuthError::TokenRevoked | AuthError::UserBlocked)) => {
                    Err((400, json!({"non_field_errors": ["Token is blacklisted"]})))
                }
                Err(e) => Err(face.token_error(e)),
            },
            // an access token of a revoked session, or of a user who is not (or no longer) here,
            // is no longer valid
            Err(DomainError::Auth(AuthError::TokenRevoked | AuthError::UnknownUser | AuthError::UserBlocked)) => {
                Err(face.token_error(AuthError::TokenInvalid.into()))
            }
            Err(e) => Err(face.token_error(e)),
        }
    }
    .await;
    finish(&face, TOKEN_ALLOW, r)
}

/// Log out: the refresh token's session ends, and with it its access tokens.
#[utoipa::path(post, path = "/api/token/blacklist/", request_body(content = SjRefresh, content_type = "application/json"),
    responses(
        (status = 200, description = "Blacklisted", body = Empty),
        (status = 400, description = "A missing or blank field, malformed JSON", body = SjError),
        (status = 401, description = "Token is invalid or expired, or already blacklisted", body = SjError),
        (status = 413, description = "The body is too large", body = SjError),
        (status = 415, description = "The body is not JSON", body = SjError),
    ))]
pub async fn blacklist_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<SjFace>,
) -> Result<HttpResponse, DrfRefusal> {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let Some(token) = drf::char_field(&data, "refresh", &mut errors) else { return Err((400, Value::Object(errors))) };
        match state.service.logout_refresh(&face.face, &token, OffsetDateTime::now_utc()).await {
            Ok(()) => Ok((200, json!({}))),
            Err(DomainError::Auth(AuthError::UserBlocked)) => Err(face.token_error(AuthError::TokenRevoked.into())),
            Err(e) => Err(face.token_error(e)),
        }
    }
    .await;
    finish(&face, TOKEN_ALLOW, r)
}

const ME_ALLOW: &str = "GET, HEAD, OPTIONS";

/// simplejwt's JWTAuthentication: the user an `Authorization: <scheme> <access>` header names.
async fn authenticate(req: &HttpRequest, state: &FaceContext, face: &SjFace) -> Result<User, DrfError> {
    let not_provided = (401, json!({"detail": "Authentication credentials were not provided."}));
    let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Err(not_provided) };
    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.is_empty() || parts[0] != face.scheme {
        return Err(not_provided);
    }
    if parts.len() != 2 {
        return Err((
            401,
            json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}),
        ));
    }
    let invalid = |message: &str| {
        (
            401,
            json!({"detail": "Given token not valid for any token type", "code": "token_not_valid",
                   "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}]}),
        )
    };
    let ctx = match state.service.accept_access(&face.face, parts[1], OffsetDateTime::now_utc()).await {
        Ok(c) => c,
        Err(DomainError::Auth(AuthError::WrongTokenType)) => return Err(invalid("Token has wrong type")),
        Err(DomainError::Auth(AuthError::UserBlocked)) => {
            return Err((401, json!({"detail": "User is inactive", "code": "user_inactive"})));
        }
        Err(DomainError::Auth(AuthError::UnknownUser)) => return Err((401, json!({"detail": "User not found", "code": "user_not_found"}))),
        Err(DomainError::Auth(e)) => return Err(invalid(face.bad_token_text(e))),
        Err(e) => return Err(unexpected(e)),
    };
    match state.service.current_user(&ctx).await {
        Ok(u) => Ok(u),
        Err(DomainError::Auth(AuthError::UserBlocked)) => Err((401, json!({"detail": "User is inactive", "code": "user_inactive"}))),
        Err(DomainError::Auth(_)) => Err((401, json!({"detail": "User not found", "code": "user_not_found"}))),
        Err(e) => Err(unexpected(e)),
    }
}

fn user_body(u: &User) -> Value {
    json!({"email": u.email.as_str(), "id": u.id.0, "username": u.email.as_str()})
}

/// djoser: the caller's account, with `Authorization: JWT <access>`.
#[utoipa::path(get, path = "/users/me/", security(("djoser_jwt" = [])),
    responses(
        (status = 200, description = "The caller", body = DjoserUser),
        (status = 401, description = "Authentication credentials were not provided, or the token is not valid", body = SjError),
    ))]
pub async fn get_me(req: HttpRequest, state: web::Data<FaceContext>, face: web::Data<SjFace>) -> Result<HttpResponse, DrfRefusal> {
    let r = authenticate(&req, &state, &face).await.map(|u| (200, user_body(&u)));
    finish(&face, ME_ALLOW, r)
}

/// djoser: registration.
#[utoipa::path(post, path = "/users/", request_body(content = DjoserRegister, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = DjoserUser),
        (status = 400, description = "Per-field errors: a taken or invalid e-mail, a short password", body = SjError),
        (status = 413, description = "The body is too large", body = SjError),
        (status = 415, description = "The body is not JSON", body = SjError),
        (status = 429, description = "Too many password attempts from this address", body = SjError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "Too many password hashes wait", body = SjError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn create_user(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<SjFace>,
) -> Result<HttpResponse, DrfRefusal> {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let email = drf::char_field(&data, "email", &mut errors);
        let password = drf::char_field(&data, "password", &mut errors);
        let (Some(email), Some(password)) = (email, password) else { return Err((400, Value::Object(errors))) };
        let ip = tessera_http::request::client_ip(&req);
        match state.service.register_from(&email, password, ip.as_deref(), OffsetDateTime::now_utc()).await {
            Ok(u) => Ok((201, user_body(&u))),
            Err(e) => Err(SjFace::register_error(e)),
        }
    }
    .await;
    finish(&face, "POST, OPTIONS", r)
}

/// DRF's 405: its body, and `Allow` with the methods served plus DRF's OPTIONS.
fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((header::ALLOW, HeaderValue::from_str(&format!("{allow}, OPTIONS")).unwrap_or(HeaderValue::from_static("POST"))))
        .body(json!({"detail": format!("Method \"{}\" not allowed.", req.method())}).to_string())
}

use tessera_http::request::{HttpMethod, Mount, Route};

/// simplejwt's routes, under its prefixes.
pub const SIMPLEJWT_ROUTES: [Route; 4] = [
    Route { path: "/api/token", method: HttpMethod::Post, make: || web::post().to(obtain_pair), doc: "/api/token/" },
    Route { path: "/api/token/refresh", method: HttpMethod::Post, make: || web::post().to(refresh_pair), doc: "/api/token/refresh/" },
    Route { path: "/api/token/verify", method: HttpMethod::Post, make: || web::post().to(verify_token), doc: "/api/token/verify/" },
    Route {
        path: "/api/token/blacklist",
        method: HttpMethod::Post,
        make: || web::post().to(blacklist_token),
        doc: "/api/token/blacklist/",
    },
];

/// djoser's routes: simplejwt's views at djoser's paths, registration and the caller. Seed 003
/// sends its refresh as a GET with a JSON body: it is answered as the POST.
pub const DJOSER_ROUTES: [Route; 6] = [
    Route { path: "/auth/jwt/create", method: HttpMethod::Post, make: || web::post().to(obtain_pair), doc: "/api/token/" },
    Route { path: "/auth/jwt/refresh", method: HttpMethod::Post, make: || web::post().to(refresh_pair), doc: "/api/token/refresh/" },
    Route { path: "/auth/jwt/refresh", method: HttpMethod::Get, make: || web::get().to(refresh_pair_get), doc: "/api/token/refresh/" },
    Route { path: "/auth/jwt/verify", method: HttpMethod::Post, make: || web::post().to(verify_token), doc: "/api/token/verify/" },
    Route { path: "/users", method: HttpMethod::Post, make: || web::post().to(create_user), doc: "/users/" },
    Route { path: "/users/me", method: HttpMethod::Get, make: || web::get().to(get_me), doc: "/users/me/" },
];

/// Every handler of the two faces, as each documents itself.
#[derive(utoipa::OpenApi)]
#[openapi(paths(obtain_pair, refresh_pair, refresh_pair_get, verify_token, blacklist_token, create_user, get_me))]
pub struct Handlers;

/// Mounts a simplejwt face.
pub fn configure_simplejwt(cfg: &mut web::ServiceConfig, at: &Mount, face: SjFace) {
    tessera_http::request::mount(cfg, &web::Data::new(face), at, &SIMPLEJWT_ROUTES, method_not_allowed);
}

/// Mounts djoser.
pub fn configure_djoser(cfg: &mut web::ServiceConfig, at: &Mount, face: SjFace) {
    tessera_http::request::mount(cfg, &web::Data::new(face), at, &DJOSER_ROUTES, method_not_allowed);
}
