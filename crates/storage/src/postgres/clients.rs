//! OAuth clients.

use super::*;

#[async_trait]
impl ClientRepository for PgStore {
    async fn create_client(&self, client: &OAuthClient) -> Result<(), RepoError> {
        sqlx::query("insert into clients (client_id, name, secret_hash, profile, created_at) values ($1, $2, $3, $4, $5)")
            .bind(client.client_id.as_str())
            .bind(&client.name)
            .bind(client.secret_hash.map(|h| h.0.to_vec()))
            .bind(&client.profile)
            .bind(client.created_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn client_by_id(&self, client_id: &str) -> Result<Option<OAuthClient>, RepoError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {CLIENT_COLS} from clients where client_id = $1")))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::client).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<OAuthClient>, RepoError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("select {CLIENT_COLS} from clients order by client_id")))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(rows::client).collect()
    }

    async fn update_client(&self, client: &OAuthClient) -> Result<bool, RepoError> {
        let done = sqlx::query("update clients set name = $2, secret_hash = $3, profile = $4 where client_id = $1")
            .bind(client.client_id.as_str())
            .bind(&client.name)
            .bind(client.secret_hash.map(|h| h.0.to_vec()))
            .bind(&client.profile)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_client(&self, client_id: &str, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let live = sqlx::query("select id from sessions where client_id = $1 and revoked_at is null")
            .bind(client_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut revoked = Vec::with_capacity(live.len());
        for row in &live {
            revoked.extend(revoke_where(&mut *tx, "id = $4", now, "client_deleted", None, Some(row.uuid("id")?)).await?);
        }
        sqlx::query("update sessions set client_id = null where client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let deleted = sqlx::query("delete from clients where client_id = $1").bind(client_id).execute(&mut *tx).await.map_err(map_err)?;
        if deleted.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        // heard by every instance once committed
        sqlx::query(sqlx::AssertSqlSafe(format!("select pg_notify('{CLIENTS_CHANNEL}', $1)")))
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }
}
