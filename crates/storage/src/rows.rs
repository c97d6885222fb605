//! Decoding rows into domain types, written once for both backends: each backend's row type
//! implements [`RowExt`], and the mapping functions are generic over it. Column names are the
//! same in both schemas.

use tessera_domain::audit::AuditRecord;
use tessera_domain::throttle::{ANY_ADDRESS, AttemptRow};
use tessera_domain::{
    ClientId, Email, OAuthClient, PasswordHash, RefreshRecord, RepoError, Session, SessionId, TokenHash, TokenProfile, User, UserId,
    UserStatus,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

fn decode(e: sqlx::Error) -> RepoError {
    RepoError::Unavailable(Box::new(e))
}

/// Typed column access shared by the backends' row types.
pub trait RowExt {
    fn text(&self, col: &str) -> Result<String, RepoError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, RepoError>;
    fn int(&self, col: &str) -> Result<i64, RepoError>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, RepoError>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, RepoError>;
    fn uuid(&self, col: &str) -> Result<Uuid, RepoError>;
    fn time(&self, col: &str) -> Result<OffsetDateTime, RepoError>;
    fn opt_time(&self, col: &str) -> Result<Option<OffsetDateTime>, RepoError>;
    fn boolean(&self, col: &str) -> Result<bool, RepoError>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, col: &str) -> Result<String, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
            fn int(&self, col: &str) -> Result<i64, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
            fn uuid(&self, col: &str) -> Result<Uuid, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
            fn time(&self, col: &str) -> Result<OffsetDateTime, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
            fn opt_time(&self, col: &str) -> Result<Option<OffsetDateTime>, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
            fn boolean(&self, col: &str) -> Result<bool, RepoError> {
                sqlx::Row::try_get(self, col).map_err(decode)
            }
        }
    };
}

impl_row_ext!(sqlx::postgres::PgRow);
impl_row_ext!(sqlx::sqlite::SqliteRow);

// Column lists with stable aliases, so joined rows decode without ambiguity.
pub const TOKEN_COLS: &str = "t.hash as t_hash, t.session_id as t_session_id, t.parent_hash as t_parent_hash, t.access_jti as t_access_jti, \
     t.issued_at as t_issued_at, t.expires_at as t_expires_at, t.rotated_at as t_rotated_at, t.sealed_secret as t_sealed_secret, \
     t.sealed_pair as t_sealed_pair";
pub const SESSION_COLS: &str = "s.id as s_id, s.user_id as s_user_id, s.client_id as s_client_id, s.face as s_face, s.profile as s_profile, \
     cast(s.access_ttl_seconds as bigint) as s_access_ttl, cast(s.refresh_ttl_seconds as bigint) as s_refresh_ttl, s.created_at as s_created_at, s.expires_at as s_expires_at, \
     s.last_refresh_at as s_last_refresh_at, s.ip as s_ip, s.user_agent as s_user_agent, s.revoked_at as s_revoked_at, s.revoked_reason as s_revoked_reason, s.subject as s_subject, s.dpop_jkt as s_dpop_jkt";
pub const USER_COLS: &str = "id, email, password_hash, status, created_at, password_changed_at";
pub const CLIENT_COLS: &str = "client_id, name, secret_hash, profile, created_at, scopes, audiences, require_dpop, exchange_types";

fn corrupt(what: String) -> RepoError {
    RepoError::Unavailable(what.into())
}

fn hash(row: &impl RowExt, col: &str) -> Result<TokenHash, RepoError> {
    TokenHash::from_slice(&row.bytes(col)?).ok_or_else(|| corrupt(format!("{col}: not a 32-byte hash")))
}

pub fn token(row: &impl RowExt) -> Result<RefreshRecord, RepoError> {
    Ok(RefreshRecord {
        hash: hash(row, "t_hash")?,
        session_id: SessionId(row.uuid("t_session_id")?),
        parent: row.opt_bytes("t_parent_hash")?.as_deref().and_then(TokenHash::from_slice),
        access_jti: row.uuid("t_access_jti")?,
        issued_at: row.time("t_issued_at")?,
        expires_at: row.time("t_expires_at")?,
        rotated_at: row.opt_time("t_rotated_at")?,
        sealed_secret: row.opt_bytes("t_sealed_secret")?,
        sealed_pair: row.opt_bytes("t_sealed_pair")?,
    })
}

pub fn session(row: &impl RowExt) -> Result<Session, RepoError> {
    let profile = TokenProfile::new(
        row.text("s_profile")?,
        Duration::seconds(row.int("s_access_ttl")?),
        Duration::seconds(row.int("s_refresh_ttl")?),
    )
    .map_err(|e| corrupt(format!("stored profile is invalid: {e}")))?;
    Ok(Session {
        id: SessionId(row.uuid("s_id")?),
        user_id: UserId(row.int("s_user_id")?),
        client_id: row.opt_text("s_client_id")?,
        face: row.text("s_face")?,
        profile,
        created_at: row.time("s_created_at")?,
        expires_at: row.time("s_expires_at")?,
        last_refresh_at: row.opt_time("s_last_refresh_at")?,
        ip: row.opt_text("s_ip")?,
        user_agent: row.opt_text("s_user_agent")?,
        revoked_at: row.opt_time("s_revoked_at")?,
        revoked_reason: row.opt_text("s_revoked_reason")?,
        subject: row.opt_text("s_subject")?,
        dpop_jkt: row.opt_text("s_dpop_jkt")?,
    })
}

pub fn user(row: &impl RowExt) -> Result<User, RepoError> {
    let status = row.text("status")?;
    Ok(User {
        id: UserId(row.int("id")?),
        email: Email::parse(&row.text("email")?).map_err(|e| corrupt(format!("stored e-mail is invalid: {e}")))?,
        password_hash: row.opt_text("password_hash")?.map(PasswordHash::from_phc),
        status: UserStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown user status {status:?}")))?,
        created_at: row.time("created_at")?,
        password_changed_at: row.opt_time("password_changed_at")?,
    })
}

pub fn client(row: &impl RowExt) -> Result<OAuthClient, RepoError> {
    Ok(OAuthClient {
        client_id: ClientId::parse(&row.text("client_id")?).map_err(|e| corrupt(format!("stored client id is invalid: {e}")))?,
        name: row.text("name")?,
        secret_hash: row.opt_bytes("secret_hash")?.as_deref().and_then(TokenHash::from_slice),
        profile: row.text("profile")?,
        created_at: row.time("created_at")?,
        scopes: words(&row.text("scopes")?),
        audiences: words(&row.text("audiences")?),
        require_dpop: row.boolean("require_dpop")?,
        exchange_types: words(&row.text("exchange_types")?),
    })
}

/// A space-separated list, as `clients.scopes` and `clients.audiences` store one.
fn words(s: &str) -> Vec<String> {
    s.split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

pub fn stored_key(row: &impl RowExt) -> Result<tessera_domain::ports::StoredKey, RepoError> {
    let state = row.text("state")?;
    Ok(tessera_domain::ports::StoredKey {
        kid: row.text("kid")?,
        alg: row.text("alg")?,
        state: tessera_domain::KeyState::parse(&state).ok_or_else(|| corrupt(format!("unknown key state {state:?}")))?,
        sealed_secret: row.bytes("sealed_secret")?,
        created_at: row.time("created_at")?,
        activated_at: row.opt_time("activated_at")?,
        retired_at: row.opt_time("retired_at")?,
    })
}

pub fn revoked(row: &impl RowExt) -> Result<(SessionId, OffsetDateTime), RepoError> {
    Ok((SessionId(row.uuid("id")?), row.time("revoked_at")?))
}

/// A `login_attempts` row: ip, failures, last failure, lock, last success.
pub type AttemptTuple = (String, i64, Option<OffsetDateTime>, Option<OffsetDateTime>, Option<OffsetDateTime>);

/// An account's rows at one address and at all of them ([`ANY_ADDRESS`]).
pub fn attempt_rows(rows: Vec<AttemptTuple>) -> (Option<AttemptRow>, Option<AttemptRow>) {
    let mut own = None;
    let mut wide = None;
    for (ip, failures, last_failure_at, locked_until, succeeded_at) in rows {
        let row = AttemptRow { failures: u32::try_from(failures).unwrap_or(0), last_failure_at, locked_until, succeeded_at };
        if ip == ANY_ADDRESS {
            wide = Some(row);
        } else {
            own = Some(row);
        }
    }
    (own, wide)
}

/// An `audit_events` row: id, seq, at, kind, user, session, detail (JSON text), prev_hash, hash.
pub type AuditTuple = (i64, Option<i64>, OffsetDateTime, String, Option<i64>, Option<Uuid>, String, Option<Vec<u8>>, Option<Vec<u8>>);

pub fn audit_record((id, seq, at, kind, user_id, session_id, detail, prev_hash, hash): AuditTuple) -> AuditRecord {
    AuditRecord { id, seq, at, kind, user_id, session_id, detail, prev_hash, hash }
}
