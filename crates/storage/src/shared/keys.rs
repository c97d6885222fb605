//! Signing keys: stored sealed, created once across instances, and their schedule.

/// `KeyRepository` for a store; see [the seam](super).
macro_rules! key_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl KeyRepository for $store {
            async fn signing_keys(&self) -> Result<Vec<StoredKey>, RepoError> {
                let rows = sqlx::query(
                    "select kid, alg, state, sealed_secret, created_at, activated_at, retired_at from signing_keys order by created_at",
                )
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                rows.iter().map(rows::stored_key).collect()
            }

            async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), RepoError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "insert into signing_keys (kid, alg, state, sealed_secret, created_at, activated_at, retired_at) values ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(key.state.as_str())
                .bind(&key.sealed_secret)
                .bind(key.created_at)
                .bind(key.activated_at)
                .bind(key.retired_at)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn ensure_signing_key(&self, candidate: &StoredKey) -> Result<Vec<StoredKey>, RepoError> {
                let mut tx = self.write_tx().await?;
                lock(&mut tx, Lock::SigningKeys).await?;
                sqlx::query(
                    "insert into signing_keys (kid, alg, state, sealed_secret, created_at, activated_at) select $1, $2, 'active', $3, $4, $4 \
                     where not exists (select 1 from signing_keys where alg = $2 and state = 'active')",
                )
                .bind(&candidate.kid)
                .bind(&candidate.alg)
                .bind(&candidate.sealed_secret)
                .bind(candidate.created_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                self.signing_keys().await
            }

            async fn schedule_keys(&self, candidate: &StoredKey, now: OffsetDateTime, schedule: &KeySchedule) -> Result<Vec<KeyChange>, RepoError> {
                let mut tx = self.write_tx().await?;
                lock(&mut tx, Lock::SigningKeys).await?;
                let rows =
                    sqlx::query("select kid, alg, state, sealed_secret, created_at, activated_at, retired_at from signing_keys where alg = $1")
                        .bind(&candidate.alg)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                let keys = rows.iter().map(rows::stored_key).collect::<Result<Vec<_>, _>>()?;
                let changes = key_schedule::plan(&keys, now, schedule);
                for c in &changes {
                    let q = match c {
                        KeyChange::Publish if candidate.sealed_secret.is_empty() => continue,
                        KeyChange::Publish => {
                            sqlx::query("insert into signing_keys (kid, alg, state, sealed_secret, created_at) values ($1, $2, 'next', $3, $4)")
                                .bind(&candidate.kid)
                                .bind(&candidate.alg)
                                .bind(&candidate.sealed_secret)
                                .bind(now)
                        }
                        KeyChange::Activate { next, retiring } => sqlx::query(
                            "update signing_keys set state = case when kid = $1 then 'active' else 'retired' end, \
                             activated_at = case when kid = $1 then $3 else activated_at end, \
                             retired_at = case when kid = $1 then retired_at else $3 end \
                             where kid = $1 or kid = $2",
                        )
                        .bind(next)
                        .bind(retiring.as_deref())
                        .bind(now),
                        KeyChange::Drop(kid) => sqlx::query("delete from signing_keys where kid = $1 and state = 'retired'").bind(kid),
                    };
                    q.execute(&mut *tx).await.map_err(map_err)?;
                }
                if !changes.is_empty() {
                    notify(&mut tx, $crate::shared::KEYS_CHANNEL, &candidate.alg).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(changes)
            }

            async fn set_key_state(&self, kid: &str, state: tessera_domain::KeyState, now: OffsetDateTime) -> Result<bool, RepoError> {
                let mut tx = self.write_tx().await?;
                let done = sqlx::query(
                    "update signing_keys set state = $2, \
                        activated_at = case when $2 = 'active' then $3 else activated_at end, \
                        retired_at = case when $2 = 'retired' then $3 else retired_at end \
                     where kid = $1",
                )
                .bind(kid)
                .bind(state.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if done.rows_affected() > 0 {
                    notify(&mut tx, $crate::shared::KEYS_CHANNEL, kid).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_signing_key(&self, kid: &str) -> Result<bool, RepoError> {
                let mut tx = self.write_tx().await?;
                let done = sqlx::query("delete from signing_keys where kid = $1").bind(kid).execute(&mut *tx).await.map_err(map_err)?;
                if done.rows_affected() > 0 {
                    notify(&mut tx, $crate::shared::KEYS_CHANNEL, kid).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use key_repository;
