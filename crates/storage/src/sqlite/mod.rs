//! The SQLite backend: the default store, so Tessera runs with no database server. One file
//! (WAL mode) or `sqlite::memory:`. Multi-statement writes run under `BEGIN IMMEDIATE`, which
//! takes SQLite's single write lock up front: rotations of one token are serialised exactly as
//! the row locks serialise them on Postgres. One process per database file: revocations reach
//! the process's own list directly, so no cross-instance notification is needed.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use uuid::Uuid;

use crate::shared::prelude::*;

mod seam;
use seam::*;

crate::shared::repositories!(SqliteStore, SqliteConnection);

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

    /// Connections open, idle, and the most there may be.
    fn pools_stats(&self) -> (u32, u32, u32) {
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        (self.pool.size(), idle, self.pool.options().get_max_connections())
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
}
