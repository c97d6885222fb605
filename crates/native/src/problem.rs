//! The native API's error body: RFC 9457 `application/problem+json` with a stable `code`.
//! Unexpected failures keep their cause chain in the log and show a generic body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tessera_domain::{AuthError, DomainError};
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Conflict", "status": 409, "detail": "the e-mail address is already registered", "code": "email_taken"}))]
pub struct ProblemBody {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, snake_case; clients branch on this, not on `detail`.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub field: Option<&'static str>,
    pub www_authenticate: Option<String>,
    /// A fresh DPoP nonce for the client's next proof (`DPoP-Nonce`).
    pub dpop_nonce: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), field: None, www_authenticate: None, dpop_nonce: None }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>, challenge: String) -> Self {
        Self { www_authenticate: Some(challenge), ..Self::new(StatusCode::UNAUTHORIZED, code, detail) }
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an unexpected error occurred; it has been logged")
    }

    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the service is temporarily unavailable")
    }

    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            type_: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            field: self.field,
        }
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        if let Some(ch) = &self.www_authenticate
            && let Ok(v) = HeaderValue::from_str(ch)
        {
            res.insert_header((header::WWW_AUTHENTICATE, v));
        }
        if let Some(n) = &self.dpop_nonce
            && let Ok(v) = HeaderValue::from_str(n)
        {
            res.insert_header(("DPoP-Nonce", v));
        }
        res.body(serde_json::to_string(&self.body()).unwrap_or_default())
    }
}

/// Logs an unexpected failure with its whole cause chain; returns what the client sees.
pub fn unexpected(e: &(dyn std::error::Error + 'static)) -> Problem {
    match tessera_http::request::unexpected(e) {
        503 => Problem::unavailable(),
        _ => Problem::internal(),
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { field, message, .. } => {
                Problem { field: Some(field), ..Problem::bad_request("validation_failed", format!("{field} {message}")) }
            }
            DomainError::EmailTaken => Problem::new(StatusCode::CONFLICT, "email_taken", "the e-mail address is already registered"),
            DomainError::NotFound(what) => Problem::new(StatusCode::NOT_FOUND, "not_found", format!("unknown {what}")),
            DomainError::Auth(a) => auth_problem(a),
            other => match tessera_http::request::retry_later(&other) {
                Some((429, secs)) => Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many attempts; retry after {secs} seconds"),
                ),
                Some((_, secs)) => {
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", format!("the service is busy; retry after {secs} seconds"))
                }
                None => unexpected(&other),
            },
        }
    }
}

/// The Bearer challenge of RFC 6750 §3.
pub fn bearer_challenge(error: Option<(&str, &str)>) -> String {
    match error {
        Some((code, desc)) => format!("Bearer realm=\"tessera\", error=\"{code}\", error_description=\"{desc}\""),
        None => "Bearer realm=\"tessera\"".to_owned(),
    }
}

/// The DPoP challenge of RFC 9449 §7.1, naming the algorithms a proof may use.
pub fn dpop_challenge(error: Option<(&str, &str)>) -> String {
    let algs = tessera_domain::dpop::algorithms();
    match error {
        Some((code, desc)) => format!("DPoP algs=\"{algs}\", error=\"{code}\", error_description=\"{desc}\""),
        None => format!("DPoP algs=\"{algs}\""),
    }
}

pub fn auth_problem(a: AuthError) -> Problem {
    let (code, detail) = match a {
        AuthError::TokenExpired => ("token_expired", "the access token has expired"),
        AuthError::TokenRevoked => ("token_revoked", "the access token's session has been revoked"),
        AuthError::WrongTokenType => ("invalid_token", "the token is not an access token"),
        AuthError::UserBlocked => ("user_blocked", "the account is blocked"),
        AuthError::UnknownUser => ("invalid_token", "the token's user no longer exists"),
        AuthError::InvalidCredentials => ("invalid_credentials", "invalid credentials"),
        _ => ("invalid_token", "the access token is malformed or its signature does not verify"),
    };
    Problem::unauthorized(code, detail, bearer_challenge(Some(("invalid_token", detail))))
}
