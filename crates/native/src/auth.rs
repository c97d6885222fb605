//! The authenticated-caller extractor of the native API: adding the parameter is what protects a
//! route. A `Bearer` token is accepted with a signature check and an in-memory look-up; a
//! `DPoP` token (RFC 9449 §7) also needs the request's proof, signed by the key the token is
//! bound to, whose `jti` is then recorded once for every instance.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use tessera_domain::dpop::Expected;
use tessera_domain::{AccessContext, AuthError, DomainError, OffsetDateTime};

use crate::problem::{Problem, auth_problem, bearer_challenge, dpop_challenge};
use crate::state::NativeState;

/// The caller of a native route, from `Authorization: Bearer <access token>`, or
/// `Authorization: DPoP <access token>` with its `DPoP` proof.
#[derive(Debug, Clone)]
pub struct Authenticated(pub AccessContext);

pub use tessera_http::request::{Malformed as MalformedBearer, bearer_token};

impl FromRequest for Authenticated {
    type Error = Problem;
    type Future = LocalBoxFuture<'static, Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}

/// How the token came: its scheme and the token.
enum Presented<'a> {
    Bearer(&'a str),
    Dpop(&'a str),
}

fn presented(req: &HttpRequest) -> Result<Option<Presented<'_>>, Problem> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().unwrap_or("");
    if let Some((scheme, token)) = value.split_once(' ')
        && scheme.eq_ignore_ascii_case("dpop")
    {
        let token = token.trim();
        if !token.is_empty() && !token.contains(' ') {
            return Ok(Some(Presented::Dpop(token)));
        }
    }
    match bearer_token(req) {
        Ok(Some(t)) => Ok(Some(Presented::Bearer(t))),
        Ok(None) => Ok(None),
        Err(MalformedBearer) => {
            let detail = "the Authorization header must be `Bearer <access token>` or `DPoP <access token>`";
            Err(Problem::unauthorized("invalid_token", detail, bearer_challenge(Some(("invalid_request", detail)))))
        }
    }
}

async fn authenticate(req: &HttpRequest) -> Result<Authenticated, Problem> {
    let state = req.app_data::<web::Data<NativeState>>().ok_or_else(Problem::internal)?;
    let now = OffsetDateTime::now_utc();
    match presented(req)? {
        None => Err(Problem::unauthorized(
            "missing_token",
            "an `Authorization: Bearer <access token>` header is required",
            bearer_challenge(None),
        )),
        Some(Presented::Bearer(token)) => {
            let ctx = state.service.resolve_access(&state.native, token, now).map_err(auth_problem)?;
            if ctx.dpop_jkt.is_some() {
                // a bound token is worth nothing without its key (RFC 9449 §7.1)
                let detail = "the access token is bound to a key: send it as `Authorization: DPoP` with a DPoP proof";
                return Err(Problem::unauthorized("invalid_token", detail, dpop_challenge(Some(("invalid_token", detail)))));
            }
            Ok(Authenticated(ctx))
        }
        Some(Presented::Dpop(token)) => {
            let ctx = state.service.resolve_access(&state.native, token, now).map_err(|e| {
                let p = auth_problem(e);
                let detail = p.detail.clone();
                Problem { www_authenticate: Some(dpop_challenge(Some(("invalid_token", &detail)))), ..p }
            })?;
            let Some(bound) = ctx.dpop_jkt.clone() else {
                let detail = "the access token is not bound to a key: send it as `Authorization: Bearer`";
                return Err(Problem::unauthorized("invalid_token", detail, dpop_challenge(Some(("invalid_token", detail)))));
            };
            let proof = crate::binding::single_proof(req).map_err(|why| dpop_refusal(state, &AuthError::InvalidDpopProof(why), now))?;
            let url = format!("{}{}", crate::discovery::base_url(req, state).0, req.path());
            let nonces = crate::binding::nonces(state, now);
            let expected = Expected { method: req.method().as_str(), url: &url, access_token: Some(token), nonces: &nonces, now };
            let accepted = match state.service.accept_dpop_proof(proof, expected).await {
                Ok(p) => p,
                Err(DomainError::Auth(a)) => return Err(dpop_refusal(state, &a, now)),
                Err(e) => return Err(e.into()),
            };
            if accepted.jkt != bound {
                return Err(dpop_refusal(state, &AuthError::InvalidDpopProof("the proof is signed by another key than the token's"), now));
            }
            Ok(Authenticated(ctx))
        }
    }
}

/// A refused proof at a protected route: 401 with the DPoP challenge (RFC 9449 §7.1, §9), and a
/// fresh nonce when it was the nonce that was missing.
fn dpop_refusal(state: &NativeState, e: &AuthError, now: OffsetDateTime) -> Problem {
    match e {
        AuthError::UseDpopNonce => Problem {
            dpop_nonce: Some(state.service.dpop_nonce(now)),
            ..Problem::unauthorized(
                "use_dpop_nonce",
                "the DPoP proof must carry the server's nonce (DPoP-Nonce)",
                dpop_challenge(Some(("use_dpop_nonce", "Resource server requires nonce in DPoP proof"))),
            )
        },
        AuthError::InvalidDpopProof(why) => Problem::unauthorized(
            "invalid_dpop_proof",
            format!("invalid DPoP proof: {why}"),
            dpop_challenge(Some(("invalid_dpop_proof", why))),
        ),
        other => auth_problem(*other),
    }
}
