//! The Medods token API (seed 000): trusted callers mint a pair for a user they name; the access
//! token is an HS512 JWT carrying the user's GUID, user id, client IP and pair id; the refresh
//! token is opaque, standard base64, single use, and refreshes only together with the access
//! token it was issued with. Errors are JSON `{"code", "message"}` with stable codes.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use tessera_domain::keys::TimedClaims;
use tessera_domain::secret::{RefreshSecret, SecretEncoding};
use tessera_domain::{
    AccessView, Algorithm, AuthError, DomainError, Face, Keyring, LoginOrigin, OffsetDateTime, RefreshInput, RefreshRecord, RefreshView,
    Refreshed, RequestMeta, Session, SessionId, TokenFormat, UserId,
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::FaceContext;
use crate::docs::Empty;
use tessera_http::body::read_limited;

/// The identity provider name trusted callers' users are linked under.
const PROVIDER: &str = "medods";
/// The face's name, recorded on the sessions it opens.
pub const NAME: &str = "medods";

#[derive(Debug, Clone)]
pub struct MedodsFace {
    pub face: std::sync::Arc<Face>,
    pub caller_key: Option<String>,
}

/// How the face writes and reads its tokens: an HS512 access JWT, an opaque standard-base64
/// refresh token.
#[derive(Debug, Clone, Copy)]
pub struct MedodsFormat;

/// What a session of this face remembers about its user. Its JSON is also what the risk
/// notifier's events carry (`user_id`, `GUID`).
#[derive(Debug, Serialize, Deserialize)]
struct Subject {
    user_id: i64,
    #[serde(rename = "GUID", alias = "guid")]
    guid: String,
}

/// The access token's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MedodsClaims {
    pub user_id: i64,
    #[serde(rename = "GUID")]
    pub guid: String,
    pub ip: Option<String>,
    /// The pair this access token belongs to (its refresh token is bound to it).
    pub pair_id: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl TimedClaims for MedodsClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

impl TokenFormat for MedodsFormat {
    /// A refresh presents the pair's access token, expired or not: its key must verify it for
    /// as long as the refresh token lives.
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
        let subject: Subject = session
            .subject
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| DomainError::Internal("a Medods session without its subject".into()))?;
        let iat = issued_at.unix_timestamp();
        let claims = MedodsClaims {
            user_id: subject.user_id,
            guid: subject.guid,
            ip: session.ip.clone(),
            pair_id: jti,
            sid: session.id.0,
            iat,
            exp: iat + session.profile.access_ttl().whole_seconds(),
            aud: Some(aud.to_owned()),
        };
        keyring.sign(Algorithm::HS512, "JWT", &claims)
    }

    fn render_refresh(&self, _: &Keyring, _: &str, _: &Session, _: &RefreshRecord, secret: &RefreshSecret) -> Result<String, DomainError> {
        Ok(secret.encode(SecretEncoding::Standard))
    }

    fn read_access(&self, keyring: &Keyring, token: &str, now: Option<OffsetDateTime>) -> Result<AccessView, AuthError> {
        let c: MedodsClaims = keyring.verify_at(token, &[Algorithm::HS512], now)?;
        // the local user behind the GUID is not in the token; the session is
        Ok(AccessView {
            user_id: UserId(0),
            session_id: SessionId(c.sid),
            jti: c.pair_id,
            audience: c.aud,
            expires_at: c.exp,
            client_id: None,
            dpop_jkt: None,
        })
    }

    fn read_refresh(&self, _: &Keyring, token: &str, _: OffsetDateTime) -> Result<RefreshView, AuthError> {
        let secret = RefreshSecret::parse(token, SecretEncoding::Standard).ok_or(AuthError::TokenInvalid)?;
        Ok(RefreshView { secret, audience: None })
    }
}

/// A Medods error body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "invalid_token", "message": "the token is malformed or its signature does not verify"}))]
pub struct MedodsError {
    /// Stable: `invalid_request`, `unauthorized_caller`, `invalid_token`, `token_expired`,
    /// `token_reused`, `token_revoked`, `pair_mismatch`, `user_agent_changed`, `user_blocked`,
    /// `unavailable`.
    pub code: &'static str,
    pub message: String,
}

/// A refusal in the face's words.
#[derive(Debug)]
pub struct Fail {
    status: u16,
    body: MedodsError,
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body.code)
    }
}

impl actix_web::ResponseError for Fail {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(&self.body)
    }
}

fn err(status: u16, code: &'static str, message: impl Into<String>) -> Fail {
    Fail { status, body: MedodsError { code, message: message.into() } }
}

fn auth_err(a: AuthError) -> Fail {
    match a {
        AuthError::TokenExpired => err(401, "token_expired", "the token has expired"),
        AuthError::TokenReused => err(401, "token_reused", "the refresh token was already used; every token of its pair family is revoked"),
        AuthError::TokenRevoked => err(401, "token_revoked", "the token has been revoked"),
        AuthError::PairMismatch => err(401, "pair_mismatch", "the access and refresh tokens are not of one pair"),
        AuthError::UserBlocked => err(403, "user_blocked", "the account is blocked"),
        AuthError::RiskRefused { condition: tessera_domain::RiskCondition::UserAgentChanged, revoked: true } => {
            err(401, "user_agent_changed", "the User-Agent changed since login; every session of the user is revoked")
        }
        AuthError::RiskRefused { condition, .. } => {
            err(401, "refresh_refused", format!("the refresh was refused by a risk rule ({})", condition.as_str()))
        }
        _ => err(401, "invalid_token", "the token is malformed or its signature does not verify"),
    }
}

fn domain_err(e: DomainError) -> Fail {
    match e {
        DomainError::Auth(a) => auth_err(a),
        DomainError::Invalid { field, message, .. } => err(400, "invalid_request", format!("{field} {message}")),
        other => match tessera_http::request::retry_later(&other) {
            Some((429, secs)) => err(429, "too_many_requests", format!("too many attempts; retry after {secs} seconds")),
            Some((status, secs)) => err(status, "busy", format!("the service is busy; retry after {secs} seconds")),
            None => err(tessera_http::request::unexpected(&other), "unavailable", "the service could not complete the request"),
        },
    }
}

/// A JSON object body, or the face's 400/413/415.
async fn json_body<T: serde::de::DeserializeOwned>(req: &HttpRequest, payload: web::Payload, state: &FaceContext) -> Result<T, Fail> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(err(415, "invalid_request", "the body must be application/json"));
    }
    let body = read_limited(payload, state.max_body_bytes).await.map_err(|e| match e {
        tessera_http::body::BodyError::TooLarge(n) => err(413, "invalid_request", format!("the body is larger than {n} bytes")),
        _ => err(400, "invalid_request", "the body could not be read"),
    })?;
    serde_json::from_slice(&body).map_err(|e| err(400, "invalid_request", format!("invalid body: {e}")))
}

impl MedodsFace {
    /// Trusted-caller routes: the configured key, compared in constant time.
    fn check_caller(&self, req: &HttpRequest) -> Result<(), Fail> {
        let Some(expected) = &self.caller_key else { return Ok(()) };
        let given = req.headers().get("x-caller-key").map(|v| v.as_bytes()).unwrap_or_default();
        if bool::from(given.ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(err(401, "unauthorized_caller", "this route needs the trusted caller's X-Caller-Key"))
        }
    }

    /// The live access token of `Authorization: Bearer`, and its claims.
    fn caller_token(&self, req: &HttpRequest, state: &FaceContext) -> Result<(tessera_domain::AccessContext, MedodsClaims), Fail> {
        let token = match tessera_http::request::bearer_token(req) {
            Ok(Some(t)) => t,
            _ => return Err(err(401, "invalid_token", "an `Authorization: Bearer <access token>` header is required")),
        };
        let ctx = state.service.resolve_access(&self.face, token, OffsetDateTime::now_utc()).map_err(auth_err)?;
        // the token verified above; its claims carry the GUID
        let claims: MedodsClaims = state.service.keyring().verify_signature(token, &[Algorithm::HS512]).map_err(auth_err)?;
        Ok((ctx, claims))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": 64842, "GUID": "FF4vjiQAU8e6KYq/edxsrQ=="}))]
pub struct GenerateRequest {
    #[serde(deserialize_with = "integral")]
    pub user_id: i64,
    /// No control characters.
    #[serde(rename = "GUID")]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub guid: String,
    /// The user's own IP address, when a backend calls on the user's behalf: the reference of
    /// the refresh-time rules. Unset: the caller's address.
    #[serde(default)]
    #[schema(format = Ipv4)]
    pub ip: Option<String>,
    /// The user's own User-Agent, likewise. Unset: the caller's.
    /// No control characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 512, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub user_agent: Option<String>,
    /// The user's e-mail address, where the warning of a refresh from a new IP address goes
    /// (with `email.smtp_url` set). Taken when the user is first seen, if no other account has
    /// it. Unset: the user gets no e-mail.
    #[serde(default)]
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access": "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCIsImtpZCI6Ii4uLiJ9...", "refresh": "q9n2Qm0c7mX8vK4Jt1yZbA2rW5eH6uL3sP0dF8gC1xE="}))]
pub struct PairResponse {
    pub access: String,
    pub refresh: String,
}

/// `POST /generate` (trusted caller): a pair for the user it names.
#[utoipa::path(post, path = "/generate", security(("caller_key" = [])), request_body = GenerateRequest,
    responses((status = 200, body = PairResponse), (status = 400, body = MedodsError), (status = 401, description = "unauthorized_caller", body = MedodsError),
        (status = 403, description = "user_blocked", body = MedodsError), (status = 413, description = "The body is too large", body = MedodsError), (status = 415, description = "The body is not JSON", body = MedodsError)))]
pub async fn generate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<MedodsFace>,
) -> Result<HttpResponse, Fail> {
    face.check_caller(&req)?;
    let body: GenerateRequest = json_body(&req, payload, &state).await?;
    // no control characters: a NUL would reach the store (Postgres refuses it), and a
    // User-Agent header cannot carry one either
    if body.guid.is_empty() || body.guid.chars().count() > 128 || body.guid.chars().any(char::is_control) {
        return Err(err(400, "invalid_request", "GUID must be 1-128 characters, none a control character"));
    }
    if body.ip.as_deref().is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_err()) {
        return Err(err(400, "invalid_request", "ip must be an IP address"));
    }
    if body.user_agent.as_deref().is_some_and(|ua| ua.is_empty() || ua.chars().count() > 512 || ua.chars().any(char::is_control)) {
        return Err(err(400, "invalid_request", "user_agent must be 1-512 characters, none a control character"));
    }
    if body.email.as_deref().is_some_and(|e| tessera_domain::Email::parse(e).is_err()) {
        return Err(err(400, "invalid_request", "email must be an e-mail address"));
    }
    let now = OffsetDateTime::now_utc();
    let user = state
        .service
        .user_for_external_identity(PROVIDER, &body.user_id.to_string(), body.email.as_deref(), now)
        .await
        .map_err(domain_err)?;
    let subject = serde_json::to_string(&Subject { user_id: body.user_id, guid: body.guid }).unwrap_or_default();
    // The reference of the refresh-time rules is the user's device: named by a backend that
    // calls on its behalf, else the caller itself (the task's client calling directly).
    let seen = tessera_http::request::request_meta(&req);
    let request = RequestMeta { ip: body.ip.or(seen.ip), user_agent: body.user_agent.or(seen.user_agent) };
    let origin = LoginOrigin { request, subject: Some(subject), ..LoginOrigin::default() };
    let pair = state.service.open_session(&face.face, &user, origin, now).await.map_err(domain_err)?;
    Ok(HttpResponse::Ok().json(PairResponse { access: pair.access_token, refresh: pair.refresh_token }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub access: String,
    pub refresh: String,
}

/// `POST /refresh`: both tokens of one pair to a new pair; the refresh token works once. A
/// changed User-Agent refuses and logs the user out everywhere.
#[utoipa::path(post, path = "/refresh", request_body = RefreshRequest,
    responses((status = 200, body = PairResponse), (status = 400, body = MedodsError), (status = 401, body = MedodsError), (status = 403, body = MedodsError), (status = 413, description = "The body is too large", body = MedodsError), (status = 415, description = "The body is not JSON", body = MedodsError)))]
pub async fn refresh(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<MedodsFace>,
) -> Result<HttpResponse, Fail> {
    let body: RefreshRequest = json_body(&req, payload, &state).await?;
    // The access token names the pair (an expired one still does); the core checks the pair,
    // the task's rules on IP and User-Agent, and single use, in one transaction.
    let input =
        RefreshInput { bound_access: Some(&body.access), request: tessera_http::request::request_meta(&req), ..RefreshInput::default() };
    match state.service.refresh(&face.face, &body.refresh, input, OffsetDateTime::now_utc()).await.map_err(domain_err)? {
        Refreshed::Pair(pair) => Ok(HttpResponse::Ok().json(PairResponse { access: pair.access_token, refresh: pair.refresh_token })),
        // a face configured to keep its refresh tokens answers the one it was given
        Refreshed::Access(a) => Ok(HttpResponse::Ok().json(PairResponse { access: a.access_token, refresh: body.refresh })),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// A refresh token of this API: standard base64 of 32 bytes.
    #[schema(pattern = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
    pub refresh: String,
}

/// `POST /delete`: the refresh token's session ends (its access tokens too), in one transaction.
#[utoipa::path(post, path = "/delete", request_body = DeleteRequest,
    responses((status = 200, description = "Deleted, or nothing to delete", body = Empty), (status = 400, body = MedodsError), (status = 413, description = "The body is too large", body = MedodsError), (status = 415, description = "The body is not JSON", body = MedodsError)))]
pub async fn delete(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<MedodsFace>,
) -> Result<HttpResponse, Fail> {
    let body: DeleteRequest = json_body(&req, payload, &state).await?;
    if RefreshSecret::parse(&body.refresh, SecretEncoding::Standard).is_none() {
        return Err(err(400, "invalid_request", "refresh is not a refresh token"));
    }
    state.service.revoke_refresh(&face.face, &body.refresh, None, OffsetDateTime::now_utc()).await.map_err(domain_err)?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAllRequest {
    #[serde(deserialize_with = "integral")]
    pub user_id: i64,
}

/// `POST /deleteall` (trusted caller): every session of the user ends, in one transaction.
#[utoipa::path(post, path = "/deleteall", security(("caller_key" = [])), request_body = DeleteAllRequest,
    responses((status = 200, description = "Deleted, or nothing to delete", body = Empty), (status = 400, body = MedodsError), (status = 401, description = "unauthorized_caller", body = MedodsError), (status = 413, description = "The body is too large", body = MedodsError), (status = 415, description = "The body is not JSON", body = MedodsError)))]
pub async fn delete_all(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FaceContext>,
    face: web::Data<MedodsFace>,
) -> Result<HttpResponse, Fail> {
    face.check_caller(&req)?;
    let body: DeleteAllRequest = json_body(&req, payload, &state).await?;
    state.service.revoke_identity(PROVIDER, &body.user_id.to_string(), "deleteall", OffsetDateTime::now_utc()).await.map_err(domain_err)?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"GUID": "FF4vjiQAU8e6KYq/edxsrQ=="}))]
pub struct MeResponse {
    #[serde(rename = "GUID")]
    pub guid: String,
}

/// `GET /me`: the caller's GUID.
#[utoipa::path(get, path = "/me", security(("medods_bearer" = [])), responses((status = 200, body = MeResponse), (status = 401, body = MedodsError)))]
pub async fn me(req: HttpRequest, state: web::Data<FaceContext>, face: web::Data<MedodsFace>) -> Result<HttpResponse, Fail> {
    let (_, c) = face.caller_token(&req, &state)?;
    Ok(HttpResponse::Ok().json(MeResponse { guid: c.guid }))
}

/// `POST /logout`: the caller's session ends.
#[utoipa::path(post, path = "/logout", security(("medods_bearer" = [])), responses((status = 200, description = "Logged out", body = Empty), (status = 401, body = MedodsError)))]
pub async fn logout(req: HttpRequest, state: web::Data<FaceContext>, face: web::Data<MedodsFace>) -> Result<HttpResponse, Fail> {
    let (ctx, _) = face.caller_token(&req, &state)?;
    state.service.revoke_session(ctx.session_id, ctx.user_id, "logout", OffsetDateTime::now_utc()).await.map_err(domain_err)?;
    Ok(HttpResponse::Ok().json(json!({})))
}

/// The face's 405, in its error shape, with `Allow`.
fn method_not_allowed(_: &HttpRequest, allow: &str) -> HttpResponse {
    let mut res = actix_web::ResponseError::error_response(&err(405, "invalid_request", "method not allowed"));
    if let Ok(v) = header::HeaderValue::from_str(allow) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

use tessera_http::request::{HttpMethod, Mount, Route};

/// An integer, also when written with a zero fraction (`64842.0`), as JSON Schema counts it.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        // only where a float holds every integer exactly (|f| < 2^53)
        Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!("{n} is not a 64-bit integer"))),
    }
}

/// The face's routes, under its prefixes.
pub const ROUTES: [Route; 6] = [
    Route { path: "/generate", method: HttpMethod::Post, make: || web::post().to(generate), doc: "/generate" },
    Route { path: "/refresh", method: HttpMethod::Post, make: || web::post().to(refresh), doc: "/refresh" },
    Route { path: "/delete", method: HttpMethod::Post, make: || web::post().to(delete), doc: "/delete" },
    Route { path: "/deleteall", method: HttpMethod::Post, make: || web::post().to(delete_all), doc: "/deleteall" },
    Route { path: "/me", method: HttpMethod::Get, make: || web::get().to(me), doc: "/me" },
    Route { path: "/logout", method: HttpMethod::Post, make: || web::post().to(logout), doc: "/logout" },
];

/// Every handler of the face, as each documents itself.
#[derive(utoipa::OpenApi)]
#[openapi(paths(generate, refresh, delete, delete_all, me, logout))]
pub struct Handlers;

pub fn configure(cfg: &mut web::ServiceConfig, at: &Mount, face: MedodsFace) {
    tessera_http::request::mount(cfg, &web::Data::new(face), at, &ROUTES, method_not_allowed);
}
