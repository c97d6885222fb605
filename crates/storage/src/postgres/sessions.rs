//! Sessions and their refresh tokens: opening one, the one-transaction rotation, revocation.

use super::*;

impl PgStore {
    /// The highest audit event id written, once no insert into `audit_events` is in flight (a
    /// SHARE lock waits for them and holds new ones back for one indexed read): every id at or
    /// below it is committed or gone for good. `None` when the table is empty, or when inserts
    /// stay in flight longer than `lock_timeout` (then the sealer skips its round).
    pub(super) async fn audit_watermark(&self) -> Result<Option<i64>, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("set local lock_timeout = '100ms'").execute(&mut *tx).await.map_err(map_err)?;
        if let Err(e) = sqlx::query("lock table audit_events in share mode").execute(&mut *tx).await {
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("55P03") {
                tracing::debug!("audit sealing skipped: inserts stayed in flight");
                return Ok(None);
            }
            return Err(map_err(e));
        }
        let (upto,): (Option<i64>,) = sqlx::query_as("select max(id) from audit_events").fetch_one(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(upto)
    }

    /// One statement: session, first token and audit event land together or not at all; after a
    /// password login (`login`: account and address), with the login's success recorded in it.
    pub(super) async fn insert_session(&self, s: &Session, first: &RefreshRecord, login: Option<(&str, &str)>) -> Result<(), RepoError> {
        let recorded = if login.is_some() {
            "a as (insert into login_attempts (account, ip, failures, succeeded_at) values ($17, $18, 0, $8) \
             on conflict (account, ip) do update set failures = 0, last_failure_at = null, locked_until = null, succeeded_at = $8), "
        } else {
            ""
        };
        let query = format!(
            "with {recorded}s as (insert into sessions (id, user_id, client_id, face, profile, access_ttl_seconds, refresh_ttl_seconds, created_at, expires_at, ip, user_agent, subject) \
                        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $16) returning id), \
                  t as (insert into refresh_tokens (hash, session_id, parent_hash, access_jti, issued_at, expires_at, sealed_secret) \
                        select $12, id, null, $13, $8, $14, $15 from s) \
             insert into audit_events (at, kind, user_id, session_id, detail) select $8, 'login', $2, id, jsonb_build_object('face', $4::text) from s"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(s.id.0)
            .bind(s.user_id.0)
            .bind(s.client_id.as_deref())
            .bind(&s.face)
            .bind(s.profile.name())
            .bind(i32::try_from(s.profile.access_ttl().whole_seconds()).unwrap_or(i32::MAX))
            .bind(i32::try_from(s.profile.refresh_ttl().whole_seconds()).unwrap_or(i32::MAX))
            .bind(s.created_at)
            .bind(s.expires_at)
            .bind(s.ip.as_deref())
            .bind(s.user_agent.as_deref())
            .bind(first.hash.0.to_vec())
            .bind(first.access_jti)
            .bind(first.expires_at)
            .bind(first.sealed_secret.as_deref())
            .bind(s.subject.as_deref());
        if let Some((account, address)) = login {
            q = q.bind(account).bind(address);
        }
        q.execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl SessionRepository for PgStore {
    async fn open_session(&self, s: &Session, first: &RefreshRecord) -> Result<(), RepoError> {
        self.insert_session(s, first, None).await
    }

    async fn open_session_after_login(&self, s: &Session, first: &RefreshRecord, account: &str, address: &str) -> Result<(), RepoError> {
        self.insert_session(s, first, Some((account, address))).await
    }

    async fn rotate(&self, req: RotateRequest<'_>) -> Result<RotateOutcome, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // One read locks the presented token and its session: a concurrent rotation of the same
        // token waits here and then sees `rotated_at` set.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {TOKEN_COLS}, {SESSION_COLS}, (u.status = 'active') as user_active \
             from refresh_tokens t join sessions s on s.id = t.session_id join users u on u.id = s.user_id \
             where t.hash = $1 for update of t, s"
        )))
        .bind(req.presented.0.to_vec())
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
        // `select ... for update` re-checks only the locked rows, so a child joined into it would
        // come from the snapshot taken before the concurrent rotation committed.
        let child = if token.rotated_at.is_some() {
            let c = sqlx::query(sqlx::AssertSqlSafe(format!("select {TOKEN_COLS} from refresh_tokens t where t.parent_hash = $1")))
                .bind(token.hash.0.to_vec())
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
            request: req.request,
            rules: req.rules,
        };

        let Verdict { decision, signals } = decide_with_risk(&facts, req.now, req.grace);
        match decision {
            RefreshDecision::Rotate => {
                let new = child_record(&session, &token, req.child, req.now);
                // The session keeps the address and User-Agent it was last refreshed from: the
                // reference of the next refresh's risk rules, and what a session list shows.
                sqlx::query(
                    "with p as (update refresh_tokens set rotated_at = $1, sealed_secret = null where hash = $2), \
                          s as (update sessions set last_refresh_at = $1, ip = coalesce($9, ip), user_agent = coalesce($10, user_agent) where id = $3), \
                          a as (insert into audit_events (at, kind, user_id, session_id) values ($1, 'refresh', $8, $3)) \
                     insert into refresh_tokens (hash, session_id, parent_hash, access_jti, issued_at, expires_at, sealed_secret) \
                     values ($4, $3, $2, $5, $1, $6, $7)",
                )
                .bind(req.now)
                .bind(token.hash.0.to_vec())
                .bind(session.id.0)
                .bind(new.hash.0.to_vec())
                .bind(new.access_jti)
                .bind(new.expires_at)
                .bind(new.sealed_secret.as_deref())
                .bind(session.user_id.0)
                .bind(req.request.ip.as_deref())
                .bind(req.request.user_agent.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                let mut session = session;
                session.last_refresh_at = Some(req.now);
                session.record_request(req.request);
                Ok(RotateOutcome::Rotated { session, child: new, signals })
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
                let revoked = revoke_where(&mut *tx, "id = $4", req.now, "reuse_detected", None, Some(session.id.0)).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(RotateOutcome::Refused { refusal: RefreshRefusal::Reused, session: Some(session.id), revoked })
            }
            RefreshDecision::RiskRevoke { condition, user } => {
                let reason = condition.as_str();
                let revoked = if user {
                    revoke_where(&mut *tx, "user_id = $3", req.now, reason, Some(session.user_id.0), None).await?
                } else {
                    revoke_where(&mut *tx, "id = $4", req.now, reason, None, Some(session.id.0)).await?
                };
                tx.commit().await.map_err(map_err)?;
                Ok(RotateOutcome::Refused { refusal: RefreshRefusal::RiskRevoked(condition), session: Some(session.id), revoked })
            }
        }
    }

    async fn refresh_by_hash(&self, hash: TokenHash) -> Result<Option<(RefreshRecord, Session)>, RepoError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {TOKEN_COLS}, {SESSION_COLS} from refresh_tokens t join sessions s on s.id = t.session_id where t.hash = $1"
        )))
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        match row {
            Some(r) => Ok(Some((rows::token(&r)?, rows::session(&r)?))),
            None => Ok(None),
        }
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>, RepoError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {SESSION_COLS} from sessions s where s.id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn sessions_of_user(&self, user: UserId, now: OffsetDateTime, limit: u32) -> Result<Vec<Session>, RepoError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {SESSION_COLS} from sessions s where s.user_id = $1 and s.revoked_at is null and s.expires_at > $2 \
             and exists (select 1 from refresh_tokens t where t.session_id = s.id and t.rotated_at is null and t.expires_at > $2) \
             order by s.created_at desc, s.id desc limit $3"
        )))
        .bind(user.0)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(rows::session).collect()
    }

    async fn revoke_session(&self, id: SessionId, reason: &str, now: OffsetDateTime) -> Result<bool, RepoError> {
        Ok(!revoke_where(&self.pool, "id = $4", now, reason, None, Some(id.0)).await?.is_empty())
    }

    async fn revoke_user_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, RepoError> {
        revoke_where(&self.pool, "user_id = $3 and ($4::uuid is null or id <> $4)", now, reason, Some(user.0), except.map(|s| s.0)).await
    }

    async fn revoked_since(&self, since: OffsetDateTime) -> Result<Vec<(SessionId, OffsetDateTime)>, RepoError> {
        let rows = sqlx::query("select id, revoked_at from sessions where revoked_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(rows::revoked).collect()
    }

    async fn longest_live_access_ttl(&self, now: OffsetDateTime) -> Result<Option<Duration>, RepoError> {
        // no access token outlives its session by more than the longest lifetime of any
        let (longest,): (Option<i64>,) =
            sqlx::query_as("select max(access_ttl_seconds)::int8 from sessions").fetch_one(&self.pool).await.map_err(map_err)?;
        let Some(longest) = longest else { return Ok(None) };
        let (live,): (Option<i64>,) = sqlx::query_as("select max(access_ttl_seconds)::int8 from sessions where expires_at > $1")
            .bind(now - Duration::seconds(longest))
            .fetch_one(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // the client is matched first, by a query of its own, so the shared revocation clause keeps its parameters
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("select id from sessions where user_id = $1 and client_id = $2 and revoked_at is null for update")
                .bind(user.0)
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
        let mut out = vec![];
        for id in ids {
            out.extend(revoke_where(&mut *tx, "id = $4", now, reason, None, Some(id)).await?);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    async fn expire_client_refresh_tokens(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<u64, RepoError> {
        let done = sqlx::query(
            "update refresh_tokens t set expires_at = $3 from sessions s \
             where s.id = t.session_id and s.user_id = $1 and s.client_id = $2 and t.rotated_at is null and t.expires_at > $3",
        )
        .bind(user.0)
        .bind(client_id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn drop_sealed_secrets(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let done = sqlx::query("update refresh_tokens set sealed_secret = null where sealed_secret is not null and issued_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn family(&self, session: SessionId) -> Result<Vec<RefreshRecord>, RepoError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {TOKEN_COLS} from refresh_tokens t where t.session_id = $1 order by t.issued_at, t.rotated_at nulls last"
        )))
        .bind(session.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(rows::token).collect()
    }
}
