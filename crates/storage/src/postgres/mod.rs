//! The Postgres backend: the store and what it shares here (connection, migrations, error
//! mapping, revocation with NOTIFY), and one file per repository: attempts, audit, users,
//! clients, sessions (the one-transaction rotation), keys.

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

mod attempts;
mod audit;
mod clients;
mod keys;
mod sessions;
mod users;

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
impl Health for PgStore {
    async fn ping(&self) -> Result<(), RepoError> {
        sqlx::query("select 1").execute(&self.pool).await.map(drop).map_err(map_err)
    }

    fn pool_stats(&self) -> Option<(u32, u32, u32)> {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        Some((self.pool.size(), idle, self.pool.options().get_max_connections()))
    }
}
