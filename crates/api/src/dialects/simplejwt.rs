//! djangorestframework-simplejwt (seed 001) and djoser's JWT endpoints (seed 003), which mount
//! simplejwt's views: token pairs as signed JWTs, `{"detail", "code"}` errors, DRF's field
//! errors, and `WWW-Authenticate: <scheme> realm="api"` on every 401.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_domain::keys::TimedClaims;
use tessera_domain::secret::RefreshSecret;
use tessera_domain::service::LoginOrigin;
use tessera_domain::{
    Algorithm, AuthError, DomainError, Duration, Keyring, OffsetDateTime, RefreshRecord, RenderedPair, Session, SessionId, TokenFormat,
    TokenProfile, User, UserStatus,
};
use uuid::Uuid;

use super::drf::{self, DrfError};
use crate::body::read_limited;
use crate::state::AppState;

/// One mounted face: simplejwt itself, or djoser.
#[derive(Debug, Clone)]
pub struct SjFace {
    pub name: &'static str,
    /// 5.5 and later: split invalid/expired texts, `user_id` as a string.
    pub era_55: bool,
    pub username_field: &'static str,
    /// `Bearer` (simplejwt) or `JWT` (djoser).
    pub scheme: &'static str,
    pub profile: TokenProfile,
    pub grace: Duration,
}

/// simplejwt's claims, in its order; `sid` is ours (revocation).
#[derive(Debug, Serialize, Deserialize)]
pub struct SjClaims {
    pub token_type: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub user_id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

impl TimedClaims for SjClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

impl TokenFormat for SjFace {
    fn secret_len(&self) -> usize {
        RefreshSecret::JTI_LEN
    }

    fn refresh_grace(&self) -> Option<Duration> {
        Some(self.grace)
    }

    fn render(
        &self,
        keyring: &Keyring,
        session: &Session,
        record: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<RenderedPair, DomainError> {
        let iat = record.issued_at.unix_timestamp();
        let access = SjClaims {
            token_type: "access".into(),
            exp: iat + session.profile.access_ttl().whole_seconds(),
            iat,
            jti: record.access_jti.simple().to_string(),
            user_id: self.user_id(session.user_id.0),
            sid: Some(session.id.0),
        };
        let refresh = SjClaims {
            token_type: "refresh".into(),
            exp: record.expires_at.unix_timestamp(),
            iat,
            jti: secret.to_hex(),
            user_id: self.user_id(session.user_id.0),
            sid: None,
        };
        Ok(RenderedPair {
            access_token: keyring.sign(Algorithm::HS256, "JWT", &access)?,
            refresh_token: keyring.sign(Algorithm::HS256, "JWT", &refresh)?,
        })
    }
}

const TOKEN_ALLOW: &str = "POST, OPTIONS";

impl SjFace {
    fn user_id(&self, id: i64) -> Value {
        if self.era_55 { Value::String(id.to_string()) } else { json!(id) }
    }

    fn bad_token_text(&self, e: AuthError) -> &'static str {
        match (self.era_55, e) {
            (false, _) => "Token is invalid or expired",
            (true, AuthError::TokenExpired) => "Token is expired",
            (true, _) => "Token is invalid",
        }
    }

    fn respond(&self, status: u16, body: Value, allow: &str) -> HttpResponse {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let Ok(v) = HeaderValue::from_str(allow) {
            res.insert_header((header::ALLOW, v));
        }
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = HeaderValue::from_str(&format!("{} realm=\"api\"", self.scheme))
        {
            res.insert_header((header::WWW_AUTHENTICATE, v));
        }
        res.body(body.to_string())
    }

    fn token_error(&self, e: AuthError) -> DrfError {
        let detail = match e {
            AuthError::WrongTokenType => "Token has wrong type",
            AuthError::TokenRevoked | AuthError::TokenReused => "Token is blacklisted",
            AuthError::UserBlocked | AuthError::UnknownUser => {
                return (401, json!({"detail": "No active account found for the given token.", "code": "no_active_account"}));
            }
            other => self.bad_token_text(other),
        };
        (401, json!({"detail": detail, "code": "token_not_valid"}))
    }

    /// Verifies a token of ours and checks its type.
    fn decode(&self, state: &AppState, token: &str, want: &str) -> Result<SjClaims, AuthError> {
        let claims: SjClaims = state.service.keyring().verify(token, &[Algorithm::HS256], OffsetDateTime::now_utc())?;
        if claims.token_type != want {
            return Err(AuthError::WrongTokenType);
        }
        Ok(claims)
    }

    fn refresh_secret(&self, state: &AppState, token: &str) -> Result<RefreshSecret, AuthError> {
        let claims = self.decode(state, token, "refresh")?;
        RefreshSecret::from_hex(&claims.jti).ok_or(AuthError::TokenInvalid)
    }
}

fn unexpected(e: DomainError) -> DrfError {
    let p = crate::problem::unexpected(&e);
    (p.status.as_u16(), json!({"detail": "A server error occurred."}))
}

async fn body(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<Map<String, Value>, DrfError> {
    let bytes = read_limited(payload, state.settings.server.max_body_bytes).await;
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    drf::parse_json(ct, bytes.as_ref().map(|b| &b[..]).map_err(Clone::clone))
}

fn finish(face: &SjFace, allow: &str, r: Result<(u16, Value), DrfError>) -> HttpResponse {
    let (status, body) = r.unwrap_or_else(|e| e);
    face.respond(status, body, allow)
}

/// `POST /api/token/`: e-mail (or username) and password to a pair.
pub async fn obtain_pair(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>, face: web::Data<SjFace>) -> HttpResponse {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let login = drf::char_field(&data, face.username_field, &mut errors);
        let password = drf::char_field(&data, "password", &mut errors);
        let (Some(login), Some(password)) = (login, password) else { return Err((400, Value::Object(errors))) };
        let origin = LoginOrigin {
            client_id: None,
            face: face.name,
            profile: &face.profile,
            ip: super::client_ip(&req),
            user_agent: super::user_agent(&req),
            subject: None,
        };
        match state.service.login_password(&login, password, origin, &**face, OffsetDateTime::now_utc()).await {
            Ok(pair) => Ok((200, json!({"refresh": pair.refresh_token, "access": pair.access_token}))),
            Err(DomainError::Auth(_) | DomainError::Invalid { .. }) => {
                Err((401, json!({"detail": "No active account found with the given credentials"})))
            }
            Err(e) => Err(unexpected(e)),
        }
    }
    .await;
    finish(&face, TOKEN_ALLOW, r)
}

/// `POST /api/token/refresh/`: a refresh token to a new pair (rotation, blacklisting the old).
pub async fn refresh_pair(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>, face: web::Data<SjFace>) -> HttpResponse {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let Some(token) = drf::char_field(&data, "refresh", &mut errors) else { return Err((400, Value::Object(errors))) };
        let secret = face.refresh_secret(&state, &token).map_err(|e| face.token_error(e))?;
        match state.service.refresh(&secret, None, None, &**face, OffsetDateTime::now_utc()).await {
            Ok(pair) => Ok((200, json!({"access": pair.access_token, "refresh": pair.refresh_token}))),
            Err(DomainError::Auth(a)) => Err(face.token_error(a)),
            Err(e) => Err(unexpected(e)),
        }
    }
    .await;
    finish(&face, TOKEN_ALLOW, r)
}

/// `POST /api/token/verify/`: any token of ours, access or refresh.
pub async fn verify_token(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>, face: web::Data<SjFace>) -> HttpResponse {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let Some(token) = drf::char_field(&data, "token", &mut errors) else { return Err((400, Value::Object(errors))) };
        let claims: SjClaims = state
            .service
            .keyring()
            .verify(&token, &[Algorithm::HS256], OffsetDateTime::now_utc())
            .map_err(|e| (401, json!({"detail": face.bad_token_text(e), "code": "token_not_valid"})))?;
        let blacklisted = (400, json!({"non_field_errors": ["Token is blacklisted"]}));
        match (claims.token_type.as_str(), claims.sid) {
            ("refresh", _) => {
                let secret = RefreshSecret::from_hex(&claims.jti).ok_or_else(|| face.token_error(AuthError::TokenInvalid))?;
                match state.service.check_refresh(&secret, OffsetDateTime::now_utc()).await {
                    Ok(_) => Ok((200, json!({}))),
                    // blocking revokes every session: its tokens are blacklisted too
                    Err(DomainError::Auth(AuthError::TokenRevoked | AuthError::UserBlocked)) => Err(blacklisted),
                    Err(DomainError::Auth(a)) => Err(face.token_error(a)),
                    Err(e) => Err(unexpected(e)),
                }
            }
            ("access", Some(sid)) if !state.service.is_revoked(SessionId(sid)) => Ok((200, json!({}))),
            _ => Err(face.token_error(AuthError::TokenInvalid)),
        }
    }
    .await;
    finish(&face, TOKEN_ALLOW, r)
}

/// `POST /api/token/blacklist/`: logout; the refresh token's session ends.
pub async fn blacklist_token(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>, face: web::Data<SjFace>) -> HttpResponse {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let Some(token) = drf::char_field(&data, "refresh", &mut errors) else { return Err((400, Value::Object(errors))) };
        let secret = face.refresh_secret(&state, &token).map_err(|e| face.token_error(e))?;
        let now = OffsetDateTime::now_utc();
        match state.service.check_refresh(&secret, now).await {
            Ok((_, session, _)) => {
                state.service.revoke_session(session.id, "logout", now).await.map_err(unexpected)?;
                Ok((200, json!({})))
            }
            Err(DomainError::Auth(AuthError::UserBlocked)) => Err(face.token_error(AuthError::TokenRevoked)),
            Err(DomainError::Auth(a)) => Err(face.token_error(a)),
            Err(e) => Err(unexpected(e)),
        }
    }
    .await;
    finish(&face, TOKEN_ALLOW, r)
}

const ME_ALLOW: &str = "GET, HEAD, OPTIONS";

/// simplejwt's JWTAuthentication: the user an `Authorization: <scheme> <access>` header names.
async fn authenticate(req: &HttpRequest, state: &AppState, face: &SjFace) -> Result<User, DrfError> {
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
    let claims = match face.decode(state, parts[1], "access") {
        Ok(c) => c,
        Err(AuthError::WrongTokenType) => return Err(invalid("Token has wrong type")),
        Err(e) => return Err(invalid(face.bad_token_text(e))),
    };
    let Some(sid) = claims.sid else { return Err(invalid(face.bad_token_text(AuthError::TokenInvalid))) };
    if state.service.is_revoked(SessionId(sid)) {
        return Err(invalid(face.bad_token_text(AuthError::TokenRevoked)));
    }
    let id = claims.user_id.as_i64().or_else(|| claims.user_id.as_str().and_then(|s| s.parse().ok())).unwrap_or(-1);
    match state.service.store().user_by_id(tessera_domain::UserId(id)).await.map_err(|e| unexpected(e.into()))? {
        Some(u) if u.status == UserStatus::Active => Ok(u),
        Some(_) => Err((401, json!({"detail": "User is inactive", "code": "user_inactive"}))),
        None => Err((401, json!({"detail": "User not found", "code": "user_not_found"}))),
    }
}

fn user_body(u: &User) -> Value {
    json!({"email": u.email.as_str(), "id": u.id.0, "username": u.email.as_str()})
}

/// djoser `GET /users/me/`.
pub async fn get_me(req: HttpRequest, state: web::Data<AppState>, face: web::Data<SjFace>) -> HttpResponse {
    let r = authenticate(&req, &state, &face).await.map(|u| (200, user_body(&u)));
    finish(&face, ME_ALLOW, r)
}

/// djoser `POST /users/`: registration.
pub async fn create_user(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>, face: web::Data<SjFace>) -> HttpResponse {
    let r = async {
        let data = body(&req, payload, &state).await?;
        let mut errors = Map::new();
        let email = drf::char_field(&data, "email", &mut errors);
        let password = drf::char_field(&data, "password", &mut errors);
        let (Some(email), Some(password)) = (email, password) else { return Err((400, Value::Object(errors))) };
        match state.service.register(&email, password, OffsetDateTime::now_utc()).await {
            Ok(u) => Ok((201, user_body(&u))),
            Err(DomainError::EmailTaken) => Err((400, json!({"email": ["user with this email already exists."]}))),
            Err(DomainError::Invalid { field: "email", .. }) => Err((400, json!({"email": ["Enter a valid email address."]}))),
            Err(DomainError::Invalid { field, message }) if field == "password" && message.starts_with("must be at least") => {
                let min = state.settings.password.min_length;
                Err((400, json!({"password": [format!("This password is too short. It must contain at least {min} characters.")]})))
            }
            Err(DomainError::Invalid { field, message }) => Err((400, json!({ field: [format!("Ensure this field {message}.")] }))),
            Err(e) => Err(unexpected(e)),
        }
    }
    .await;
    finish(&face, "POST, OPTIONS", r)
}

async fn method_not_allowed(req: HttpRequest, face: web::Data<SjFace>) -> HttpResponse {
    face.respond(405, json!({"detail": format!("Method \"{}\" not allowed.", req.method())}), TOKEN_ALLOW)
}

/// Mounts a simplejwt face: the four token views under `prefix`.
pub fn configure_simplejwt(cfg: &mut web::ServiceConfig, prefix: &str, face: SjFace) {
    let at = |path: &str| super::both_slashes(prefix, path).to_vec();
    let routes: [(Vec<String>, super::MakeRoute); 4] = [
        (at("/api/token"), || web::post().to(obtain_pair)),
        (at("/api/token/refresh"), || web::post().to(refresh_pair)),
        (at("/api/token/verify"), || web::post().to(verify_token)),
        (at("/api/token/blacklist"), || web::post().to(blacklist_token)),
    ];
    super::mount(cfg, &web::Data::new(face), &routes, || web::to(method_not_allowed));
}

/// Mounts djoser: its JWT views, registration and the caller's account, under `prefix`.
pub fn configure_djoser(cfg: &mut web::ServiceConfig, prefix: &str, face: SjFace) {
    let at = |path: &str| super::both_slashes(prefix, path).to_vec();
    let routes: [(Vec<String>, super::MakeRoute); 5] = [
        (at("/auth/jwt/create"), || web::post().to(obtain_pair)),
        (at("/auth/jwt/refresh"), || web::post().to(refresh_pair)),
        (at("/auth/jwt/verify"), || web::post().to(verify_token)),
        (at("/users"), || web::post().to(create_user)),
        (at("/users/me"), || web::get().to(get_me)),
    ];
    super::mount(cfg, &web::Data::new(face), &routes, || web::to(method_not_allowed));
}
