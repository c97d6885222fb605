//! OAuth clients.

/// `ClientRepository` for a store; see [the seam](super).
macro_rules! client_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl ClientRepository for $store {
            async fn create_client(&self, client: &OAuthClient) -> Result<(), RepoError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "insert into clients (client_id, name, secret_hash, profile, created_at, scopes, audiences, require_dpop, exchange_types) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(client.client_id.as_str())
                .bind(&client.name)
                .bind(client.secret_hash.map(|h| h.0.to_vec()))
                .bind(&client.profile)
                .bind(client.created_at)
                .bind(client.scopes.join(" "))
                .bind(client.audiences.join(" "))
                .bind(client.require_dpop)
                .bind(client.exchange_types.join(" "))
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn client_by_id(&self, client_id: &str) -> Result<Option<OAuthClient>, RepoError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {CLIENT_COLS} from clients where client_id = $1")))
                    .bind(client_id)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(rows::client).transpose()
            }

            async fn list_clients(&self) -> Result<Vec<OAuthClient>, RepoError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("select {CLIENT_COLS} from clients order by client_id")))
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?;
                rows.iter().map(rows::client).collect()
            }

            async fn update_client(&self, client: &OAuthClient) -> Result<bool, RepoError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query("update clients set name = $2, secret_hash = $3, profile = $4, scopes = $5, audiences = $6, require_dpop = $7, exchange_types = $8 where client_id = $1")
                    .bind(client.client_id.as_str())
                    .bind(&client.name)
                    .bind(client.secret_hash.map(|h| h.0.to_vec()))
                    .bind(&client.profile)
                    .bind(client.scopes.join(" "))
                    .bind(client.audiences.join(" "))
                    .bind(client.require_dpop)
                .bind(client.exchange_types.join(" "))
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_client(&self, client_id: &str, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError> {
                let mut tx = self.write_tx().await?;
                let live = sqlx::query("select id, cast(route as bigint) as route from sessions where client_id = $1 and revoked_at is null")
                    .bind(client_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let mut revoked = Vec::with_capacity(live.len());
                for row in &live {
                    let route = Route(u16::try_from(row.int("route")?).map_err(|_| RepoError::Unavailable("a session's route is out of range".into()))?);
                    revoked.extend(revoke_where(&mut tx, "id = $4", now, "client_deleted", None, Some(row.uuid("id")?), route).await?);
                }
                sqlx::query("update sessions set client_id = null where client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let deleted =
                    sqlx::query("delete from clients where client_id = $1").bind(client_id).execute(&mut *tx).await.map_err(map_err)?;
                if deleted.rows_affected() == 0 {
                    return Err(RepoError::NotFound);
                }
                // heard by every instance once committed
                notify(&mut tx, $crate::shared::CLIENTS_CHANNEL, client_id).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(revoked)
            }
        }
    };
}
pub(crate) use client_repository;
