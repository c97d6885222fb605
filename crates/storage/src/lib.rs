//! Tessera's storage: the domain's repository traits implemented over Postgres and SQLite with
//! sqlx, the SQL the two share written once ([`shared`]), what differs behind a small seam.
//!
//! Row structs stay private and the crate returns domain types. Each use-case that must be atomic
//! (rotation above all) is one repository call running in one transaction; each backend maps its
//! driver's constraint violations to domain errors in one place (`postgres::map_err`,
//! `sqlite::map_err`).

pub mod django;
mod migrations;
pub mod postgres;
mod rows;
pub(crate) mod shared;
pub mod sqlite;

pub use postgres::{CLIENTS_CHANNEL, KEYS_CHANNEL, PgStore, REVOCATION_CHANNEL};
pub use sqlite::SqliteStore;

/// A pooled connection idle this long is closed: the pool grows for a burst (a SQLite
/// connection holds a worker thread and up to 2 MiB of page cache) and shrinks back after it.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The sweep of what a rotation keeps sealed for its grace window (`drop_sealed_secrets`), on
/// both databases. A sealed answer is only ever stored beside a sealed secret (a rotation's child
/// gets both, a login's token only the secret) and the two are dropped together, so
/// `sealed_secret is not null` finds every row holding either. It is also the predicate of the
/// partial index `refresh_tokens_sealed_idx`: the sweep reads the few tokens still sealed, not
/// the whole table (with `or sealed_pair is not null` neither database could use the index, and
/// the sweep scanned every token ever issued, every minute). Public for the query-plan test.
pub const DROP_SEALED_SQL: &str =
    "update refresh_tokens set sealed_secret = null, sealed_pair = null where sealed_secret is not null and issued_at < $1";

pub mod testing {
    //! Fresh, migrated databases for tests: one per test, on the server `DATABASE_URL` names.

    use sqlx::Connection;

    use crate::PgStore;

    /// The server tests use: `DATABASE_URL`, or the local default.
    pub fn server_url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// `url` with its database name replaced.
    pub fn with_database(url: &str, name: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (url, String::new()),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_part = match base[scheme_end..].find('/') {
            Some(i) => &base[..scheme_end + i],
            None => base,
        };
        format!("{host_part}/{name}{query}")
    }

    /// Creates an empty database with a unique name; returns its URL.
    pub async fn create_database() -> Result<String, sqlx::Error> {
        let server = server_url();
        let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&with_database(&server, "postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}"))).execute(&mut conn).await?;
        conn.close().await?;
        Ok(with_database(&server, &name))
    }

    /// A SQLite store on a fresh, migrated database file under the system temp directory.
    pub async fn fresh_sqlite() -> Result<crate::SqliteStore, Box<dyn std::error::Error + Send + Sync>> {
        let store = crate::SqliteStore::connect(&sqlite_url()).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// A URL for a fresh SQLite database file.
    pub fn sqlite_url() -> String {
        let path = std::env::temp_dir().join(format!("tessera-test-{}.db", uuid::Uuid::new_v4().simple()));
        format!("sqlite:{}", path.display())
    }

    /// A random stand-in for a refresh token's keyed hash.
    pub fn random_hash() -> tessera_domain::TokenHash {
        let mut h = [0u8; 32];
        h[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        h[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        tessera_domain::TokenHash(h)
    }

    /// A native session of `user` opened at `t0` (with `client`, if any) and its first refresh
    /// token, not yet stored: 30 days for the session, 24 hours for the token.
    pub fn session_of(
        user: tessera_domain::UserId,
        client: Option<&str>,
        t0: tessera_domain::OffsetDateTime,
    ) -> (tessera_domain::Session, tessera_domain::RefreshRecord) {
        use tessera_domain::{Duration, RefreshRecord, Session, SessionId, TokenProfile};
        let session = Session {
            id: SessionId(uuid::Uuid::now_v7()),
            user_id: user,
            client_id: client.map(str::to_owned),
            face: "native".into(),
            profile: TokenProfile::standard(),
            created_at: t0,
            expires_at: t0 + Duration::days(30),
            last_refresh_at: None,
            ip: Some("127.0.0.1".into()),
            user_agent: Some("test".into()),
            revoked_at: None,
            revoked_reason: None,
            subject: None,
            dpop_jkt: None,
        };
        let first = RefreshRecord {
            hash: random_hash(),
            session_id: session.id,
            parent: None,
            access_jti: uuid::Uuid::new_v4(),
            issued_at: t0,
            expires_at: t0 + Duration::hours(24),
            rotated_at: None,
            sealed_secret: Some(vec![9; 56]),
            sealed_pair: None,
        };
        (session, first)
    }

    /// A store on a fresh, migrated database.
    pub async fn fresh_store() -> Result<PgStore, Box<dyn std::error::Error + Send + Sync>> {
        let url = create_database().await?;
        let store = PgStore::connect_lazy(&url, 20)?;
        store.migrate().await?;
        Ok(store)
    }
}
