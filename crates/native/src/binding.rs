//! What the token endpoint and the protected routes share of DPoP (RFC 9449): the one proof a
//! request may carry, and the nonces accepted now.

use actix_web::HttpRequest;
use tessera_domain::OffsetDateTime;

use crate::state::NativeState;

/// The request's `DPoP` header, when it has exactly one (RFC 9449 §4.3: more is an error).
pub fn proof(req: &HttpRequest) -> Result<Option<&str>, &'static str> {
    let mut all = req.headers().get_all("dpop");
    let Some(first) = all.next() else { return Ok(None) };
    if all.next().is_some() {
        return Err("more than one DPoP header");
    }
    first.to_str().map(Some).map_err(|_| "the DPoP header is not a JWS")
}

/// The request's one proof, which must be there.
pub fn single_proof(req: &HttpRequest) -> Result<&str, &'static str> {
    proof(req)?.ok_or("a DPoP proof (the DPoP header) is required with a DPoP-bound token")
}

/// The nonces a proof must carry one of now; none when the deployment asks for none.
pub fn nonces(state: &NativeState, now: OffsetDateTime) -> Vec<String> {
    if state.settings.dpop_nonce { state.service.dpop_nonces(now).to_vec() } else { Vec::new() }
}
