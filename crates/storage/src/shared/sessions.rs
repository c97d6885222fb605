//! Sessions and their refresh tokens: opening one, the one-transaction rotation, revocation.

/// `SessionRepository` for a store; see [the seam](super).
macro_rules! session_repository {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl SessionRepository for $store {
            async fn open_session(&self, s: &Session, first: &RefreshRecord) -> Result<(), RepoError> {
                self.insert_session(s, first, None).await
            }

            async fn open_session_after_login(
                &self,
                s: &Session,
                first: &RefreshRecord,
                account: &str,
                address: &str,
            ) -> Result<(), RepoError> {
                self.insert_session(s, first, Some((account, address))).await
            }

            async fn rotate(&self, req: RotateRequest<'_>) -> Result<RotateOutcome, RepoError> {
                // One read locks the presented token and its session (SQLite: the write lock is
                // taken before it): a concurrent rotation of the same token waits and then sees
                // `rotated_at` set.
                let mut tx = self.write_tx().await?;
                let route = req.route.as_i32();
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select {TOKEN_COLS}, {SESSION_COLS}, (u.status = 'active') as user_active \
                     from refresh_tokens t join sessions s on s.id = t.session_id and s.route = $2 join users u on u.id = s.user_id \
                     where t.hash = $1 and t.route = $2{LOCK_ROTATION}"
                )))
                .bind(req.presented.0.to_vec())
                .bind(route)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some(row) = row else {
                    return Ok(RotateOutcome::Refused { refusal: RefreshRefusal::Unknown, session: None, revoked: vec![] });
                };
                let token = rows::token(&row)?;
                let session = rows::session(&row)?;
                let user_active = row.boolean("user_active")?;
                // The child is read in a statement of its own, after the lock is held: a waiting
                // `select ... for update` re-checks only the locked rows, so a child joined into
                // it would come from the snapshot taken before the concurrent rotation committed.
                let child = if token.rotated_at.is_some() {
                    let c = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "select {TOKEN_COLS} from refresh_tokens t where t.parent_hash = $1 and t.route = $2"
                    )))
                        .bind(token.hash.0.to_vec())
                        .bind(route)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    c.as_ref().map(rows::token).transpose()?
                } else {
                    None
                };
                let facts = RefreshFacts {
                    token: &token,
                    session: &session,
                    child: child.as_ref(),
                    user_active,
                    presenting_client: req.presenting_client,
                    bound_access: req.bound_access,
                    faces: req.faces,
                    not_rotated: req.not_rotated,
                    request: req.request,
                    rules: req.rules,
                    dpop_jkt: req.dpop_jkt,
                };

                let Verdict { decision, signals } = decide_with_risk(&facts, req.now, req.grace);
                match decision {
                    RefreshDecision::Rotate => {
                        let mut new = child_record(&session, &token, req.child, req.now);
                        // the session as the rotation leaves it: what the answer is rendered from
                        let mut after = session.clone();
                        after.last_refresh_at = Some(req.now);
                        after.record_request(req.request);
                        new.sealed_pair = Some((req.seal_answer)(&after, &new)?);
                        record_rotation(&mut tx, req.now, req.request, &session, &token, &new).await?;
                        tx.commit().await.map_err(map_err)?;
                        Ok(RotateOutcome::Rotated { session: after, child: new, signals })
                    }
                    RefreshDecision::Reissue => {
                        tx.commit().await.map_err(map_err)?;
                        match child {
                            Some(child) => Ok(RotateOutcome::Reissued { session, child, signals }),
                            None => Err(RepoError::NotFound),
                        }
                    }
                    RefreshDecision::Refuse(refusal) => {
                        tx.commit().await.map_err(map_err)?;
                        Ok(RotateOutcome::Refused { refusal, session: Some(session.id), revoked: vec![] })
                    }
                    RefreshDecision::RevokeFamily => {
                        let revoked = revoke_where(&mut tx, "id = $4", req.now, "reuse_detected", None, Some(session.id.0), req.route).await?;
                        tx.commit().await.map_err(map_err)?;
                        Ok(RotateOutcome::Refused { refusal: RefreshRefusal::Reused, session: Some(session.id), revoked })
                    }
                    RefreshDecision::RiskRevoke { condition, user } => {
                        let reason = condition.as_str();
                        let revoked = if user {
                            revoke_where(&mut tx, "user_id = $3", req.now, reason, Some(session.user_id.0), None, req.route).await?
                        } else {
                            revoke_where(&mut tx, "id = $4", req.now, reason, None, Some(session.id.0), req.route).await?
                        };
                        tx.commit().await.map_err(map_err)?;
                        Ok(RotateOutcome::Refused { refusal: RefreshRefusal::RiskRevoked(condition), session: Some(session.id), revoked })
                    }
                }
            }

            async fn refresh_by_hash(&self, hash: TokenHash, route: Option<Route>) -> Result<Option<(RefreshRecord, Session)>, RepoError> {
                // on its route, or (no route) wherever it is
                let query = match route {
                    Some(_) => format!(
                        "select {TOKEN_COLS}, {SESSION_COLS} from refresh_tokens t join sessions s on s.id = t.session_id and s.route = $2 \
                         where t.hash = $1 and t.route = $2"
                    ),
                    None => format!("select {TOKEN_COLS}, {SESSION_COLS} from refresh_tokens t join sessions s on s.id = t.session_id where t.hash = $1"),
                };
                let mut q = sqlx::query(sqlx::AssertSqlSafe(query)).bind(hash.0.to_vec());
                if let Some(route) = route {
                    q = q.bind(route.as_i32());
                }
                let row = q
                .fetch_optional(self.pool())
                .await
                .map_err(map_err)?;
                match row {
                    Some(r) => Ok(Some((rows::token(&r)?, rows::session(&r)?))),
                    None => Ok(None),
                }
            }

            async fn unrouted_tokens_live(&self, now: OffsetDateTime) -> Result<bool, RepoError> {
                let live: Option<i32> =
                    sqlx::query_scalar("select 1 from refresh_tokens where not routed and expires_at > $1 and rotated_at is null limit 1")
                        .bind(now)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(map_err)?;
                Ok(live.is_some())
            }

            async fn session(&self, id: SessionId, route: Option<Route>) -> Result<Option<Session>, RepoError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select {SESSION_COLS} from sessions s where s.id = $1 and ($2 is null or s.route = $2)"
                )))
                    .bind(id.0)
                    .bind(route.map(Route::as_i32))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?;
                row.as_ref().map(rows::session).transpose()
            }

            async fn sessions_of_user(&self, user: UserId, now: OffsetDateTime, limit: u32) -> Result<Vec<Session>, RepoError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select {SESSION_COLS} from sessions s where s.user_id = $1 and s.route = $4 and s.revoked_at is null and s.expires_at > $2 \
                     and exists (select 1 from refresh_tokens t where t.session_id = s.id and t.route = $4 and t.rotated_at is null and t.expires_at > $2) \
                     order by s.created_at desc, s.id desc limit $3"
                )))
                .bind(user.0)
                .bind(now)
                .bind(i64::from(limit))
                .bind(user.route().as_i32())
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                rows.iter().map(rows::session).collect()
            }

            async fn revoke_session(&self, id: SessionId, route: Route, reason: &str, now: OffsetDateTime) -> Result<bool, RepoError> {
                let mut tx = self.write_tx().await?;
                let ids = revoke_where(&mut tx, "id = $4", now, reason, None, Some(id.0), route).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(!ids.is_empty())
            }

            async fn revoke_user_sessions(
                &self,
                user: UserId,
                except: Option<SessionId>,
                reason: &str,
                now: OffsetDateTime,
            ) -> Result<Vec<SessionId>, RepoError> {
                let mut tx = self.write_tx().await?;
                let ids =
                    revoke_where(&mut tx, "user_id = $3 and ($4 is null or id <> $4)", now, reason, Some(user.0), except.map(|s| s.0), user.route())
                        .await?;
                tx.commit().await.map_err(map_err)?;
                Ok(ids)
            }

            async fn revoked_since(&self, since: OffsetDateTime) -> Result<Vec<(SessionId, OffsetDateTime)>, RepoError> {
                // SQLite stores times as RFC 3339 text in UTC, which orders like the instants.
                let rows = sqlx::query("select id, revoked_at from sessions where revoked_at >= $1")
                    .bind(since)
                    .fetch_all(self.pool())
                    .await
                    .map_err(map_err)?;
                rows.iter().map(rows::revoked).collect()
            }

            async fn longest_live_access_ttl(&self, now: OffsetDateTime) -> Result<Option<Duration>, RepoError> {
                // no access token outlives its session by more than the longest lifetime of any
                let (longest,): (Option<i64>,) = sqlx::query_as("select cast(max(access_ttl_seconds) as bigint) from sessions")
                    .fetch_one(self.pool())
                    .await
                    .map_err(map_err)?;
                let Some(longest) = longest else { return Ok(None) };
                let (live,): (Option<i64>,) =
                    sqlx::query_as("select cast(max(access_ttl_seconds) as bigint) from sessions where expires_at > $1")
                        .bind(now - Duration::seconds(longest))
                        .fetch_one(self.pool())
                        .await
                        .map_err(map_err)?;
                Ok(live.map(Duration::seconds))
            }

            async fn revoke_client_sessions(
                &self,
                user: UserId,
                client_id: &str,
                reason: &str,
                now: OffsetDateTime,
            ) -> Result<Vec<SessionId>, RepoError> {
                let mut tx = self.write_tx().await?;
                // the client is matched first, by a query of its own, so the shared revocation clause keeps its parameters
                let ids: Vec<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "select id from sessions where user_id = $1 and route = $3 and client_id = $2 and revoked_at is null{FOR_UPDATE}"
                )))
                .bind(user.0)
                .bind(client_id)
                .bind(user.route().as_i32())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let mut out = vec![];
                for id in ids {
                    out.extend(revoke_where(&mut tx, "id = $4", now, reason, None, Some(id), user.route()).await?);
                }
                tx.commit().await.map_err(map_err)?;
                Ok(out)
            }

            async fn expire_client_refresh_tokens(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<u64, RepoError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(
                    "update refresh_tokens set expires_at = $3 where route = $4 and rotated_at is null and expires_at > $3 \
                     and session_id in (select id from sessions where user_id = $1 and route = $4 and client_id = $2)",
                )
                .bind(user.0)
                .bind(client_id)
                .bind(now)
                .bind(user.route().as_i32())
                .execute(self.pool())
                .await
                .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn record_session_uses(&self, uses: &[(SessionId, Route, OffsetDateTime)]) -> Result<(), RepoError> {
                if uses.is_empty() {
                    return Ok(());
                }
                let mut tx = self.write_tx().await?;
                for (id, route, at) in uses {
                    sqlx::query(
                        "update sessions set last_refresh_at = $2 where id = $1 and route = $3 and (last_refresh_at is null or last_refresh_at < $2)",
                    )
                        .bind(id.0)
                        .bind(*at)
                        .bind(route.as_i32())
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn drop_sealed_secrets(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(crate::DROP_SEALED_SQL)
                    .bind(before)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(done.rows_affected())
            }

            async fn family(&self, session: SessionId) -> Result<Vec<RefreshRecord>, RepoError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "select {TOKEN_COLS} from refresh_tokens t where t.session_id = $1 order by t.issued_at, t.rotated_at nulls last"
                )))
                .bind(session.0)
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                rows.iter().map(rows::token).collect()
            }
        }
    };
}
pub(crate) use session_repository;
