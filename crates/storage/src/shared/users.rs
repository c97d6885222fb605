//! Users: registration, imports from the replaced deployment, e-mail comparison keys, passwords, deletion.

/// `UserRepository` for a store; see [the seam](super).
macro_rules! user_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl UserRepository for $store {
            async fn create_user(&self, email: &Email, password: Option<&PasswordHash>, now: OffsetDateTime) -> Result<User, RepoError> {
                let row = sqlx::query(
                    "insert into users (email, email_normalized, password_hash, status, created_at, password_changed_at, email_normalized_version) \
                     values ($1, $2, $3, 'active', $4, $4, $5) returning id, email, password_hash, status, created_at, password_changed_at",
                )
                .bind(email.as_str())
                .bind(email.normalized())
                .bind(password.map(PasswordHash::as_str))
                .bind(now)
                .bind(Email::NORMALIZATION)
                .fetch_one(self.pool())
                .await
                .map_err(map_err)?;
                rows::user(&row)
            }

            async fn import_user(&self, user: &User, origin: &str) -> Result<bool, RepoError> {
                let mut tx = self.write_tx().await?;
                let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "insert into users (id, email, email_normalized, password_hash, status, created_at, password_changed_at, origin, \
                     email_normalized_version) \
                     {OVERRIDING}values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (id) do nothing"
                )))
                .bind(user.id.0)
                .bind(user.email.as_str())
                .bind(user.email.normalized())
                .bind(user.password_hash.as_ref().map(PasswordHash::as_str))
                .bind(user.status.as_str())
                .bind(user.created_at)
                .bind(user.password_changed_at)
                .bind(origin)
                .bind(Email::NORMALIZATION)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                if done == 0 {
                    // the id is taken: by this very user (an import run again), or by someone else
                    let (same,): (bool,) =
                        sqlx::query_as("select origin is not distinct from $2 and email_normalized = $3 from users where id = $1")
                            .bind(user.id.0)
                            .bind(origin)
                            .bind(user.email.normalized())
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    return if same { Ok(false) } else { Err(RepoError::Conflict("users_pkey")) };
                }
                // the identity sequence moves past imported ids (SQLite: autoincrement already does)
                reserve_ids(&mut tx, user.id.0).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn user_from(&self, origin: &str, id: UserId) -> Result<Option<User>, RepoError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLS} from users where id = $1 and origin = $2")))
                    .bind(id.0)
                    .bind(origin)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(rows::user).transpose()
            }

            async fn reserve_user_ids(&self, up_to: i64) -> Result<(), RepoError> {
                let mut tx = self.write_tx().await?;
                reserve_ids(&mut tx, up_to).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn start_import(&self, origin: &str, now: OffsetDateTime) -> Result<(), RepoError> {
                let _turn = self.write_turn().await;
                sqlx::query("insert into imports (origin, started_at) values ($1, $2) on conflict (origin) do update set started_at = $2")
                    .bind(origin)
                    .bind(now)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn finish_import(&self, origin: &str, now: OffsetDateTime) -> Result<(), RepoError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "insert into imports (origin, started_at, finished_at) values ($1, $2, $2) \
                     on conflict (origin) do update set finished_at = coalesce(imports.finished_at, $2)",
                )
                .bind(origin)
                .bind(now)
                .execute(self.pool())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn import_finished(&self, origin: &str) -> Result<bool, RepoError> {
                let row: Option<(bool,)> = sqlx::query_as("select finished_at is not null from imports where origin = $1")
                    .bind(origin)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(row.is_some_and(|(f,)| f))
            }

            async fn renormalize_emails(
                &self,
                version: i64,
                normalize: for<'s> fn(&'s str) -> Option<String>,
            ) -> Result<(Vec<UserId>, Vec<UserId>), RepoError> {
                let _turn = self.write_turn().await;
                let (mut updated, mut kept) = (vec![], vec![]);
                loop {
                    let rows: Vec<(i64, String)> =
                        sqlx::query_as("select id, email from users where email_normalized_version < $1 order by id limit 500")
                            .bind(version)
                            .fetch_all(self.pool())
                            .await
                            .map_err(map_err)?;
                    if rows.is_empty() {
                        return Ok((updated, kept));
                    }
                    for (id, email) in rows {
                        let fresh = normalize(&email);
                        let done = match &fresh {
                            Some(n) => sqlx::query("update users set email_normalized = $2, email_normalized_version = $3 where id = $1")
                                .bind(id)
                                .bind(n)
                                .bind(version)
                                .execute(self.pool())
                                .await
                                .map_err(map_err),
                            None => Err(RepoError::NotFound),
                        };
                        match done {
                            Ok(_) => updated.push(UserId(id)),
                            Err(RepoError::Conflict(_) | RepoError::NotFound) => {
                                sqlx::query("update users set email_normalized_version = $2 where id = $1")
                                    .bind(id)
                                    .bind(version)
                                    .execute(self.pool())
                                    .await
                                    .map_err(map_err)?;
                                kept.push(UserId(id));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }

            async fn rehash_password(&self, id: UserId, old: &PasswordHash, new: &PasswordHash) -> Result<bool, RepoError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query("update users set password_hash = $3 where id = $1 and password_hash = $2")
                    .bind(id.0)
                    .bind(old.as_str())
                    .bind(new.as_str())
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn stale_password_hashes(&self, current: &str, after: i64, limit: u32) -> Result<Vec<(UserId, PasswordHash)>, RepoError> {
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "select id, password_hash from users where id > $1 and password_hash is not null \
                     and substr(password_hash, 1, length($2)) <> $2 order by id limit $3",
                )
                .bind(after)
                .bind(current)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(|(id, hash)| (UserId(id), PasswordHash::from_phc(hash))).collect())
            }

            async fn list_users(&self, after: i64, limit: u32) -> Result<Vec<User>, RepoError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLS} from users where id > $1 order by id limit $2")))
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?;
                rows.iter().map(rows::user).collect()
            }

            async fn set_password(&self, id: UserId, hash: &PasswordHash, now: OffsetDateTime) -> Result<bool, RepoError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query("update users set password_hash = $2, password_changed_at = $3 where id = $1")
                    .bind(id.0)
                    .bind(hash.as_str())
                    .bind(now)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_user(&self, id: UserId, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError> {
                let mut tx = self.write_tx().await?;
                // the key of no address: see Email::deleted_key
                let updated = sqlx::query(
                    "update users set email = $2, email_normalized = $4, password_hash = null, status = 'blocked', password_changed_at = $3, \
                     origin = null where id = $1",
                )
                .bind(id.0)
                .bind(Email::deleted(id).as_str())
                .bind(now)
                .bind(Email::deleted_key(id))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if updated.rows_affected() == 0 {
                    return Err(RepoError::NotFound);
                }
                sqlx::query("delete from identities where user_id = $1").bind(id.0).execute(&mut *tx).await.map_err(map_err)?;
                sqlx::query("insert into audit_events (at, kind, user_id) values ($1, 'user_deleted', $2)")
                    .bind(now)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let revoked = revoke_where(&mut tx, "user_id = $3", now, "user_deleted", Some(id.0), None, id.route()).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(revoked)
            }

            async fn user_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLS} from users where email_normalized = $1")))
                    .bind(email.normalized())
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(rows::user).transpose()
            }

            async fn user_by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLS} from users where id = $1")))
                    .bind(id.0)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(rows::user).transpose()
            }

            async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>, RepoError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select {USER_COLS} from users where id = (select user_id from identities where provider = $1 and subject = $2)"
                )))
                .bind(provider)
                .bind(subject)
                .fetch_optional(self.pool())
                .await
                .map_err(map_err)?;
                row.as_ref().map(rows::user).transpose()
            }

            async fn create_user_with_identity(
                &self,
                provider: &str,
                subject: &str,
                email: &Email,
                now: OffsetDateTime,
            ) -> Result<User, RepoError> {
                let mut tx = self.write_tx().await?;
                lock(&mut tx, Lock::Identity { provider, subject }).await?;
                let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select {USER_COLS} from users where id = (select user_id from identities where provider = $1 and subject = $2)"
                )))
                .bind(provider)
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                if let Some(row) = existing {
                    return rows::user(&row);
                }
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "insert into users (email, email_normalized, password_hash, status, created_at, email_normalized_version) \
                     values ($1, $2, null, 'active', $3, $4) returning {USER_COLS}"
                )))
                .bind(email.as_str())
                .bind(email.normalized())
                .bind(now)
                .bind(Email::NORMALIZATION)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                let user = rows::user(&row)?;
                sqlx::query("insert into identities (provider, subject, user_id, created_at) values ($1, $2, $3, $4)")
                    .bind(provider)
                    .bind(subject)
                    .bind(user.id.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(user)
            }

            async fn set_user_status(&self, id: UserId, status: UserStatus, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError> {
                let mut tx = self.write_tx().await?;
                let updated = sqlx::query("update users set status = $2 where id = $1")
                    .bind(id.0)
                    .bind(status.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if updated.rows_affected() == 0 {
                    return Err(RepoError::NotFound);
                }
                sqlx::query("insert into audit_events (at, kind, user_id) values ($1, 'user_' || $2, $3)")
                    .bind(now)
                    .bind(status.as_str())
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let revoked = if status == UserStatus::Blocked {
                    revoke_where(&mut tx, "user_id = $3", now, "user_blocked", Some(id.0), None, id.route()).await?
                } else {
                    vec![]
                };
                tx.commit().await.map_err(map_err)?;
                Ok(revoked)
            }
        }
    };
}
pub(crate) use user_repository;
