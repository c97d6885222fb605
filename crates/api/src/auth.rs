//! The authenticated-caller extractor of the native API: adding the parameter is what protects a
//! route. Accepting a token is a signature check and an in-memory look-up.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use tessera_domain::{AccessContext, OffsetDateTime};

use crate::problem::{Problem, auth_problem, bearer_challenge};
use crate::state::AppState;

/// The caller of a native route, from `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub AccessContext);

pub use tessera_dialects::http::{Malformed as MalformedBearer, bearer_token};

impl FromRequest for Authenticated {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Authenticated, Problem> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(Problem::internal)?;
    let token = match bearer_token(req) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Err(Problem::unauthorized(
                "missing_token",
                "an `Authorization: Bearer <access token>` header is required",
                bearer_challenge(None),
            ));
        }
        Err(MalformedBearer) => {
            let detail = "the Authorization header must be `Bearer <access token>`";
            return Err(Problem::unauthorized("invalid_token", detail, bearer_challenge(Some(("invalid_request", detail)))));
        }
    };
    state.service.resolve_access(&state.native, token, OffsetDateTime::now_utc()).map(Authenticated).map_err(auth_problem)
}
