//! The Postgres backend: the store and what it shares here (connection, migrations, error
//! mapping, revocation with NOTIFY), and one file per repository: attempts, audit, users,
//! clients, sessions (the one-transaction rotation), keys.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::shared::prelude::*;
pub use crate::shared::{CLIENTS_CHANNEL, KEYS_CHANNEL};

pub mod lanes;
mod seam;
use lanes::Lanes;
pub use lanes::Split;
use seam::*;

crate::shared::repositories!(PgStore, PgConnection);

/// The channel every instance listens on; the payload is a revoked session's id.
pub const REVOCATION_CHANNEL: &str = "tessera_revocations";

pub(crate) static MIGRATIONS: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../migrations/postgres");
static MIGRATOR: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| crate::migrations::migrator(&MIGRATIONS));

/// Maps a sqlx error to the domain's: unique violations by constraint name, the rest opaque
/// (with the cause kept for the log).
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
            // a table split by route (hash partitions, Citus shards) names the part's constraint:
            // `refresh_tokens_2_pkey`, `refresh_tokens_2_route_parent_hash_key`, `..._102008`
            Some(c) if c.starts_with("refresh_tokens") && c.contains("parent_") => RepoError::Conflict("refresh_tokens_parent_key"),
            Some(c) if c.starts_with("refresh_tokens") && c.contains("_pkey") => RepoError::Conflict("refresh_tokens_pkey"),
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
    /// For every thread without a lane: the multi-thread runtime's (the CLI, `serve`'s
    /// background tasks), LISTEN, migrations.
    pool: PgPool,
    /// The HTTP workers' own pools (see [`lanes`]); none unless asked for.
    lanes: Option<Arc<Lanes>>,
}

impl PgStore {
    /// Connects a pool. Connections are established lazily, so an unreachable server surfaces on
    /// first use (the readiness probe), not as a crash at start.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        Self::connect_lazy_split(url, Split::of(max_connections, 0))
    }

    /// [`Self::connect_lazy`], with `split.lanes` pools of their own for the first threads on a
    /// current-thread runtime that use the store: `serve`'s HTTP workers (see [`lanes`]).
    pub fn connect_lazy_split(url: &str, split: Split) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?.application_name("tessera");
        let pool = lanes::pool(options.clone(), split.shared);
        Ok(Self { pool, lanes: Lanes::new(options, split) })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool, lanes: None }
    }

    /// The pool for this thread: its lane's, or the shared one.
    pub fn pool(&self) -> &PgPool {
        self.lanes.as_deref().and_then(Lanes::here).unwrap_or(&self.pool)
    }

    /// Connections open, idle, and the most there may be, over every pool.
    fn pools_stats(&self) -> (u32, u32, u32) {
        let lanes = self.lanes.as_deref().into_iter().flat_map(Lanes::pools);
        std::iter::once(&self.pool).chain(lanes).fold((0, 0, 0), |(size, idle, max), p| {
            let i = u32::try_from(p.num_idle()).unwrap_or(u32::MAX);
            (size + p.size(), idle + i, max + p.options().get_max_connections())
        })
    }

    /// Creates the database named in `url` if it does not exist yet.
    pub async fn ensure_database(url: &str) -> Result<(), sqlx::Error> {
        if !Postgres::database_exists(url).await? {
            Postgres::create_database(url).await?;
        }
        Ok(())
    }

    /// A listener subscribed to [`REVOCATION_CHANNEL`], [`KEYS_CHANNEL`] and [`CLIENTS_CHANNEL`].
    pub async fn revocation_listener(&self) -> Result<PgListener, sqlx::Error> {
        let mut l = PgListener::connect_with(self.pool()).await?;
        l.listen_all([REVOCATION_CHANNEL, KEYS_CHANNEL, CLIENTS_CHANNEL]).await?;
        Ok(l)
    }
}
