//! DPoP (RFC 9449): accepting a proof, once on any instance, and the server's nonces.

use super::*;
use crate::dpop::{self, Expected, Proof, ProofError};

/// How long a nonce is good for: it changes every this many seconds, and the one before stays
/// accepted, so a client's nonce lives between one and two of these.
const NONCE_PERIOD_SECONDS: i64 = 300;

impl TokenService {
    /// Accepts a DPoP proof sent with a request: its checks ([`dpop::check`]), then its `jti`,
    /// which no instance may have seen from that key within the proof's window.
    pub async fn accept_dpop_proof(&self, proof: &str, expected: Expected<'_>) -> Result<Proof, DomainError> {
        let accepted = dpop::check(proof, &expected).map_err(|e| match e {
            ProofError::Invalid(why) => AuthError::InvalidDpopProof(why),
            ProofError::UseNonce => AuthError::UseDpopNonce,
        })?;
        let key = self.secret_hash(format!("dpop:{}:{}", accepted.jkt, accepted.jti).as_bytes());
        let until = expected.now.max(OffsetDateTime::from_unix_timestamp(accepted.iat).unwrap_or(expected.now))
            + Duration::seconds(dpop::IAT_WINDOW_SECONDS + 1);
        if !self.store.remember_proof(key, until).await? {
            return Err(AuthError::InvalidDpopProof("the proof was used before (its jti)").into());
        }
        Ok(accepted)
    }

    /// Forgets the proofs whose window has ended: no proof that old is accepted anyway.
    pub async fn sweep_dpop_proofs(&self, now: OffsetDateTime) -> Result<u64, DomainError> {
        Ok(self.store.prune_proofs(now).await?)
    }

    /// The nonce a client should put in its next proof (`DPoP-Nonce`).
    pub fn dpop_nonce(&self, now: OffsetDateTime) -> String {
        self.nonce_of(now.unix_timestamp().div_euclid(NONCE_PERIOD_SECONDS))
    }

    /// The nonces accepted now: this period's and the one before.
    pub fn dpop_nonces(&self, now: OffsetDateTime) -> [String; 2] {
        let period = now.unix_timestamp().div_euclid(NONCE_PERIOD_SECONDS);
        [self.nonce_of(period), self.nonce_of(period - 1)]
    }

    fn nonce_of(&self, period: i64) -> String {
        use base64::Engine;
        let h = self.secret_hash(format!("dpop-nonce:{period}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h.0[..16])
    }
}
