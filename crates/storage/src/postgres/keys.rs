//! Signing keys: stored sealed, created once across instances, and their schedule.

use super::*;

#[async_trait]
impl KeyRepository for PgStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, RepoError> {
        let rows = sqlx::query(
            "select kid, alg, state, sealed_secret, created_at, activated_at, retired_at from signing_keys order by created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(rows::stored_key).collect()
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), RepoError> {
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
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn ensure_signing_key(&self, candidate: &StoredKey) -> Result<Vec<StoredKey>, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("select pg_advisory_xact_lock(hashtext('tessera_signing_keys'))").execute(&mut *tx).await.map_err(map_err)?;
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("select pg_advisory_xact_lock(hashtext('tessera_signing_keys'))").execute(&mut *tx).await.map_err(map_err)?;
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
            sqlx::query("select pg_notify('tessera_keys', $1)").bind(&candidate.alg).execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(changes)
    }

    async fn set_key_state(&self, kid: &str, state: tessera_domain::KeyState, now: OffsetDateTime) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "with k as (update signing_keys set state = $2, \
                activated_at = case when $2 = 'active' then $3 else activated_at end, \
                retired_at = case when $2 = 'retired' then $3 else retired_at end \
             where kid = $1 returning kid) select pg_notify('tessera_keys', kid) from k",
        )
        .bind(kid)
        .bind(state.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(!done.is_empty())
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, RepoError> {
        let done =
            sqlx::query("with k as (delete from signing_keys where kid = $1 returning kid) select pg_notify('tessera_keys', kid) from k")
                .bind(kid)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(!done.is_empty())
    }
}
