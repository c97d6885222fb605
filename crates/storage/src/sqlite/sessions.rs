//! Sessions and their refresh tokens: opening one, the one-transaction rotation, revocation.

use super::*;

pub(super) async fn insert_token(tx: &mut WriteTx, t: &RefreshRecord) -> Result<(), RepoError> {
    sqlx::query(
        "insert into refresh_tokens (hash, session_id, parent_hash, access_jti, issued_at, expires_at, sealed_secret) values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(t.hash.0.to_vec())
    .bind(t.session_id.0)
    .bind(t.parent.map(|p| p.0.to_vec()))
    .bind(t.access_jti)
    .bind(t.issued_at)
    .bind(t.expires_at)
    .bind(t.sealed_secret.as_deref())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn audit_event(
    tx: &mut WriteTx,
    at: OffsetDateTime,
    kind: &str,
    user: UserId,
    session: SessionId,
) -> Result<(), RepoError> {
    sqlx::query("insert into audit_events (at, kind, user_id, session_id) values (?1, ?2, ?3, ?4)")
        .bind(at)
        .bind(kind)
        .bind(user.0)
        .bind(session.0)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl SessionRepository for SqliteStore {
    async fn open_session(&self, s: &Session, first: &RefreshRecord) -> Result<(), RepoError> {
        self.insert_session(s, first, None).await
    }

    async fn open_session_after_login(&self, s: &Session, first: &RefreshRecord, account: &str, address: &str) -> Result<(), RepoError> {
        self.insert_session(s, first, Some((account, address))).await
    }

    async fn rotate(&self, req: RotateRequest<'_>) -> Result<RotateOutcome, RepoError> {
        // The write lock is taken before the first read: concurrent rotations of one token run
        // one after another, and each sees what the previous one committed.
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {TOKEN_COLS}, {SESSION_COLS}, (u.status = 'active') as user_active \
             from refresh_tokens t join sessions s on s.id = t.session_id join users u on u.id = s.user_id where t.hash = ?1"
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
        let child = if token.rotated_at.is_some() {
            let c = sqlx::query(sqlx::AssertSqlSafe(format!("select {TOKEN_COLS} from refresh_tokens t where t.parent_hash = ?1")))
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
                sqlx::query("update refresh_tokens set rotated_at = ?1, sealed_secret = null where hash = ?2")
                    .bind(req.now)
                    .bind(token.hash.0.to_vec())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                // The session keeps the address and User-Agent it was last refreshed from.
                sqlx::query(
                    "update sessions set last_refresh_at = ?1, ip = coalesce(?3, ip), user_agent = coalesce(?4, user_agent) where id = ?2",
                )
                .bind(req.now)
                .bind(session.id.0)
                .bind(req.request.ip.as_deref())
                .bind(req.request.user_agent.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                insert_token(&mut tx, &new).await?;
                audit_event(&mut tx, req.now, "refresh", session.user_id, session.id).await?;
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
                let revoked = revoke_where(&mut tx, "id = ?4", req.now, "reuse_detected", None, Some(session.id.0)).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(RotateOutcome::Refused { refusal: RefreshRefusal::Reused, session: Some(session.id), revoked })
            }
            RefreshDecision::RiskRevoke { condition, user } => {
                let reason = condition.as_str();
                let revoked = if user {
                    revoke_where(&mut tx, "user_id = ?3", req.now, reason, Some(session.user_id.0), None).await?
                } else {
                    revoke_where(&mut tx, "id = ?4", req.now, reason, None, Some(session.id.0)).await?
                };
                tx.commit().await.map_err(map_err)?;
                Ok(RotateOutcome::Refused { refusal: RefreshRefusal::RiskRevoked(condition), session: Some(session.id), revoked })
            }
        }
    }

    async fn refresh_by_hash(&self, hash: TokenHash) -> Result<Option<(RefreshRecord, Session)>, RepoError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {TOKEN_COLS}, {SESSION_COLS} from refresh_tokens t join sessions s on s.id = t.session_id where t.hash = ?1"
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
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {SESSION_COLS} from sessions s where s.id = ?1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn sessions_of_user(&self, user: UserId, now: OffsetDateTime, limit: u32) -> Result<Vec<Session>, RepoError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {SESSION_COLS} from sessions s where s.user_id = ?1 and s.revoked_at is null and s.expires_at > ?2 \
             and exists (select 1 from refresh_tokens t where t.session_id = s.id and t.rotated_at is null and t.expires_at > ?2) \
             order by s.created_at desc, s.id desc limit ?3"
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
        let mut tx = self.write_tx().await?;
        let ids = revoke_where(&mut tx, "id = ?4", now, reason, None, Some(id.0)).await?;
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
            revoke_where(&mut tx, "user_id = ?3 and (?4 is null or id <> ?4)", now, reason, Some(user.0), except.map(|s| s.0)).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(ids)
    }

    async fn revoked_since(&self, since: OffsetDateTime) -> Result<Vec<(SessionId, OffsetDateTime)>, RepoError> {
        // Timestamps are stored as RFC 3339 text in UTC, which orders like the instants.
        let rows = sqlx::query("select id, revoked_at from sessions where revoked_at >= ?1")
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(rows::revoked).collect()
    }

    async fn longest_live_access_ttl(&self, now: OffsetDateTime) -> Result<Option<Duration>, RepoError> {
        // no access token outlives its session by more than the longest lifetime of any
        let (longest,): (Option<i64>,) =
            sqlx::query_as("select max(access_ttl_seconds) from sessions").fetch_one(&self.pool).await.map_err(map_err)?;
        let Some(longest) = longest else { return Ok(None) };
        let (live,): (Option<i64>,) = sqlx::query_as("select max(access_ttl_seconds) from sessions where expires_at > ?1")
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
        let mut tx = self.write_tx().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar("select id from sessions where user_id = ?1 and client_id = ?2 and revoked_at is null")
            .bind(user.0)
            .bind(client_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut out = vec![];
        for id in ids {
            out.extend(revoke_where(&mut tx, "id = ?4", now, reason, None, Some(id)).await?);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    async fn expire_client_refresh_tokens(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<u64, RepoError> {
        let _turn = self.write_turn().await;
        let done = sqlx::query(
            "update refresh_tokens set expires_at = ?3 where rotated_at is null and expires_at > ?3 \
             and session_id in (select id from sessions where user_id = ?1 and client_id = ?2)",
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
        let _turn = self.write_turn().await;
        let done = sqlx::query("update refresh_tokens set sealed_secret = null where sealed_secret is not null and issued_at < ?1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn family(&self, session: SessionId) -> Result<Vec<RefreshRecord>, RepoError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "select {TOKEN_COLS} from refresh_tokens t where t.session_id = ?1 order by t.issued_at, t.rotated_at is null, t.rotated_at"
        )))
        .bind(session.0)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(rows::token).collect()
    }
}
