//! Failed and successful logins per account and address: the lockout the password use-case reads.

/// `LoginAttemptRepository` for a store whose connections are `$conn`; see [the seam](super).
macro_rules! attempt_repository {
    ($store:ty, $conn:ty) => {
        #[async_trait::async_trait]
        impl LoginAttemptRepository for $store {
            async fn login_lock(&self, account: &str, address: &str, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, RepoError> {
                let mut conn = self.pool().acquire().await.map_err(map_err)?;
                let (own, wide) = attempt_rows(&mut conn, account, address, "").await?;
                Ok(LockoutPolicy::lock_in_force(own.as_ref(), wide.as_ref(), now))
            }

            async fn login_failed(
                &self,
                account: &str,
                address: &str,
                now: OffsetDateTime,
                policy: &LockoutPolicy,
            ) -> Result<Option<OffsetDateTime>, RepoError> {
                let mut tx = self.write_tx().await?;
                // both rows, in one order, locked until the transaction ends
                sqlx::query("insert into login_attempts (account, ip) values ($1, $2), ($1, $3) on conflict do nothing")
                    .bind(account)
                    .bind(address)
                    .bind(ANY_ADDRESS)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let (own, wide) = attempt_rows(&mut tx, account, address, FOR_UPDATE).await?;
                let own = policy.after_failure(own.unwrap_or_default(), policy.threshold, now);
                let wide = policy.after_account_failure(wide.unwrap_or_default(), policy.account_threshold, now);
                for (ip, row) in [(address, &own), (ANY_ADDRESS, &wide)] {
                    sqlx::query(
                        "update login_attempts set failures = $3, last_failure_at = $4, locked_until = $5, succeeded_at = $6 \
                         where account = $1 and ip = $2",
                    )
                    .bind(account)
                    .bind(ip)
                    .bind(i64::from(row.failures))
                    .bind(row.last_failure_at)
                    .bind(row.locked_until)
                    .bind(row.succeeded_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(LockoutPolicy::lock_in_force(Some(&own), Some(&wide), now))
            }

            async fn login_succeeded(&self, account: &str, address: &str, now: OffsetDateTime) -> Result<(), RepoError> {
                let _turn = self.write_turn().await;
                sqlx::query($crate::shared::LOGIN_SUCCEEDED)
                    .bind(account)
                    .bind(address)
                    .bind(now)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn prune_login_attempts(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(sqlx::AssertSqlSafe(format!("delete from login_attempts where {NEWEST_ATTEMPT} < $1")))
                    .bind(before)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }
        }

        /// The address's row and the account-wide row of `account`.
        async fn attempt_rows(
            conn: &mut $conn,
            account: &str,
            address: &str,
            suffix: &str,
        ) -> Result<(Option<AttemptRow>, Option<AttemptRow>), RepoError> {
            let rows: Vec<rows::AttemptTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select ip, cast(failures as bigint), last_failure_at, locked_until, succeeded_at from login_attempts \
                 where account = $1 and ip in ($2, $3) order by ip{suffix}"
            )))
            .bind(account)
            .bind(address)
            .bind(ANY_ADDRESS)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            Ok(rows::attempt_rows(rows))
        }
    };
}
pub(crate) use attempt_repository;
