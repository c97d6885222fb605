//! The Postgres backend.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::rows::{self, CLIENT_COLS, RowExt, SESSION_COLS, TOKEN_COLS, USER_COLS};
use tessera_domain::LockoutPolicy;
use tessera_domain::audit::{AuditChain, AuditRecord, ChainPoint, GENESIS, NewAuditEvent, Sealing};
use tessera_domain::key_schedule::{self, KeyChange, KeySchedule};
use tessera_domain::ports::{
    AuditRepository, ClientRepository, Health, KeyRepository, LoginAttemptRepository, RotateOutcome, RotateRequest, SessionRepository,
    StoredKey, UserRepository,
};
use tessera_domain::rotation::{RefreshDecision, RefreshFacts, RefreshRefusal, Verdict, child_record, decide_with_risk};
use tessera_domain::throttle::{ANY_ADDRESS, AttemptRow};
use tessera_domain::{Email, OAuthClient, PasswordHash, RefreshRecord, RepoError, Session, SessionId, TokenHash, User, UserId, UserStatus};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The channel every instance listens on; the payload is a revoked session's id.
pub const REVOCATION_CHANNEL: &str = "tessera_revocations";
/// Where a change of the signing keys is announced (the payload names the key or algorithm).
pub const KEYS_CHANNEL: &str = "tessera_keys";
/// Where a deleted OAuth client is announced (the payload is its client_id), so that
/// every instance forgets the copy it keeps.
pub const CLIENTS_CHANNEL: &str = "tessera_clients";

pub(crate) static MIGRATIONS: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../migrations/postgres");
static MIGRATOR: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| crate::migrations::migrator(&MIGRATIONS));

/// Maps a sqlx error to the domain's: unique violations by constraint name, the rest opaque
/// (with the cause kept for the log).
/// Moves the users' identity sequence past `up_to` and every stored id, never back.
async fn reserve_ids(tx: &mut sqlx::PgConnection, up_to: i64) -> Result<(), RepoError> {
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

pub fn map_err(e: sqlx::Error) -> RepoError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return match db.constraint() {
            Some("users_email_key") => RepoError::Conflict("users_email_key"),
            Some("clients_pkey") => RepoError::Conflict("clients_pkey"),
            Some("signing_keys_pkey") => RepoError::Conflict("signing_keys_pkey"),
            Some("refresh_tokens_parent_key") => RepoError::Conflict("refresh_tokens_parent_key"),
            Some("refresh_tokens_pkey") => RepoError::Conflict("refresh_tokens_pkey"),
            _ => RepoError::Unavailable(Box::new(e)),
        };
    }
    if let sqlx::Error::Database(db) = &e
        && db.is_foreign_key_violation()
        && db.constraint() == Some("sessions_client_id_fkey")
    {
        return RepoError::Conflict("sessions_client_id_fkey");
    }
    if let sqlx::Error::RowNotFound = e {
        return RepoError::NotFound;
    }
    RepoError::Unavailable(Box::new(e))
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects a pool. Connections are established lazily, so an unreachable server surfaces on
    /// first use (the readiness probe), not as a crash at start.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.application_name("tessera");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .idle_timeout(crate::IDLE_TIMEOUT)
            .acquire_timeout(StdDuration::from_secs(5))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the database named in `url` if it does not exist yet.
    pub async fn ensure_database(url: &str) -> Result<(), sqlx::Error> {
        if !Postgres::database_exists(url).await? {
            Postgres::create_database(url).await?;
        }
        Ok(())
    }

    /// Applies pending migrations (safe to run from several instances at once: sqlx takes an
    /// advisory lock). Returns how many were pending (another instance may have applied some of
    /// them meanwhile).
    pub async fn migrate(&self) -> Result<usize, sqlx::migrate::MigrateError> {
        let pending = self.pending_migrations().await.map_err(sqlx::migrate::MigrateError::Execute)?.len();
        MIGRATOR.run(&self.pool).await?;
        Ok(pending)
    }

    /// The migrations not applied yet (`version description`), for `tessera doctor`.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, sqlx::Error> {
        let applied: Vec<i64> = match sqlx::query_scalar("select version from _sqlx_migrations where success").fetch_all(&self.pool).await {
            Ok(v) => v,
            // no migration table yet: nothing applied
            Err(sqlx::Error::Database(_)) => vec![],
            Err(e) => return Err(e),
        };
        Ok(MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// A listener subscribed to [`REVOCATION_CHANNEL`], [`KEYS_CHANNEL`] and [`CLIENTS_CHANNEL`].
    pub async fn revocation_listener(&self) -> Result<PgListener, sqlx::Error> {
        let mut l = PgListener::connect_with(&self.pool).await?;
        l.listen_all([REVOCATION_CHANNEL, KEYS_CHANNEL, CLIENTS_CHANNEL]).await?;
        Ok(l)
    }
}

/// Revokes the sessions a `where` clause selects, records the audit events and notifies every
/// instance, in one statement. `$1` is the time, `$2` the reason; the clause may use `$3` and `$4`.
fn revoke_sql(where_clause: &str) -> String {
    format!(
        "with r as (update sessions set revoked_at = $1, revoked_reason = $2 where revoked_at is null and ({where_clause}) returning id, user_id), \
         a as (insert into audit_events (at, kind, user_id, session_id, detail) \
               select $1, 'session_revoked', user_id, id, jsonb_build_object('reason', $2::text) from r) \
         select id, pg_notify('{REVOCATION_CHANNEL}', id::text) from r"
    )
}

async fn revoke_where<'c, E>(
    exec: E,
    clause: &str,
    now: OffsetDateTime,
    reason: &str,
    a3: Option<i64>,
    a4: Option<Uuid>,
) -> Result<Vec<SessionId>, RepoError>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let rows = sqlx::query(sqlx::AssertSqlSafe(revoke_sql(clause)))
        .bind(now)
        .bind(reason)
        .bind(a3)
        .bind(a4)
        .fetch_all(exec)
        .await
        .map_err(map_err)?;
    rows.iter().map(|r| r.uuid("id").map(SessionId)).collect()
}

#[async_trait]
impl LoginAttemptRepository for PgStore {
    async fn login_lock(&self, account: &str, address: &str, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, RepoError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // both rows, in one order, locked until the transaction ends
        sqlx::query("insert into login_attempts (account, ip) values ($1, $2), ($1, $3) on conflict do nothing")
            .bind(account)
            .bind(address)
            .bind(ANY_ADDRESS)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let (own, wide) = attempt_rows(&mut tx, account, address, " for update").await?;
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
        sqlx::query(
            "insert into login_attempts (account, ip, failures, succeeded_at) values ($1, $2, 0, $3) \
             on conflict (account, ip) do update set failures = 0, last_failure_at = null, locked_until = null, succeeded_at = $3",
        )
        .bind(account)
        .bind(address)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn prune_login_attempts(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let done = sqlx::query("delete from login_attempts where greatest(last_failure_at, succeeded_at) < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

/// The address's row and the account-wide row of `account`.
async fn attempt_rows(
    conn: &mut sqlx::PgConnection,
    account: &str,
    address: &str,
    suffix: &str,
) -> Result<(Option<AttemptRow>, Option<AttemptRow>), RepoError> {
    let rows: Vec<rows::AttemptTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select ip, failures::int8, last_failure_at, locked_until, succeeded_at from login_attempts \
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

const AUDIT_COLS: &str = "id, seq, at, kind, user_id, session_id, detail::text, prev_hash, hash";

/// The newest sealed event: where the chain ends.
async fn newest_sealed(conn: &mut sqlx::PgConnection) -> Result<Option<ChainPoint>, RepoError> {
    let head: Option<(i64, Option<Vec<u8>>)> =
        sqlx::query_as("select seq, hash from audit_events where seq is not null order by seq desc limit 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
    Ok(head.map(|(seq, hash)| ChainPoint { seq, hash: hash.unwrap_or_default() }))
}

#[async_trait]
impl AuditRepository for PgStore {
    async fn append_audit(&self, e: &NewAuditEvent) -> Result<(), RepoError> {
        sqlx::query("insert into audit_events (at, kind, user_id, session_id, detail) values ($1, $2, $3, $4, $5::jsonb)")
            .bind(e.at)
            .bind(e.kind)
            .bind(e.user_id)
            .bind(e.session_id)
            .bind(e.detail.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn seal_audit(&self, chain: &AuditChain, limit: u32, after: Option<&ChainPoint>) -> Result<Sealing, RepoError> {
        // Events are sealed in id order, and an unsealed event below the newest sealed one is
        // never sealed (its seal was cleared by hand). An id is drawn when its insert starts,
        // which may commit after a later id's: so first wait for every insert in flight (a
        // moment's SHARE lock) and seal only ids up to the highest then written; later inserts
        // draw higher ids. A long transaction holding inserts back skips this round.
        let Some(upto) = self.audit_watermark().await? else {
            return Ok(Sealing::Sealed { count: 0, head: None });
        };
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // one sealer at a time, across instances
        sqlx::query("select pg_advisory_xact_lock(7231001)").execute(&mut *tx).await.map_err(map_err)?;
        if let Some(p) = after {
            let at: Option<(Option<Vec<u8>>,)> = sqlx::query_as("select hash from audit_events where seq = $1")
                .bind(p.seq)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if at.and_then(|(h,)| h).as_deref() != Some(&p.hash[..]) {
                let found = newest_sealed(&mut tx).await?;
                return Ok(Sealing::Diverged { expected: p.clone(), found });
            }
        }
        let head = newest_sealed(&mut tx).await?;
        let (above,): (Option<i64>,) =
            sqlx::query_as("select max(id) from (select id from audit_events where seq is not null order by id desc limit 1) s")
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
        let (mut seq, mut prev) = head.clone().map_or((0, GENESIS.to_vec()), |h| (h.seq, h.hash));
        let rows: Vec<rows::AuditTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {AUDIT_COLS} from audit_events where seq is null and id > $1 and id <= $2 order by id limit $3"
        )))
        .bind(above.unwrap_or(0))
        .bind(upto)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let count = rows.len() as u64;
        for row in rows {
            let record = rows::audit_record(row);
            seq += 1;
            let hash = chain.link(&prev, seq, &record);
            sqlx::query("update audit_events set seq = $1, prev_hash = $2, hash = $3 where id = $4")
                .bind(seq)
                .bind(&prev)
                .bind(&hash[..])
                .bind(record.id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            prev = hash.to_vec();
        }
        tx.commit().await.map_err(map_err)?;
        let head = if count > 0 { Some(ChainPoint { seq, hash: prev }) } else { head };
        Ok(Sealing::Sealed { count, head })
    }

    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, RepoError> {
        let rows: Vec<rows::AuditTuple> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("select {AUDIT_COLS} from audit_events where seq > $1 order by seq limit $2")))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(rows.into_iter().map(rows::audit_record).collect())
    }

    async fn audit_unsealed(&self) -> Result<u64, RepoError> {
        let (n,): (i64,) =
            sqlx::query_as("select count(*) from audit_events where seq is null").fetch_one(&self.pool).await.map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn audit_unsealed_below_head(&self) -> Result<Option<i64>, RepoError> {
        let (id,): (Option<i64>,) = sqlx::query_as(
            "select min(id) from audit_events where seq is null \
             and id < (select id from audit_events where seq is not null order by id desc limit 1)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(id)
    }

    async fn audit_head(&self) -> Result<Option<(ChainPoint, u64)>, RepoError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(head) = newest_sealed(&mut conn).await? else { return Ok(None) };
        let (n,): (i64,) =
            sqlx::query_as("select count(*) from audit_events where seq is not null").fetch_one(&mut *conn).await.map_err(map_err)?;
        Ok(Some((head, u64::try_from(n).unwrap_or(0))))
    }

    async fn audit_events(&self, user: Option<i64>, since: Option<OffsetDateTime>, limit: u32) -> Result<Vec<AuditRecord>, RepoError> {
        let rows: Vec<rows::AuditTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {AUDIT_COLS} from audit_events where ($1 is null or user_id = $1) and ($2 is null or at >= $2) \
             order by id desc limit $3"
        )))
        .bind(user)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.into_iter().map(rows::audit_record).collect())
    }
}

#[async_trait]
impl UserRepository for PgStore {
    async fn create_user(&self, email: &Email, password: Option<&PasswordHash>, now: OffsetDateTime) -> Result<User, RepoError> {
        let row = sqlx::query(
            "insert into users (email, email_normalized, password_hash, status, created_at, password_changed_at, email_normalized_version) \
             values ($1, $4, $2, 'active', $3, $3, $5) returning id, email, password_hash, status, created_at, password_changed_at",
        )
        .bind(email.as_str())
        .bind(password.map(PasswordHash::as_str))
        .bind(now)
        .bind(email.normalized())
        .bind(Email::NORMALIZATION)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        rows::user(&row)
    }

    async fn import_user(&self, user: &User, origin: &str) -> Result<bool, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "insert into users (id, email, email_normalized, password_hash, status, created_at, password_changed_at, origin, \
             email_normalized_version) \
             overriding system value values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (id) do nothing",
        )
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
        reserve_ids(&mut tx, user.id.0).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn user_from(&self, origin: &str, id: UserId) -> Result<Option<User>, RepoError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLS} from users where id = $1 and origin = $2")))
            .bind(id.0)
            .bind(origin)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn reserve_user_ids(&self, up_to: i64) -> Result<(), RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        reserve_ids(&mut tx, up_to).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn start_import(&self, origin: &str, now: OffsetDateTime) -> Result<(), RepoError> {
        sqlx::query("insert into imports (origin, started_at) values ($1, $2) on conflict (origin) do update set started_at = $2")
            .bind(origin)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn finish_import(&self, origin: &str, now: OffsetDateTime) -> Result<(), RepoError> {
        sqlx::query(
            "insert into imports (origin, started_at, finished_at) values ($1, $2, $2) \
             on conflict (origin) do update set finished_at = coalesce(imports.finished_at, $2)",
        )
        .bind(origin)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn import_finished(&self, origin: &str) -> Result<bool, RepoError> {
        let row: Option<(bool,)> = sqlx::query_as("select finished_at is not null from imports where origin = $1")
            .bind(origin)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.is_some_and(|(f,)| f))
    }

    async fn renormalize_emails(
        &self,
        version: i64,
        normalize: for<'s> fn(&'s str) -> Option<String>,
    ) -> Result<(Vec<UserId>, Vec<UserId>), RepoError> {
        let (mut updated, mut kept) = (vec![], vec![]);
        loop {
            let rows: Vec<(i64, String)> =
                sqlx::query_as("select id, email from users where email_normalized_version < $1 order by id limit 500")
                    .bind(version)
                    .fetch_all(&self.pool)
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
                        .execute(&self.pool)
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
                            .execute(&self.pool)
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
        let done = sqlx::query("update users set password_hash = $3 where id = $1 and password_hash = $2")
            .bind(id.0)
            .bind(old.as_str())
            .bind(new.as_str())
            .execute(&self.pool)
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
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.into_iter().map(|(id, hash)| (UserId(id), PasswordHash::from_phc(hash))).collect())
    }

    async fn list_users(&self, after: i64, limit: u32) -> Result<Vec<User>, RepoError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLS} from users where id > $1 order by id limit $2")))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(rows::user).collect()
    }

    async fn set_password(&self, id: UserId, hash: &PasswordHash, now: OffsetDateTime) -> Result<bool, RepoError> {
        let done = sqlx::query("update users set password_hash = $2, password_changed_at = $3 where id = $1")
            .bind(id.0)
            .bind(hash.as_str())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: UserId, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
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
        let revoked = revoke_where(&mut *tx, "user_id = $3", now, "user_deleted", Some(id.0), None).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLS} from users where email_normalized = $1")))
            .bind(email.normalized())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLS} from users where id = $1")))
            .bind(id.0)
            .fetch_optional(&self.pool)
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
        .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Serialise first sightings of one identity, so two at once make one user.
        sqlx::query("select pg_advisory_xact_lock(hashtext($1 || ':' || $2))")
            .bind(provider)
            .bind(subject)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let updated = sqlx::query(
            "with u as (update users set status = $2 where id = $1 returning id) \
             insert into audit_events (at, kind, user_id) select $3, 'user_' || $2, id from u returning user_id",
        )
        .bind(id.0)
        .bind(status.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if updated.is_none() {
            return Err(RepoError::NotFound);
        }
        let revoked = if status == UserStatus::Blocked {
            revoke_where(&mut *tx, "user_id = $3", now, "user_blocked", Some(id.0), None).await?
        } else {
            vec![]
        };
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }
}

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

impl PgStore {
    /// The highest audit event id written, once no insert into `audit_events` is in flight (a
    /// SHARE lock waits for them and holds new ones back for one indexed read): every id at or
    /// below it is committed or gone for good. `None` when the table is empty, or when inserts
    /// stay in flight longer than `lock_timeout` (then the sealer skips its round).
    async fn audit_watermark(&self) -> Result<Option<i64>, RepoError> {
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
    async fn insert_session(&self, s: &Session, first: &RefreshRecord, login: Option<(&str, &str)>) -> Result<(), RepoError> {
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

#[async_trait]
impl Health for PgStore {
    async fn ping(&self) -> Result<(), RepoError> {
        sqlx::query("select 1").execute(&self.pool).await.map(drop).map_err(map_err)
    }

    fn pool_stats(&self) -> Option<(u32, u32, u32)> {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        Some((self.pool.size(), idle, self.pool.options().get_max_connections()))
    }
}

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
