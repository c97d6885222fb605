//! DPoP proofs seen: each used once, on any instance, until its window ends.

/// `ProofRepository` for a store; see [the seam](super).
macro_rules! proof_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl tessera_domain::ports::ProofRepository for $store {
            async fn remember_proof(&self, key: TokenHash, expires_at: OffsetDateTime) -> Result<bool, RepoError> {
                let _turn = self.write_turn().await;
                let done =
                    sqlx::query("insert into dpop_proofs (proof_key, expires_at) values ($1, $2) on conflict (proof_key) do nothing")
                        .bind(key.0.to_vec())
                        .bind(expires_at)
                        .execute(self.pool())
                        .await
                        .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_proofs(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query("delete from dpop_proofs where expires_at < $1")
                    .bind(before)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use proof_repository;
