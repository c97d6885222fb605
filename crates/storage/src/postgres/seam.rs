//! What Postgres does its own way, behind the seam the shared SQL calls (see [`crate::shared`]):
//! row locks, advisory locks and `NOTIFY`, the identity sequence, and the writes it combines
//! into one statement (a session with its first token, a rotation, a revocation).

use super::*;

/// Locks the rows a read returns until the transaction ends.
pub(super) const FOR_UPDATE: &str = " for update";
/// Locks the presented token and its session: a concurrent rotation of the same token waits.
pub(super) const LOCK_ROTATION: &str = " for update of t, s";
/// An explicit id in an `insert` into the identity column `users.id`.
pub(super) const OVERRIDING: &str = "overriding system value ";
/// The audit detail is bound as text and stored as `jsonb`.
pub(super) const JSON_CAST: &str = "::jsonb";
/// When an attempt row was last written (`login_attempts_age_idx` is on this expression).
pub(super) const NEWEST_ATTEMPT: &str = "greatest(last_failure_at, succeeded_at)";

/// A write needs no turn of its own: Postgres's row locks order the writers.
pub(super) struct NoTurn;

impl PgStore {
    pub(super) async fn write_tx(&self) -> Result<Transaction<'static, Postgres>, RepoError> {
        self.pool().begin().await.map_err(map_err)
    }

    pub(super) async fn write_turn(&self) -> NoTurn {
        NoTurn
    }

    /// Postgres databases were always migrated under today's numbering.
    pub(super) async fn align_migrations(&self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// The highest audit event id written, once no insert into `audit_events` is in flight (a
    /// SHARE lock waits for them and holds new ones back for one indexed read): every id at or
    /// below it is committed or gone for good. An id is drawn when its insert starts, which may
    /// commit after a later id's. `None` when the table is empty, or when inserts stay in flight
    /// longer than `lock_timeout` (then the sealer skips its round).
    pub(super) async fn seal_upto(&self) -> Result<Option<i64>, RepoError> {
        let mut tx = self.pool().begin().await.map_err(map_err)?;
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
            "a as (insert into login_attempts (account, ip, failures, succeeded_at) values ($19, $20, 0, $8) \
             on conflict (account, ip) do update set failures = 0, last_failure_at = null, locked_until = null, succeeded_at = $8), "
        } else {
            ""
        };
        let query = format!(
            "with {recorded}s as (insert into sessions (id, user_id, client_id, face, profile, access_ttl_seconds, refresh_ttl_seconds, created_at, expires_at, ip, user_agent, subject, dpop_jkt, route) \
                        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $16, $17, $18) returning id), \
                  t as (insert into refresh_tokens (hash, session_id, parent_hash, access_jti, issued_at, expires_at, sealed_secret, route, routed) \
                        select $12, id, null, $13, $8, $14, $15, $18, true from s) \
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
            .bind(s.subject.as_deref())
            .bind(s.dpop_jkt.as_deref())
            .bind(s.user_id.route().as_i32());
        if let Some((account, address)) = login {
            q = q.bind(account).bind(address);
        }
        q.execute(self.pool()).await.map_err(map_err)?;
        Ok(())
    }
}

/// Serialises on `what` until the transaction ends, across instances.
pub(super) async fn lock(tx: &mut PgConnection, what: Lock<'_>) -> Result<(), RepoError> {
    let q = match what {
        Lock::AuditSealer => sqlx::query("select pg_advisory_xact_lock(7231001)"),
        Lock::SigningKeys => sqlx::query("select pg_advisory_xact_lock(hashtext('tessera_signing_keys'))"),
        Lock::Identity { provider, subject } => {
            sqlx::query("select pg_advisory_xact_lock(hashtext($1 || ':' || $2))").bind(provider).bind(subject)
        }
    };
    q.execute(&mut *tx).await.map_err(map_err)?;
    Ok(())
}

/// Tells every instance, once the transaction commits.
pub(super) async fn notify(tx: &mut PgConnection, channel: &str, payload: &str) -> Result<(), RepoError> {
    sqlx::query("select pg_notify($1, $2)").bind(channel).bind(payload).execute(&mut *tx).await.map_err(map_err)?;
    Ok(())
}

/// The presented token is rotated, the session keeps the address and User-Agent it was last
/// refreshed from (the reference of the next refresh's risk rules, and what a session list
/// shows), the child is stored and the refresh audited: one statement.
pub(super) async fn record_rotation(
    tx: &mut PgConnection,
    now: OffsetDateTime,
    request: &RequestMeta,
    session: &Session,
    token: &RefreshRecord,
    new: &RefreshRecord,
) -> Result<(), RepoError> {
    sqlx::query(
        "with p as (update refresh_tokens set rotated_at = $1, sealed_secret = null, sealed_pair = null where hash = $2 and route = $12), \
              s as (update sessions set last_refresh_at = $1, ip = coalesce($9, ip), user_agent = coalesce($10, user_agent) where id = $3 and route = $12), \
              a as (insert into audit_events (at, kind, user_id, session_id) values ($1, 'refresh', $8, $3)) \
         insert into refresh_tokens (hash, session_id, parent_hash, access_jti, issued_at, expires_at, sealed_secret, sealed_pair, route, routed) \
         values ($4, $3, $2, $5, $1, $6, $7, $11, $12, true)",
    )
    .bind(now)
    .bind(token.hash.0.to_vec())
    .bind(session.id.0)
    .bind(new.hash.0.to_vec())
    .bind(new.access_jti)
    .bind(new.expires_at)
    .bind(new.sealed_secret.as_deref())
    .bind(session.user_id.0)
    .bind(request.ip.as_deref())
    .bind(request.user_agent.as_deref())
    .bind(new.sealed_pair.as_deref())
    .bind(session.user_id.route().as_i32())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Moves the users' identity sequence past `up_to` and every stored id, never back.
pub(super) async fn reserve_ids(tx: &mut PgConnection, up_to: i64) -> Result<(), RepoError> {
    sqlx::query(
        "select setval('users_id_seq', greatest($1::bigint, coalesce((select max(id) from users), 1), \
         (select case when is_called then last_value else last_value - 1 end from users_id_seq), 1))",
    )
    .bind(up_to)
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Revokes the sessions a `where` clause selects, records the audit events and notifies every
/// instance, in one statement. `$1` is the time, `$2` the reason, `$5` the sessions' route; the
/// clause may use `$3` and `$4`.
fn revoke_sql(where_clause: &str) -> String {
    format!(
        "with r as (update sessions set revoked_at = $1, revoked_reason = $2 where revoked_at is null and route = $5 and ({where_clause}) returning id, user_id), \
         a as (insert into audit_events (at, kind, user_id, session_id, detail) \
               select $1, 'session_revoked', user_id, id, jsonb_build_object('reason', $2::text) from r) \
         select id, pg_notify('{REVOCATION_CHANNEL}', id::text) from r"
    )
}

pub(super) async fn revoke_where(
    tx: &mut PgConnection,
    clause: &str,
    now: OffsetDateTime,
    reason: &str,
    a3: Option<i64>,
    a4: Option<Uuid>,
    route: Route,
) -> Result<Vec<SessionId>, RepoError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(revoke_sql(clause)))
        .bind(now)
        .bind(reason)
        .bind(a3)
        .bind(a4)
        .bind(route.as_i32())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
    rows.iter().map(|r| r.uuid("id").map(SessionId)).collect()
}
