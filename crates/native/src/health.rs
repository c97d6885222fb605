//! Liveness and readiness probes.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::{Problem, ProblemBody};
use crate::state::NativeState;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthStatus {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(tag = "health", responses((status = 200, body = HealthStatus)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus { status: "ok" })
}

/// The process can serve: the database answers.
#[utoipa::path(tag = "health", responses((status = 200, body = HealthStatus), (status = 503, body = ProblemBody, content_type = "application/problem+json")))]
#[get("/health/ready")]
pub async fn ready(state: web::Data<NativeState>) -> Result<HttpResponse, Problem> {
    match state.service.ping().await {
        Ok(()) => Ok(HttpResponse::Ok().json(HealthStatus { status: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: database unreachable");
            Err(Problem::unavailable())
        }
    }
}
