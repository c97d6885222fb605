//! What SQLite does its own way, behind the seam the shared SQL calls (see [`crate::shared`]):
//! one writer at a time instead of row and advisory locks, nothing to notify (one process per
//! database file), `sqlite_sequence` for the identity sequence, and the writes Postgres combines
//! into one statement, run one by one in the write transaction.

use super::*;

/// The write lock, taken before the first read, already serialises.
pub(super) const FOR_UPDATE: &str = "";
/// The write lock, taken before the first read, serialises rotations of one token.
pub(super) const LOCK_ROTATION: &str = "";
/// An explicit id needs no permission.
pub(super) const OVERRIDING: &str = "";
/// The audit detail is stored as JSON text.
pub(super) const JSON_CAST: &str = "";
/// When an attempt row was last written (`login_attempts_age_idx` is on this expression);
/// SQLite's `max()` of a NULL is NULL, so each side falls back to the other.
pub(super) const NEWEST_ATTEMPT: &str = "max(coalesce(last_failure_at, succeeded_at), coalesce(succeeded_at, last_failure_at))";

/// The version at which SQLite's migrations were numbered one behind Postgres's until the two
/// sets were aligned: Postgres's 0007 (a column SQLite's users table always had) had no SQLite
/// counterpart, so SQLite's 0007–0016 are today's 0008–0017.
const RENUMBERED_FROM: i64 = 7;
/// What a database migrated under the old numbering calls its migration 7.
const OLD_SEVENTH: &str = "identities and session subject";

impl SqliteStore {
    /// Renumbers the migrations a database applied under the old numbering (see
    /// [`RENUMBERED_FROM`]), in one transaction, and records today's 0007, which has nothing to
    /// do on SQLite, as applied. The files kept their contents, so their checksums still match.
    pub(super) async fn align_migrations(&self) -> Result<(), sqlx::Error> {
        let seventh: Option<String> = match sqlx::query_scalar("select description from _sqlx_migrations where version = $1")
            .bind(RENUMBERED_FROM)
            .fetch_optional(&self.pool)
            .await
        {
            Ok(d) => d,
            // no migration table yet: nothing applied
            Err(sqlx::Error::Database(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if seventh.as_deref() != Some(OLD_SEVENTH) {
            return Ok(());
        }
        let Some(added) = MIGRATOR.iter().find(|m| m.version == RENUMBERED_FROM) else { return Ok(()) };
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // through negative versions: the primary key is checked row by row
        sqlx::query("update _sqlx_migrations set version = -(version + 1) where version >= $1")
            .bind(RENUMBERED_FROM)
            .execute(&mut *tx)
            .await?;
        sqlx::query("update _sqlx_migrations set version = -version where version < 0").execute(&mut *tx).await?;
        sqlx::query("insert into _sqlx_migrations (version, description, success, checksum, execution_time) values ($1, $2, true, $3, 0)")
            .bind(added.version)
            .bind(added.description.as_ref())
            .bind(added.checksum.as_ref())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!("the applied migrations were renumbered to match Postgres's");
        Ok(())
    }

    /// One writer at a time: ids are drawn in commit order, so every event written before the
    /// sealer's transaction has a lower id than any written after, and all can be sealed.
    pub(super) async fn seal_upto(&self) -> Result<Option<i64>, RepoError> {
        Ok(Some(i64::MAX))
    }

    /// A session, its first token and its audit event in one write transaction; after a password
    /// login, with the login's success recorded (`login`: account and address) in it too.
    pub(super) async fn insert_session(&self, s: &Session, first: &RefreshRecord, login: Option<(&str, &str)>) -> Result<(), RepoError> {
        let mut tx = self.write_tx().await?;
        if let Some((account, address)) = login {
            sqlx::query(crate::shared::LOGIN_SUCCEEDED)
                .bind(account)
                .bind(address)
                .bind(s.created_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        sqlx::query(
            "insert into sessions (id, user_id, client_id, face, profile, access_ttl_seconds, refresh_ttl_seconds, created_at, expires_at, ip, user_agent, subject, dpop_jkt, route) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(s.id.0)
        .bind(s.user_id.0)
        .bind(s.client_id.as_deref())
        .bind(&s.face)
        .bind(s.profile.name())
        .bind(s.profile.access_ttl().whole_seconds())
        .bind(s.profile.refresh_ttl().whole_seconds())
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.ip.as_deref())
        .bind(s.user_agent.as_deref())
        .bind(s.subject.as_deref())
        .bind(s.dpop_jkt.as_deref())
        .bind(s.user_id.route().as_i32())
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            // its user is never deleted (only erased): the client was, meanwhile
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => RepoError::Conflict("sessions_client_id_fkey"),
            _ => map_err(e),
        })?;
        insert_token(&mut tx, first, s.user_id.route()).await?;
        audit_event(&mut tx, s.created_at, "login", s.user_id, s.id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }
}

/// SQLite's write lock, held by every write transaction, already serialises.
pub(super) async fn lock(_tx: &mut SqliteConnection, _what: Lock<'_>) -> Result<(), RepoError> {
    Ok(())
}

/// One process per database file: its own lists hear its changes directly.
pub(super) async fn notify(_tx: &mut SqliteConnection, _channel: &str, _payload: &str) -> Result<(), RepoError> {
    Ok(())
}

/// Moves the identity sequence past `up_to`: `autoincrement` gives out ids above
/// `sqlite_sequence`'s value for the table.
pub(super) async fn reserve_ids(tx: &mut SqliteConnection, up_to: i64) -> Result<(), RepoError> {
    sqlx::query(
        "insert into sqlite_sequence (name, seq) select 'users', 0 where not exists (select 1 from sqlite_sequence where name = 'users')",
    )
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    sqlx::query("update sqlite_sequence set seq = max(seq, $1) where name = 'users'")
        .bind(up_to)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The presented token is rotated, the session keeps the address and User-Agent it was last
/// refreshed from, the child is stored and the refresh audited, one statement after another.
pub(super) async fn record_rotation(
    tx: &mut SqliteConnection,
    now: OffsetDateTime,
    request: &RequestMeta,
    session: &Session,
    token: &RefreshRecord,
    new: &RefreshRecord,
) -> Result<(), RepoError> {
    let route = session.user_id.route();
    sqlx::query("update refresh_tokens set rotated_at = $1, sealed_secret = null, sealed_pair = null where hash = $2 and route = $3")
        .bind(now)
        .bind(token.hash.0.to_vec())
        .bind(route.as_i32())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    sqlx::query("update sessions set last_refresh_at = $1, ip = coalesce($3, ip), user_agent = coalesce($4, user_agent) where id = $2 and route = $5")
        .bind(now)
        .bind(session.id.0)
        .bind(request.ip.as_deref())
        .bind(request.user_agent.as_deref())
        .bind(route.as_i32())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    insert_token(tx, new, route).await?;
    audit_event(tx, now, "refresh", session.user_id, session.id).await
}

pub(super) async fn insert_token(tx: &mut SqliteConnection, t: &RefreshRecord, route: Route) -> Result<(), RepoError> {
    sqlx::query(
        "insert into refresh_tokens (hash, session_id, parent_hash, access_jti, issued_at, expires_at, sealed_secret, sealed_pair, route, routed) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, true)",
    )
    .bind(t.hash.0.to_vec())
    .bind(t.session_id.0)
    .bind(t.parent.map(|p| p.0.to_vec()))
    .bind(t.access_jti)
    .bind(t.issued_at)
    .bind(t.expires_at)
    .bind(t.sealed_secret.as_deref())
    .bind(t.sealed_pair.as_deref())
    .bind(route.as_i32())
    .execute(&mut *tx)
    .await
    .map_err(map_err)?;
    Ok(())
}

pub(super) async fn audit_event(
    tx: &mut SqliteConnection,
    at: OffsetDateTime,
    kind: &str,
    user: UserId,
    session: SessionId,
) -> Result<(), RepoError> {
    sqlx::query("insert into audit_events (at, kind, user_id, session_id) values ($1, $2, $3, $4)")
        .bind(at)
        .bind(kind)
        .bind(user.0)
        .bind(session.0)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Revokes the sessions a `where` clause selects (`$1` time, `$2` reason, `$3` user, `$4`
/// session), on route `$5`, and records an audit event for each, inside `tx`.
pub(super) async fn revoke_where(
    tx: &mut SqliteConnection,
    clause: &str,
    now: OffsetDateTime,
    reason: &str,
    user: Option<i64>,
    session: Option<Uuid>,
    route: Route,
) -> Result<Vec<SessionId>, RepoError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "update sessions set revoked_at = $1, revoked_reason = $2 where revoked_at is null and route = $5 and ({clause}) returning id, user_id"
    )))
    .bind(now)
    .bind(reason)
    .bind(user)
    .bind(session)
    .bind(route.as_i32())
    .fetch_all(&mut *tx)
    .await
    .map_err(map_err)?;
    let mut ids = Vec::with_capacity(rows.len());
    for r in &rows {
        let id = r.uuid("id")?;
        sqlx::query("insert into audit_events (at, kind, user_id, session_id, detail) values ($1, 'session_revoked', $2, $3, json_object('reason', $4))")
            .bind(now)
            .bind(r.int("user_id")?)
            .bind(id)
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        ids.push(SessionId(id));
    }
    Ok(ids)
}
