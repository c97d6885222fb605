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
use tessera_domain::service::LoginOrigin;
use tessera_domain::{
    Algorithm, AuthError, DomainError, Keyring, OffsetDateTime, RefreshRecord, RenderedPair, Session, SessionId, TokenFormat, TokenProfile,
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::body::read_limited;
use crate::state::AppState;

/// The identity provider name trusted callers' users are linked under.
const PROVIDER: &str = "medods";

#[derive(Debug, Clone)]
pub struct MedodsFace {
    pub profile: TokenProfile,
    pub caller_key: Option<String>,
    pub grace: tessera_domain::Duration,
    /// Generation 3 of the task: refreshes from a new IP are reported here.
    pub new_ip_webhook: Option<String>,
    pub http: reqwest::Client,
}

/// What a session of this face remembers about its user.
#[derive(Debug, Serialize, Deserialize)]
struct Subject {
    user_id: i64,
    guid: String,
}

/// The access token's claims.
#[derive(Debug, Serialize, Deserialize)]
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
}

impl TimedClaims for MedodsClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

impl TokenFormat for MedodsFace {
    fn refresh_grace(&self) -> Option<tessera_domain::Duration> {
        Some(self.grace)
    }

    fn render(
        &self,
        keyring: &Keyring,
        session: &Session,
        record: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<RenderedPair, DomainError> {
        let subject: Subject = session
            .subject
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| DomainError::Internal("a Medods session without its subject".into()))?;
        let iat = record.issued_at.unix_timestamp();
        let claims = MedodsClaims {
            user_id: subject.user_id,
            guid: subject.guid,
            ip: session.ip.clone(),
            pair_id: record.access_jti,
            sid: session.id.0,
            iat,
            exp: iat + session.profile.access_ttl().whole_seconds(),
        };
        Ok(RenderedPair {
            access_token: keyring.sign(Algorithm::HS512, "JWT", &claims)?,
            refresh_token: secret.encode(SecretEncoding::Standard),
        })
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
        _ => err(401, "invalid_token", "the token is malformed or its signature does not verify"),
    }
}

fn domain_err(e: DomainError) -> Fail {
    match e {
        DomainError::Auth(a) => auth_err(a),
        DomainError::Invalid { field, message } => err(400, "invalid_request", format!("{field} {message}")),
        other => {
            let p = crate::problem::unexpected(&other);
            err(p.status.as_u16(), "unavailable", "the service could not complete the request")
        }
    }
}

/// A JSON object body, or the face's 400/413/415.
async fn json_body<T: serde::de::DeserializeOwned>(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<T, Fail> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(err(415, "invalid_request", "the body must be application/json"));
    }
    let body = read_limited(payload, state.settings.server.max_body_bytes).await.map_err(|e| match e {
        crate::body::BodyError::TooLarge(n) => err(413, "invalid_request", format!("the body is larger than {n} bytes")),
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

    /// The live access token of `Authorization: Bearer`.
    fn caller_token(&self, req: &HttpRequest, state: &AppState) -> Result<MedodsClaims, Fail> {
        let token = match crate::auth::bearer_token(req) {
            Ok(Some(t)) => t,
            _ => return Err(err(401, "invalid_token", "an `Authorization: Bearer <access token>` header is required")),
        };
        let claims: MedodsClaims =
            state.service.keyring().verify(token, &[Algorithm::HS512], OffsetDateTime::now_utc()).map_err(auth_err)?;
        if state.service.is_revoked(SessionId(claims.sid)) {
            return Err(auth_err(AuthError::TokenRevoked));
        }
        Ok(claims)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": 64842, "GUID": "FF4vjiQAU8e6KYq/edxsrQ=="}))]
pub struct GenerateRequest {
    pub user_id: i64,
    #[serde(rename = "GUID")]
    pub guid: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access": "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCIsImtpZCI6Ii4uLiJ9...", "refresh": "q9n2Qm0c7mX8vK4Jt1yZbA2rW5eH6uL3sP0dF8gC1xE="}))]
pub struct PairResponse {
    pub access: String,
    pub refresh: String,
}

/// `POST /generate` (trusted caller): a pair for the user it names.
#[utoipa::path(post, path = "/generate", tag = "medods", params(("X-Caller-Key" = Option<String>, Header, description = "the trusted caller's key, when configured")),
    request_body = GenerateRequest, responses((status = 200, body = PairResponse), (status = 400, body = MedodsError), (status = 401, body = MedodsError), (status = 403, body = MedodsError)))]
pub async fn generate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    face: web::Data<MedodsFace>,
) -> Result<HttpResponse, Fail> {
    face.check_caller(&req)?;
    let body: GenerateRequest = json_body(&req, payload, &state).await?;
    if body.guid.is_empty() || body.guid.len() > 128 {
        return Err(err(400, "invalid_request", "GUID must be 1-128 characters"));
    }
    let now = OffsetDateTime::now_utc();
    let user = state.service.user_for_identity(PROVIDER, &body.user_id.to_string(), now).await.map_err(domain_err)?;
    let subject = serde_json::to_string(&Subject { user_id: body.user_id, guid: body.guid }).unwrap_or_default();
    let origin = LoginOrigin {
        client_id: None,
        face: "medods",
        profile: &face.profile,
        ip: super::client_ip(&req),
        user_agent: super::user_agent(&req),
        subject: Some(subject),
    };
    let pair = state.service.open_session(&user, origin, &**face, now).await.map_err(domain_err)?;
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
#[utoipa::path(post, path = "/refresh", tag = "medods", request_body = RefreshRequest,
    responses((status = 200, body = PairResponse), (status = 400, body = MedodsError), (status = 401, body = MedodsError), (status = 403, body = MedodsError)))]
pub async fn refresh(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    face: web::Data<MedodsFace>,
) -> Result<HttpResponse, Fail> {
    let body: RefreshRequest = json_body(&req, payload, &state).await?;
    // The access token names the pair; an expired one still does.
    let claims: MedodsClaims = state.service.keyring().verify_signature(&body.access, &[Algorithm::HS512]).map_err(auth_err)?;
    let secret = RefreshSecret::parse(&body.refresh, SecretEncoding::Standard).ok_or_else(|| auth_err(AuthError::TokenInvalid))?;
    let now = OffsetDateTime::now_utc();
    if let Ok(Some((_, session))) = state.service.store().refresh_by_hash(state.service.secret_hash(secret.as_bytes())).await {
        if session.id.0 != claims.sid {
            return Err(auth_err(AuthError::PairMismatch));
        }
        let ua = super::user_agent(&req);
        if session.user_agent != ua && !session.is_revoked() {
            tracing::warn!(session_id = %session.id, "Medods refresh with a changed User-Agent; logging the user out everywhere");
            state.service.revoke_all(session.user_id, None, "user_agent_changed", now).await.map_err(domain_err)?;
            return Err(err(401, "user_agent_changed", "the User-Agent changed since login; every session of the user is revoked"));
        }
        let ip = super::client_ip(&req);
        if session.ip != ip {
            tracing::warn!(session_id = %session.id, "Medods refresh from a new IP address");
            if let Some(url) = face.new_ip_webhook.clone() {
                let guid = session.subject.as_deref().and_then(|s| serde_json::from_str::<Subject>(s).ok());
                let event = json!({
                    "event": "refresh_from_new_ip",
                    "user_id": guid.as_ref().map(|g| g.user_id),
                    "GUID": guid.map(|g| g.guid),
                    "previous_ip": session.ip,
                    "ip": ip,
                    "at": now.unix_timestamp(),
                });
                let http = face.http.clone();
                // The refresh goes ahead; the report must not hold it up.
                tokio::spawn(async move {
                    if let Err(e) = http.post(&url).json(&event).send().await.and_then(reqwest::Response::error_for_status) {
                        tracing::warn!(error = %e, "the new-IP webhook failed");
                    }
                });
            }
        }
    }
    let pair = state.service.refresh(&secret, None, Some(claims.pair_id), &**face, now).await.map_err(domain_err)?;
    Ok(HttpResponse::Ok().json(PairResponse { access: pair.access_token, refresh: pair.refresh_token }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    pub refresh: String,
}

/// `POST /delete`: the refresh token's session ends (its access tokens too), in one transaction.
#[utoipa::path(post, path = "/delete", tag = "medods", request_body = DeleteRequest, responses((status = 200, description = "Deleted, or nothing to delete"), (status = 400, body = MedodsError)))]
pub async fn delete(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, Fail> {
    let body: DeleteRequest = json_body(&req, payload, &state).await?;
    let secret = RefreshSecret::parse(&body.refresh, SecretEncoding::Standard)
        .ok_or_else(|| err(400, "invalid_request", "refresh is not a refresh token"))?;
    state.service.revoke_refresh(&secret, None, OffsetDateTime::now_utc()).await.map_err(domain_err)?;
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAllRequest {
    pub user_id: i64,
}

/// `POST /deleteall` (trusted caller): every session of the user ends, in one transaction.
#[utoipa::path(post, path = "/deleteall", tag = "medods", request_body = DeleteAllRequest, responses((status = 200), (status = 401, body = MedodsError)))]
pub async fn delete_all(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    face: web::Data<MedodsFace>,
) -> Result<HttpResponse, Fail> {
    face.check_caller(&req)?;
    let body: DeleteAllRequest = json_body(&req, payload, &state).await?;
    let user = state.service.store().user_by_identity(PROVIDER, &body.user_id.to_string()).await.map_err(|e| domain_err(e.into()))?;
    if let Some(u) = user {
        state.service.revoke_all(u.id, None, "deleteall", OffsetDateTime::now_utc()).await.map_err(domain_err)?;
    }
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"GUID": "FF4vjiQAU8e6KYq/edxsrQ=="}))]
pub struct MeResponse {
    #[serde(rename = "GUID")]
    pub guid: String,
}

/// `GET /me`: the caller's GUID.
#[utoipa::path(get, path = "/me", tag = "medods", security(("bearer" = [])), responses((status = 200, body = MeResponse), (status = 401, body = MedodsError)))]
pub async fn me(req: HttpRequest, state: web::Data<AppState>, face: web::Data<MedodsFace>) -> Result<HttpResponse, Fail> {
    let c = face.caller_token(&req, &state)?;
    Ok(HttpResponse::Ok().json(MeResponse { guid: c.guid }))
}

/// `POST /logout`: the caller's session ends.
#[utoipa::path(post, path = "/logout", tag = "medods", security(("bearer" = [])), responses((status = 200), (status = 401, body = MedodsError)))]
pub async fn logout(req: HttpRequest, state: web::Data<AppState>, face: web::Data<MedodsFace>) -> Result<HttpResponse, Fail> {
    let claims = face.caller_token(&req, &state)?;
    state.service.revoke_session(SessionId(claims.sid), "logout", OffsetDateTime::now_utc()).await.map_err(domain_err)?;
    Ok(HttpResponse::Ok().json(json!({})))
}

async fn method_not_allowed() -> Result<HttpResponse, Fail> {
    Err(err(405, "invalid_request", "method not allowed"))
}

pub fn configure(cfg: &mut web::ServiceConfig, prefix: &str, face: MedodsFace) {
    let at = |path: &str| vec![format!("{prefix}{path}")];
    let routes: [(Vec<String>, super::MakeRoute); 6] = [
        (at("/generate"), || web::post().to(generate)),
        (at("/refresh"), || web::post().to(refresh)),
        (at("/delete"), || web::post().to(delete)),
        (at("/deleteall"), || web::post().to(delete_all)),
        (at("/me"), || web::get().to(me)),
        (at("/logout"), || web::post().to(logout)),
    ];
    super::mount(cfg, &web::Data::new(face), &routes, || web::to(method_not_allowed));
}
