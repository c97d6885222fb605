//! The caller's own sessions, and their password.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use tessera_domain::{AuthError, DomainError, OffsetDateTime, Session, SessionId};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::problem::{Problem, ProblemBody};
use crate::state::NativeState;

/// One of the caller's live sessions: a device or an app that logged in, and can still refresh.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01938f4e-7c2a-7d4e-9a51-3f0c2b8e1d47", "api": "native", "client_id": "tessera",
    "created_at": "2026-12-01T09:14:03Z", "last_used_at": "2026-12-01T11:02:40Z", "expires_at": "2027-12-01T09:14:03Z",
    "ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "current": true}))]
pub struct SessionView {
    pub id: Uuid,
    /// The API it was opened at: `native`, `simplejwt`, `djoser`, `drf_social`, `flask`, `medods`.
    pub api: String,
    /// The OAuth client it belongs to, if any.
    pub client_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Its last refresh, or its creation.
    #[schema(format = DateTime)]
    pub last_used_at: String,
    /// No refresh outlives this.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// The address and User-Agent of its last login or refresh, where known.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session of the token making this request.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn view(s: Session, current: SessionId) -> SessionView {
    SessionView {
        id: s.id.0,
        current: s.id == current,
        api: s.face,
        client_id: s.client_id,
        created_at: rfc3339(s.created_at),
        last_used_at: rfc3339(s.last_refresh_at.unwrap_or(s.created_at)),
        expires_at: rfc3339(s.expires_at),
        ip: s.ip,
        user_agent: s.user_agent,
    }
}

/// The caller's live sessions, at every API, newest first (at most 100).
#[utoipa::path(
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, body = SessionList),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/sessions")]
pub async fn list_sessions(state: web::Data<NativeState>, caller: Authenticated) -> Result<HttpResponse, Problem> {
    let sessions = state.service.sessions(&caller.0, OffsetDateTime::now_utc()).await?;
    let current = caller.0.session_id;
    let sessions = sessions.into_iter().map(|s| view(s, current)).collect();
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(SessionList { sessions }))
}

/// End one of the caller's sessions (another device's, or this one). Its refresh token stops
/// working and its access tokens are refused at once.
#[utoipa::path(
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = Uuid, Path, description = "The session's id, from `GET /v1/sessions`")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No live session of the caller has this id", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/sessions/{id}")]
pub async fn end_session(state: web::Data<NativeState>, caller: Authenticated, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let id = Uuid::parse_str(&id).map_err(|_| Problem::from(DomainError::NotFound("session")))?;
    state.service.end_session(&caller.0, SessionId(id), OffsetDateTime::now_utc()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "correct horse battery", "new_password": "battery staple horse"}))]
pub struct PasswordChange {
    #[schema(min_length = 1, max_length = 1024)]
    pub current_password: String,
    /// `password.min_length` (8) characters at least, 1 KiB at most.
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"sessions_ended": 2}))]
pub struct PasswordChanged {
    /// The caller's other sessions, ended by the change.
    pub sessions_ended: usize,
}

/// Change the caller's password. Every other session of the caller ends; this one goes on.
/// Wrong current passwords count toward the same lockout as failed logins.
#[utoipa::path(
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed", body = PasswordChanged),
        (status = 400, description = "Malformed body, a new password the policy refuses, or a wrong current password (`wrong_password`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "too_many_attempts: too many wrong passwords", body = ProblemBody, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "busy: too many password hashes wait", body = ProblemBody, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
#[post("/v1/password")]
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<NativeState>,
    caller: Authenticated,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let meta = tessera_http::request::request_meta(&req);
    let now = OffsetDateTime::now_utc();
    match state.service.change_password(&caller.0, body.current_password, body.new_password, meta.ip.as_deref(), now).await {
        Ok(ended) => Ok(HttpResponse::Ok().json(PasswordChanged { sessions_ended: ended })),
        Err(DomainError::Auth(AuthError::InvalidCredentials)) => {
            Err(Problem { field: Some("current_password"), ..Problem::bad_request("wrong_password", "the current password is wrong") })
        }
        Err(e) => Err(e.into()),
    }
}
