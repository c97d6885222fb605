//! The SQLite backend: the default store, so Tessera runs with no database server. One file
//! (WAL mode) or `sqlite::memory:`. Multi-statement writes run under `BEGIN IMMEDIATE`, which
//! takes SQLite's single write lock up front: rotations of one token are serialised exactly as
//! the row locks serialise them on Postgres. One process per database file: revocations reach
//! the process's own list directly, so no cross-instance notification is needed.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
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

use crate::rows::{self, CLIENT_COLS, RowExt, SESSION_COLS, TOKEN_COLS, USER_COLS};

mod attempts;
mod audit;
mod clients;
mod sessions;
mod users;
use sessions::{audit_event, insert_token};
mod keys;

pub(crate) static MIGRATIONS: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../migrations/sqlite");
static MIGRATOR: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| crate::migrations::migrator(&MIGRATIONS));

/// Maps SQLite errors to the domain's: SQLite names the violated index or columns in the message.
pub fn map_err(e: sqlx::Error) -> RepoError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let msg = db.message();
        let name = if msg.contains("users_email_key") || msg.contains("users.email_normalized") {
            Some("users_email_key")
        } else if msg.contains("clients.client_id") {
            Some("clients_pkey")
        } else if msg.contains("signing_keys.kid") {
            Some("signing_keys_pkey")
        } else if msg.contains("refresh_tokens.parent_hash") {
            Some("refresh_tokens_parent_key")
        } else if msg.contains("refresh_tokens.hash") {
            Some("refresh_tokens_pkey")
        } else {
            None
        };
        if let Some(n) = name {
            return RepoError::Conflict(n);
        }
    }
    if let sqlx::Error::RowNotFound = e {
        return RepoError::NotFound;
    }
    RepoError::Unavailable(Box::new(e))
}

/// The database file is readable by its owner only (0600), in a directory made 0700 when Tessera
/// creates it: it holds password hashes and sealed keys. SQLite gives its `-wal` and `-shm`
/// files the database file's permissions.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let meta = std::fs::metadata(path)?;
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                    tracing::warn!(path = %path.display(), "the database file was readable by others; it is now 0600");
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Writers take turns here, first come first served, before they ask SQLite for its write
    /// lock. Without it, concurrent writers meet SQLite's busy handler, which sleeps in growing
    /// steps (up to 100 ms) and wakes in no order: refresh p99 ran at 84× its p50.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction, and this process's turn to write.
struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite:path` or `sqlite::memory:`).
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(StdDuration::from_secs(10))
            .synchronous(SqliteSynchronous::Normal);
        if !memory {
            options = options.journal_mode(SqliteJournalMode::Wal);
            private_file(options.get_filename()).map_err(sqlx::Error::Io)?;
        }
        // An in-memory database lives as long as its one connection.
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            SqlitePoolOptions::new().max_connections(8).idle_timeout(crate::IDLE_TIMEOUT).connect_with(options).await?
        };
        Ok(Self { pool, writer: Default::default() })
    }

    /// The pool, for tests and tools.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
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

    /// A write transaction holding SQLite's write lock from its first statement, once this
    /// process's earlier writers are done.
    async fn write_tx(&self) -> Result<WriteTx, RepoError> {
        let turn = self.writer.clone().lock_owned().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// This process's turn to write, for a write of one statement.
    async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// A session, its first token and its audit event in one write transaction; after a password
    /// login, with the login's success recorded (`login`: account and address) in it too.
    async fn insert_session(&self, s: &Session, first: &RefreshRecord, login: Option<(&str, &str)>) -> Result<(), RepoError> {
        let mut tx = self.write_tx().await?;
        if let Some((account, address)) = login {
            sqlx::query(LOGIN_SUCCEEDED).bind(account).bind(address).bind(s.created_at).execute(&mut *tx).await.map_err(map_err)?;
        }
        sqlx::query(
            "insert into sessions (id, user_id, client_id, face, profile, access_ttl_seconds, refresh_ttl_seconds, created_at, expires_at, ip, user_agent, subject) \
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            // its user is never deleted (only erased): the client was, meanwhile
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => RepoError::Conflict("sessions_client_id_fkey"),
            _ => map_err(e),
        })?;
        insert_token(&mut tx, first).await?;
        audit_event(&mut tx, s.created_at, "login", s.user_id, s.id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }
}

/// A login succeeded (`?1` account, `?2` address, `?3` time): the address's failures are forgotten
/// and it is the owner's.
const LOGIN_SUCCEEDED: &str = "insert into login_attempts (account, ip, failures, succeeded_at) values (?1, ?2, 0, ?3) \
     on conflict (account, ip) do update set failures = 0, last_failure_at = null, locked_until = null, succeeded_at = ?3";

/// Revokes the sessions a `where` clause selects (`?1` time, `?2` reason, `?3` user, `?4`
/// session) and records an audit event for each, inside `tx`.
async fn revoke_where(
    tx: &mut WriteTx,
    clause: &str,
    now: OffsetDateTime,
    reason: &str,
    user: Option<i64>,
    session: Option<Uuid>,
) -> Result<Vec<SessionId>, RepoError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "update sessions set revoked_at = ?1, revoked_reason = ?2 where revoked_at is null and ({clause}) returning id, user_id"
    )))
    .bind(now)
    .bind(reason)
    .bind(user)
    .bind(session)
    .fetch_all(&mut **tx)
    .await
    .map_err(map_err)?;
    let mut ids = Vec::with_capacity(rows.len());
    for r in &rows {
        let id = r.uuid("id")?;
        sqlx::query("insert into audit_events (at, kind, user_id, session_id, detail) values (?1, 'session_revoked', ?2, ?3, json_object('reason', ?4))")
            .bind(now)
            .bind(r.int("user_id")?)
            .bind(id)
            .bind(reason)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        ids.push(SessionId(id));
    }
    Ok(ids)
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> Result<(), RepoError> {
        sqlx::query("select 1").execute(&self.pool).await.map(drop).map_err(map_err)
    }

    fn pool_stats(&self) -> Option<(u32, u32, u32)> {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        Some((self.pool.size(), idle, self.pool.options().get_max_connections()))
    }
}
