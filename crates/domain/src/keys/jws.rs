//! The compact JWS form (RFC 7515 §7.1) the keys Tessera signs with in ring share: the signing
//! input serialised exactly as `jsonwebtoken::encode` writes it, and the signature appended.

use base64::Engine;
use jsonwebtoken::Header;
use serde::Serialize;

use crate::DomainError;

pub(super) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The JWS signing input of `header` and `claims` (`base64url(header) . base64url(claims)`),
/// serialised exactly as `jsonwebtoken::encode` does.
pub(super) fn signing_input<T: Serialize>(header: &Header, claims: &T) -> Result<String, DomainError> {
    let failed = |e: serde_json::Error| DomainError::Internal(format!("signing failed: {e}"));
    let mut token = B64.encode(serde_json::to_vec(header).map_err(failed)?);
    token.push('.');
    B64.encode_string(serde_json::to_vec(claims).map_err(failed)?, &mut token);
    Ok(token)
}

/// Appends `.signature` to a signing input: a compact JWS.
pub(super) fn finish(mut token: String, signature: &[u8]) -> String {
    token.push('.');
    B64.encode_string(signature, &mut token);
    token
}
