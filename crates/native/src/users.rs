//! Registration, the caller's own account, and logout.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use tessera_domain::{LogoutScope, OffsetDateTime};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::problem::{Problem, ProblemBody};
use crate::state::NativeState;
use tessera_http::body::{BodyError, read_limited};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse battery"}))]
pub struct RegisterRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// `password.min_length` (8) characters at least, 1 KiB at most.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "email": "ann@example.com"}))]
pub struct UserResponse {
    pub id: i64,
    pub email: String,
}

/// Register a user with an e-mail and a password.
#[utoipa::path(
    tag = "users",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = UserResponse),
        (status = 400, description = "Malformed body, bad e-mail or password", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The e-mail is taken (case-insensitively)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "too_many_attempts: too many password attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "busy: too many password hashes wait", body = ProblemBody, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
#[post("/v1/users")]
pub async fn register_user(
    req: HttpRequest,
    state: web::Data<NativeState>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, Problem> {
    let body = body.into_inner();
    let ip = tessera_http::request::client_ip(&req);
    let user = state.service.register_from(&body.email, body.password, ip.as_deref(), OffsetDateTime::now_utc()).await?;
    Ok(HttpResponse::Created().json(UserResponse { id: user.id.0, email: user.email.to_string() }))
}

/// The account the access token speaks for.
#[utoipa::path(
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, body = UserResponse),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[get("/v1/me")]
pub async fn get_me(state: web::Data<NativeState>, caller: Authenticated) -> Result<HttpResponse, Problem> {
    match state.service.current_user(&caller.0).await {
        Ok(u) => Ok(HttpResponse::Ok().json(UserResponse { id: u.id.0, email: u.email.to_string() })),
        Err(tessera_domain::DomainError::Auth(a)) => Err(crate::problem::auth_problem(a)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"scope": "global"}))]
pub struct LogoutRequest {
    /// `local` (this session; the default), `global` (every session of the user) or `others`.
    #[serde(default = "local")]
    pub scope: LogoutScopeDoc,
}

fn local() -> LogoutScopeDoc {
    LogoutScopeDoc::Local
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogoutScopeDoc {
    Local,
    Global,
    Others,
}

impl From<LogoutScopeDoc> for LogoutScope {
    fn from(s: LogoutScopeDoc) -> Self {
        match s {
            LogoutScopeDoc::Local => LogoutScope::Local,
            LogoutScopeDoc::Global => LogoutScope::Global,
            LogoutScopeDoc::Others => LogoutScope::Others,
        }
    }
}

/// End this session, every session, or every other session of the caller. The body is
/// optional; without one the scope is `local`.
#[utoipa::path(
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body(content = Option<LogoutRequest>),
    responses(
        (status = 204, description = "Logged out; the sessions' access tokens are refused from now on"),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
#[post("/v1/logout")]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<NativeState>,
    caller: Authenticated,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let body = read_limited(payload, state.settings.max_body_bytes).await.map_err(body_problem)?;
    let scope = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutScope::Local
    } else {
        let is_json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("application/json"));
        if !is_json {
            return Err(Problem::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
            ));
        }
        // `null` is no body, as the document says (found by schemathesis with a live token)
        let parsed: Option<LogoutRequest> =
            serde_json::from_slice(&body).map_err(|e| Problem::bad_request("invalid_body", format!("invalid JSON body: {e}")))?;
        parsed.map_or(LogoutScope::Local, |p| p.scope.into())
    };
    state.service.logout(&caller.0, scope, OffsetDateTime::now_utc()).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn body_problem(e: BodyError) -> Problem {
    use actix_web::http::StatusCode;
    match e {
        BodyError::TooLarge(limit) => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is larger than {limit} bytes"))
        }
        BodyError::UnsupportedMediaType(ct) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", format!("unsupported content type {ct:?}"))
        }
        BodyError::Malformed(m) => Problem::bad_request("invalid_body", m),
        BodyError::Duplicate(p) => Problem::bad_request("invalid_body", format!("parameter {p} appears more than once")),
        BodyError::Unreadable => Problem::bad_request("invalid_body", "the body could not be read"),
    }
}
