//! flask-jwt-extended (seed 004): both tokens are JWTs, the refresh token rides in
//! `Authorization: Bearer` and does not rotate, and errors are `{"msg": ...}` (or the seed
//! application's envelopes where it documents them). Texts and claims follow the 3.x library by
//! default, 4.x on request.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tessera_domain::keys::TimedClaims;
use tessera_domain::secret::RefreshSecret;
use tessera_domain::{
    AccessView, Algorithm, AuthError, DomainError, Face, Keyring, LegacyKey, LegacyToken, LoginOrigin, OffsetDateTime, RefreshInput,
    RefreshRecord, RefreshView, Session, SessionId, TokenFormat, TokenKind, UserId,
};
use uuid::Uuid;

use crate::FaceContext;
use crate::docs::{FlaskAccess, FlaskError, FlaskLogin, FlaskPair, FlaskProtected};
use tessera_http::body::read_limited;

/// The face's name, recorded on the sessions it opens.
pub const NAME: &str = "flask";

#[derive(Debug, Clone)]
pub struct FlaskFace {
    /// 4.x texts (the format has the claims).
    pub era4: bool,
    /// The seed application's envelopes for the errors it documents.
    pub seed_envelope: bool,
    pub face: std::sync::Arc<Face>,
}

/// How the face writes and reads its tokens: both HS256 JWTs with the library's claims of the
/// era (`identity` in 3.x, `sub`, `csrf` and `fresh` on both in 4.x); the refresh token's `jti`
/// is the refresh secret. `aud` is the library's own `JWT_DECODE_AUDIENCE`, always set.
#[derive(Debug, Clone)]
pub struct FlaskFormat {
    pub era4: bool,
    /// flask-jwt-extended's `JWT_ALGORITHM`.
    pub alg: Algorithm,
    /// The original deployment's `JWT_SECRET_KEY`, when its tokens are to be accepted.
    pub legacy: Option<LegacyKey>,
}

/// Claims as a map: the two eras name them differently, and order is kept as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct FlaskClaims(Map<String, Value>);

impl TimedClaims for FlaskClaims {
    fn exp(&self) -> i64 {
        self.0.get("exp").and_then(Value::as_i64).unwrap_or(0)
    }
    fn nbf(&self) -> Option<i64> {
        self.0.get("nbf").and_then(Value::as_i64)
    }
}

impl FlaskClaims {
    fn kind(&self) -> &str {
        self.0.get("type").and_then(Value::as_str).unwrap_or("")
    }
    fn identity(&self) -> Option<String> {
        self.0.get("identity").or_else(|| self.0.get("sub")).and_then(Value::as_str).map(str::to_owned)
    }
    fn jti(&self) -> Option<Uuid> {
        self.0.get("jti").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
    }
    fn sid(&self) -> Option<Uuid> {
        self.0.get("sid").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
    }
    fn aud(&self) -> Option<String> {
        self.0.get("aud").and_then(Value::as_str).map(str::to_owned)
    }
}

impl FlaskFormat {
    /// A token's claims in the library's order for the configured era.
    fn claims(&self, kind: &str, session: &Session, jti: Uuid, iat: i64, exp: i64, aud: &str) -> Value {
        let identity = session.user_id.0.to_string();
        // access tokens name their session (revocation); the refresh token's record does
        let sid = (kind == "access").then_some(session.id.0);
        let mut m = Map::new();
        if self.era4 {
            m.insert("fresh".into(), json!(false));
            m.insert("iat".into(), json!(iat));
            m.insert("jti".into(), json!(jti.hyphenated().to_string()));
            m.insert("type".into(), json!(kind));
            m.insert("sub".into(), json!(identity));
            m.insert("nbf".into(), json!(iat));
            // the library's random double-submit value, derived here so that rendering stays a
            // pure function of the record
            m.insert(
                "csrf".into(),
                json!(uuid::Builder::from_random_bytes(jti.as_u128().rotate_left(64).to_be_bytes()).into_uuid().hyphenated().to_string()),
            );
            m.insert("exp".into(), json!(exp));
        } else {
            m.insert("iat".into(), json!(iat));
            m.insert("nbf".into(), json!(iat));
            m.insert("jti".into(), json!(jti.hyphenated().to_string()));
            m.insert("exp".into(), json!(exp));
            m.insert("identity".into(), json!(identity));
            if kind == "access" {
                m.insert("fresh".into(), json!(false));
            }
            m.insert("type".into(), json!(kind));
        }
        if let Some(sid) = sid {
            m.insert("sid".into(), json!(sid));
        }
        m.insert("aud".into(), json!(aud));
        Value::Object(m)
    }

    fn read(&self, keyring: &Keyring, token: &str, want: &str, now: Option<OffsetDateTime>) -> Result<FlaskClaims, AuthError> {
        let claims: FlaskClaims = keyring.verify_at(token, &[self.alg], now)?;
        if claims.kind() != want {
            return Err(AuthError::WrongTokenType);
        }
        Ok(claims)
    }
}

impl TokenFormat for FlaskFormat {
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
        let exp = iat + session.profile.access_ttl().whole_seconds();
        keyring.sign(self.alg, "JWT", &self.claims("access", session, jti, iat, exp, aud))
    }

    fn render_refresh(
        &self,
        keyring: &Keyring,
        aud: &str,
        session: &Session,
        record: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<String, DomainError> {
        let iat = record.issued_at.unix_timestamp();
        let jti = Uuid::from_slice(secret.as_bytes()).map_err(|_| DomainError::Internal("a flask refresh secret is 16 bytes".into()))?;
        let refresh = self.claims("refresh", session, jti, iat, record.expires_at.unix_timestamp(), aud);
        keyring.sign(self.alg, "JWT", &refresh)
    }

    fn read_access(&self, keyring: &Keyring, token: &str, now: Option<OffsetDateTime>) -> Result<AccessView, AuthError> {
        let c = self.read(keyring, token, "access", now)?;
        let user_id = c.identity().and_then(|i| i.parse::<i64>().ok()).map(UserId).ok_or(AuthError::TokenInvalid)?;
        let (sid, jti) = c.sid().zip(c.jti()).ok_or(AuthError::TokenInvalid)?;
        Ok(AccessView { user_id, session_id: SessionId(sid), jti, audience: c.aud(), expires_at: c.exp(), client_id: None, dpop_jkt: None })
    }

    fn read_refresh(&self, keyring: &Keyring, token: &str, now: OffsetDateTime) -> Result<RefreshView, AuthError> {
        let c = self.read(keyring, token, "refresh", Some(now))?;
        let secret = c.jti().and_then(|j| RefreshSecret::from_bytes(j.as_bytes().to_vec())).ok_or(AuthError::TokenInvalid)?;
        Ok(RefreshView { secret, audience: c.aud() })
    }

    /// flask-jwt-extended's own tokens, of either era: `type`, the identity in `identity` (3.x)
    /// or `sub` (4.x), a UUID `jti`, `nbf`.
    fn read_legacy(&self, token: &str, kind: TokenKind, now: OffsetDateTime) -> Option<Result<LegacyToken, AuthError>> {
        self.legacy.as_ref()?.read(token, kind, "type", &["identity", "sub"], now)
    }
}

/// A refusal, already in the face's words.
/// A refusal in the library's (or the original application's) words: an actix
/// [`ResponseError`](actix_web::ResponseError), so that a handler's `?` answers it.
#[derive(Debug)]
pub struct Refusal {
    status: u16,
    body: Value,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

impl actix_web::ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }
    fn error_response(&self) -> HttpResponse {
        respond(self.status, &self.body)
    }
}

/// Flask's jsonify: compact, with a trailing newline.
fn respond(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(format!("{body}\n"))
}

fn msg(status: u16, text: &str) -> Refusal {
    Refusal { status, body: json!({"msg": text}) }
}

impl FlaskFace {
    fn missing_header(&self) -> Refusal {
        if self.seed_envelope {
            Refusal { status: 401, body: json!({"msg": "Missing Authorization Header", "code": "401"}) }
        } else {
            msg(401, "Missing Authorization Header")
        }
    }

    fn bad_header(&self, other_scheme: bool) -> Refusal {
        let (status, text) = match (self.era4, other_scheme) {
            (false, _) => (422, "Bad Authorization header. Expected value 'Bearer <JWT>'"),
            (true, true) => (401, "Missing 'Bearer' type in 'Authorization' header. Expected 'Authorization: Bearer <JWT>'"),
            (true, false) => (422, "Bad Authorization header. Expected 'Authorization: Bearer <JWT>'"),
        };
        if self.seed_envelope && status == 422 { Refusal { status, body: json!({"msg": text, "code": "422"}) } } else { msg(status, text) }
    }

    fn expired(&self) -> Refusal {
        if self.seed_envelope {
            Refusal { status: 401, body: json!({"code": 401, "errors": [{"msg": "Token has expired", "code": 401}]}) }
        } else {
            msg(401, "Token has expired")
        }
    }

    fn blocked(&self) -> Refusal {
        Refusal { status: 403, body: json!({"code": 403, "errors": [{"message": "your account is blocked", "code": 403}]}) }
    }

    /// The face's words for a token the core refused: the one place its domain errors become
    /// bodies. `want_refresh`: the route takes a refresh token.
    fn refusal(&self, e: DomainError, want_refresh: bool) -> Refusal {
        let a = match e {
            DomainError::Auth(a) => a,
            other => return unexpected(other),
        };
        match a {
            AuthError::TokenExpired => self.expired(),
            AuthError::UserBlocked => self.blocked(),
            AuthError::TokenInvalid => msg(422, "Signature verification failed"),
            // PyJWT's words for a token of another audience
            AuthError::WrongAudience => msg(422, "Invalid audience"),
            AuthError::WrongTokenType if want_refresh => msg(422, "Only refresh tokens are allowed"),
            AuthError::WrongTokenType => {
                msg(422, if self.era4 { "Only non-refresh tokens are allowed" } else { "Only access tokens are allowed" })
            }
            _ => msg(401, "Token has been revoked"),
        }
    }

    /// The token of `Authorization: Bearer <JWT>`, as the library splits the header.
    fn header_token<'r>(&self, req: &'r HttpRequest) -> Result<&'r str, Refusal> {
        let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Err(self.missing_header()) };
        let value = value.to_str().map_err(|_| self.bad_header(false))?;
        let parts: Vec<&str> = value.split_whitespace().collect();
        match parts.as_slice() {
            ["Bearer", token] => Ok(token),
            [first, ..] if *first != "Bearer" => Err(self.bad_header(true)),
            _ => Err(self.bad_header(false)),
        }
    }

    /// PyJWT's texts for a token it cannot even decode; the core judges the rest.
    fn undecodable(&self, token: &str) -> Result<(), Refusal> {
        let segments: Vec<&str> = token.split('.').collect();
        if segments.len() < 3 {
            return Err(msg(422, "Not enough segments"));
        }
        if URL_SAFE_NO_PAD.decode(segments[0].trim_end_matches('=')).ok().and_then(|h| serde_json::from_slice::<Value>(&h).ok()).is_none() {
            return Err(msg(422, "Invalid header padding"));
        }
        if segments.len() > 3 {
            return Err(msg(422, "Invalid payload padding"));
        }
        Ok(())
    }

    fn finish(&self, r: Result<Value, Refusal>) -> Result<HttpResponse, Refusal> {
        r.map(|body| respond(200, &body))
    }

    /// The refresh token of a request, as the library would take it off the header.
    fn refresh_token<'r>(&self, req: &'r HttpRequest) -> Result<&'r str, Refusal> {
        let token = self.header_token(req)?;
        self.undecodable(token)?;
        Ok(token)
    }
}

fn unexpected(e: DomainError) -> Refusal {
    match tessera_http::request::retry_later(&e) {
        Some((429, secs)) => msg(429, &format!("Too many requests: try again in {secs} seconds")),
        Some((status, secs)) => msg(status, &format!("Service busy: try again in {secs} seconds")),
        None => msg(tessera_http::request::unexpected(&e), "Internal server error"),
    }
}

/// Log in (Tessera's own: the original API documents no login route): `{"email", "password"}` (or `username`) to a
/// pair.
#[utoipa::path(post, path = "/api/v1/login", request_body(content = FlaskLogin, content_type = "application/json"),
    responses(
        (status = 200, description = "A token pair", body = FlaskPair),
        (status = 400, description = "Missing username or password", body = FlaskError),
        (status = 401, description = "Bad username or password", body = FlaskError),
        (status = 403, description = "The account is blocked", body = FlaskError),
        (status = 429, description = "Too many attempts from this address, or the account is locked out here for a while", body = FlaskError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "Too many password hashes wait", body = FlaskError, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<FlaskFace>,
) -> Result<HttpResponse, Refusal> {
    let r = async {
        let missing = || msg(400, "Missing username or password");
        let body = read_limited(payload, state.max_body_bytes).await.map_err(|_| missing())?;
        // get_json(silent=True): anything unreadable is no body at all
        let data: Map<String, Value> = serde_json::from_slice(&body).unwrap_or_default();
        let login = data.get("email").or_else(|| data.get("username")).and_then(Value::as_str).filter(|s| !s.is_empty());
        let password = data.get("password").and_then(Value::as_str).filter(|s| !s.is_empty());
        let (Some(login), Some(password)) = (login, password) else { return Err(missing()) };
        let origin = LoginOrigin { request: tessera_http::request::request_meta(&req), ..LoginOrigin::default() };
        match state.service.login_password(&face.face, login, password.to_owned(), origin, OffsetDateTime::now_utc()).await {
            Ok(pair) => Ok(json!({"access_token": pair.access_token, "refresh_token": pair.refresh_token})),
            Err(DomainError::Auth(AuthError::UserBlocked)) => Err(face.blocked()),
            Err(DomainError::Auth(_) | DomainError::Invalid { .. }) => Err(msg(401, "Bad username or password")),
            Err(e) => Err(unexpected(e)),
        }
    }
    .await;
    face.finish(r)
}

/// The refresh JWT in `Authorization: Bearer` to a new access token; the refresh token stays
/// valid (the library does not rotate; with `refresh_policy = "rotate"`, a new one comes too).
#[utoipa::path(post, path = "/api/v1/refresh/token", security(("flask_refresh" = [])),
    responses(
        (status = 200, description = "A new access token", body = FlaskAccess),
        (status = 401, description = "Missing header, expired or revoked token", body = FlaskError),
        (status = 403, description = "The account is blocked", body = FlaskError),
        (status = 422, description = "A malformed header, a bad signature, an access token", body = FlaskError),
    ))]
pub async fn refresh(req: HttpRequest, state: web::Data<FaceContext>, face: web::Data<FlaskFace>) -> Result<HttpResponse, Refusal> {
    let r = async {
        let token = face.refresh_token(&req)?;
        let input = RefreshInput { request: tessera_http::request::request_meta(&req), ..RefreshInput::default() };
        match state.service.refresh(&face.face, token, input, OffsetDateTime::now_utc()).await {
            Ok(done) => Ok(match done.refresh_token() {
                // a face configured to rotate answers the new refresh token too
                Some(refresh) => json!({"access_token": done.access_token(), "refresh_token": refresh}),
                None => json!({"access_token": done.access_token()}),
            }),
            Err(e) => Err(face.refusal(e, true)),
        }
    }
    .await;
    face.finish(r)
}

/// The refresh JWT in `Authorization: Bearer`: its session ends.
#[utoipa::path(post, path = "/api/v1/logout", security(("flask_refresh" = [])),
    responses(
        (status = 200, description = "Revoked", body = FlaskError),
        (status = 401, description = "Missing header, expired or revoked token", body = FlaskError),
        (status = 403, description = "The account is blocked", body = FlaskError),
        (status = 422, description = "A malformed header, a bad signature, an access token", body = FlaskError),
    ))]
pub async fn logout(req: HttpRequest, state: web::Data<FaceContext>, face: web::Data<FlaskFace>) -> Result<HttpResponse, Refusal> {
    let r = async {
        let token = face.refresh_token(&req)?;
        state.service.logout_refresh(&face.face, token, OffsetDateTime::now_utc()).await.map_err(|e| face.refusal(e, true))?;
        Ok(json!({"msg": "Refresh token revoked"}))
    }
    .await;
    face.finish(r)
}

/// The library's canonical access-token check: `{"logged_in_as": <user id>}`.
#[utoipa::path(get, path = "/api/v1/protected", security(("flask_access" = [])),
    responses(
        (status = 200, description = "The caller", body = FlaskProtected),
        (status = 401, description = "Missing header, expired or revoked token", body = FlaskError),
        (status = 403, description = "The account is blocked", body = FlaskError),
        (status = 422, description = "A malformed header, a bad signature, a refresh token", body = FlaskError),
    ))]
pub async fn protected(req: HttpRequest, state: web::Data<FaceContext>, face: web::Data<FlaskFace>) -> Result<HttpResponse, Refusal> {
    let r = async {
        let token = face.header_token(&req)?;
        face.undecodable(token)?;
        let ctx = state.service.accept_access(&face.face, token, OffsetDateTime::now_utc()).await.map_err(|e| face.refusal(e, false))?;
        let user = state.service.current_user(&ctx).await.map_err(|e| face.refusal(e, false))?;
        Ok(json!({"logged_in_as": user.id.0.to_string()}))
    }
    .await;
    face.finish(r)
}

/// Werkzeug's 405 page, as the library's clients see it, with `Allow`.
fn method_not_allowed(_: &HttpRequest, allow: &str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")))
        .insert_header((header::ALLOW, HeaderValue::from_str(&format!("{allow}, OPTIONS")).unwrap_or(HeaderValue::from_static("POST"))))
        .body(
            "<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n",
        )
}

use tessera_http::request::{HttpMethod, Mount, Route};

/// The face's routes, under its prefixes.
pub const ROUTES: [Route; 4] = [
    Route { path: "/api/v1/login", method: HttpMethod::Post, make: || web::post().to(login), doc: "/api/v1/login" },
    Route { path: "/api/v1/refresh/token", method: HttpMethod::Post, make: || web::post().to(refresh), doc: "/api/v1/refresh/token" },
    Route { path: "/api/v1/logout", method: HttpMethod::Post, make: || web::post().to(logout), doc: "/api/v1/logout" },
    Route { path: "/api/v1/protected", method: HttpMethod::Get, make: || web::get().to(protected), doc: "/api/v1/protected" },
];

/// Every handler of the face, as each documents itself.
#[derive(utoipa::OpenApi)]
#[openapi(paths(login, refresh, logout, protected))]
pub struct Handlers;

pub fn configure(cfg: &mut web::ServiceConfig, at: &Mount, face: FlaskFace) {
    tessera_http::request::mount(cfg, &web::Data::new(face), at, &ROUTES, method_not_allowed);
}
