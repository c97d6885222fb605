//! The SQL the two databases share, written once.
//!
//! Each repository trait is implemented here, once, by a macro that each backend invokes for its
//! store (`repositories!(PgStore)`). The statements are written with `$1`-style parameters, which
//! both drivers bind by number. What truly differs stays with each backend, behind a small seam
//! that the expansion finds in the invoking module:
//!
//! - the store's `pool` and `write_tx()` (Postgres: a transaction; SQLite: `BEGIN IMMEDIATE`
//!   once this process's earlier writers are done), and `write_turn()` for a write of one
//!   statement (SQLite's turn; nothing on Postgres);
//! - `map_err`, which maps each driver's constraint violations to the domain's errors;
//! - `lock` (advisory locks on Postgres; SQLite's write lock already serialises) and `notify`
//!   (`NOTIFY` on Postgres; one process per SQLite file hears its own changes);
//! - the statements that combine several writes in one on Postgres and run one by one on
//!   SQLite: `insert_session`, `record_rotation`, `revoke_where`; and `reserve_ids` (a sequence
//!   move against `sqlite_sequence`), `seal_upto` (the audit watermark);
//! - a few SQL fragments: `FOR_UPDATE`, `LOCK_ROTATION`, `OVERRIDING`, `JSON_CAST`,
//!   `NEWEST_ATTEMPT`.

mod attempts;
mod audit;
mod clients;
mod keys;
mod proofs;
mod sessions;
mod users;

pub(crate) use attempts::attempt_repository;
pub(crate) use audit::audit_repository;
pub(crate) use clients::client_repository;
pub(crate) use keys::key_repository;
pub(crate) use proofs::proof_repository;
pub(crate) use sessions::session_repository;
pub(crate) use users::user_repository;

/// What the shared implementations name, for the backends to import where they invoke them.
pub(crate) mod prelude {
    pub(crate) use super::Lock;
    pub(crate) use crate::rows::{self, CLIENT_COLS, RowExt, SESSION_COLS, TOKEN_COLS, USER_COLS};
    pub(crate) use tessera_domain::LockoutPolicy;
    pub(crate) use tessera_domain::audit::{AuditChain, AuditRecord, ChainPoint, GENESIS, NewAuditEvent, Sealing};
    pub(crate) use tessera_domain::key_schedule::{self, KeyChange, KeySchedule};
    pub(crate) use tessera_domain::ports::{
        AuditRepository, ClientRepository, KeyRepository, LoginAttemptRepository, RotateOutcome, RotateRequest, SessionRepository,
        StoredKey, UserRepository,
    };
    pub(crate) use tessera_domain::rotation::{RefreshDecision, RefreshFacts, RefreshRefusal, Verdict, child_record, decide_with_risk};
    pub(crate) use tessera_domain::throttle::{ANY_ADDRESS, AttemptRow};
    pub(crate) use tessera_domain::{
        Email, OAuthClient, PasswordHash, RefreshRecord, RepoError, RequestMeta, Route, Session, SessionId, TokenHash, User, UserId,
        UserStatus,
    };
    pub(crate) use time::{Duration, OffsetDateTime};
}

/// Where a change of the signing keys is announced (the payload names the key or algorithm).
pub const KEYS_CHANNEL: &str = "tessera_keys";
/// Where a deleted OAuth client is announced (the payload is its client_id), so that
/// every instance forgets the copy it keeps.
pub const CLIENTS_CHANNEL: &str = "tessera_clients";

/// A login succeeded (`$1` account, `$2` address, `$3` time): the address's failures are
/// forgotten and it is the owner's.
pub(crate) const LOGIN_SUCCEEDED: &str = "insert into login_attempts (account, ip, failures, succeeded_at) values ($1, $2, 0, $3) \
     on conflict (account, ip) do update set failures = 0, last_failure_at = null, locked_until = null, succeeded_at = $3";

/// What a transaction serialises on, where the database itself would not.
pub(crate) enum Lock<'a> {
    /// One audit sealer at a time, across instances.
    AuditSealer,
    /// One change of the signing keys at a time.
    SigningKeys,
    /// First sightings of one external identity, so two at once make one user.
    Identity { provider: &'a str, subject: &'a str },
}

/// Every repository trait, implemented for `$store` by the shared SQL, with its health check and
/// its migrations.
macro_rules! repositories {
    ($store:ty, $conn:ty) => {
        #[async_trait::async_trait]
        impl tessera_domain::ports::Health for $store {
            async fn ping(&self) -> Result<(), RepoError> {
                sqlx::query("select 1").execute(self.pool()).await.map(drop).map_err(map_err)
            }

            fn pool_stats(&self) -> Option<(u32, u32, u32)> {
                Some(self.pools_stats())
            }
        }

        impl $store {
            /// Applies pending migrations (safe to run from several instances at once: sqlx
            /// takes a lock). Returns how many were pending (another instance may have applied
            /// some of them meanwhile).
            pub async fn migrate(&self) -> Result<usize, sqlx::migrate::MigrateError> {
                let pending = self.pending_migrations().await.map_err(sqlx::migrate::MigrateError::Execute)?.len();
                MIGRATOR.run(self.pool()).await?;
                Ok(pending)
            }

            /// The migrations not applied yet (`version description`), for `tessera doctor`.
            pub async fn pending_migrations(&self) -> Result<Vec<String>, sqlx::Error> {
                self.align_migrations().await?;
                let applied: Vec<i64> =
                    match sqlx::query_scalar("select version from _sqlx_migrations where success").fetch_all(self.pool()).await {
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
        }

        $crate::shared::attempt_repository!($store, $conn);
        $crate::shared::audit_repository!($store, $conn);
        $crate::shared::client_repository!($store);
        $crate::shared::key_repository!($store);
        $crate::shared::proof_repository!($store);
        $crate::shared::session_repository!($store);
        $crate::shared::user_repository!($store);
    };
}
pub(crate) use repositories;
