//! Reads what a migration takes from a Django deployment's database (Postgres or SQLite): its
//! users (`auth_user`) and simplejwt's blacklist (`token_blacklist_*`). Read-only; nothing here
//! writes to the original database.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use time::OffsetDateTime;

/// A row of `auth_user`, as stored.
#[derive(Debug, Clone)]
pub struct DjangoUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    /// Django's encoded hash (`argon2$…`, `pbkdf2_sha256$…`, `bcrypt$…`; `!…` when unusable).
    pub password: String,
    pub is_active: bool,
    pub date_joined: OffsetDateTime,
}

/// A blacklisted refresh token: the token as issued (simplejwt keeps it whole) and when it was
/// blacklisted.
#[derive(Debug, Clone)]
pub struct DjangoBlacklisted {
    pub token: String,
    pub blacklisted_at: OffsetDateTime,
}

#[derive(Debug, Default)]
pub struct DjangoExport {
    pub users: Vec<DjangoUser>,
    /// The highest user id the deployment ever gave out, deleted users' included: its id
    /// sequence (0 when it has none).
    pub highest_id_given: i64,
    /// Empty when the deployment did not install simplejwt's blacklist app.
    pub blacklisted: Vec<DjangoBlacklisted>,
}

type UserRow = (i64, String, String, String, i64, i64);
type BlacklistRow = (String, i64);

const PG_USERS: &str = "select id, username, email, password, is_active::int8, extract(epoch from date_joined)::int8 \
                        from auth_user order by id";
const PG_BLACKLIST: &str = "select o.token, extract(epoch from b.blacklisted_at)::int8 \
                            from token_blacklist_blacklistedtoken b join token_blacklist_outstandingtoken o on o.id = b.token_id \
                            order by o.id";
const PG_SEQUENCE: &str = "select coalesce((select last_value from pg_sequences \
                           where schemaname = current_schema() and sequencename = 'auth_user_id_seq'), 0)::int8";
const SQLITE_SEQUENCE: &str = "select coalesce((select seq from sqlite_sequence where name = 'auth_user'), 0)";
const SQLITE_HAS_SEQUENCE: &str = "select count(*) from sqlite_master where type = 'table' and name = 'sqlite_sequence'";
const PG_HAS_BLACKLIST: &str = "select count(*) from information_schema.tables where table_name = 'token_blacklist_blacklistedtoken'";
const SQLITE_USERS: &str = "select id, username, email, password, cast(is_active as integer), cast(strftime('%s', date_joined) as integer) \
                            from auth_user order by id";
const SQLITE_BLACKLIST: &str = "select o.token, cast(strftime('%s', b.blacklisted_at) as integer) \
                                from token_blacklist_blacklistedtoken b join token_blacklist_outstandingtoken o on o.id = b.token_id \
                                order by o.id";
const SQLITE_HAS_BLACKLIST: &str = "select count(*) from sqlite_master where type = 'table' and name = 'token_blacklist_blacklistedtoken'";

/// Reads users and blacklist from the Django database at `url` (`postgres://…` or
/// `sqlite:…`); a SQLite file is opened read-only.
pub async fn read(url: &str) -> Result<DjangoExport, sqlx::Error> {
    let (users, blacklist, (sequence,)): (Vec<UserRow>, Vec<BlacklistRow>, (i64,)) =
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut c = PgConnectOptions::from_str(url)?.connect().await?;
            let users = sqlx::query_as(PG_USERS).fetch_all(&mut c).await?;
            let (has,): (i64,) = sqlx::query_as(PG_HAS_BLACKLIST).fetch_one(&mut c).await?;
            let bl = if has > 0 { sqlx::query_as(PG_BLACKLIST).fetch_all(&mut c).await? } else { vec![] };
            let seq = sqlx::query_as(PG_SEQUENCE).fetch_one(&mut c).await?;
            c.close().await?;
            (users, bl, seq)
        } else {
            let mut c = SqliteConnectOptions::from_str(url)?.read_only(true).connect().await?;
            let users = sqlx::query_as(SQLITE_USERS).fetch_all(&mut c).await?;
            let (has,): (i64,) = sqlx::query_as(SQLITE_HAS_BLACKLIST).fetch_one(&mut c).await?;
            let bl = if has > 0 { sqlx::query_as(SQLITE_BLACKLIST).fetch_all(&mut c).await? } else { vec![] };
            let (has_seq,): (i64,) = sqlx::query_as(SQLITE_HAS_SEQUENCE).fetch_one(&mut c).await?;
            let seq = if has_seq > 0 { sqlx::query_as(SQLITE_SEQUENCE).fetch_one(&mut c).await? } else { (0,) };
            c.close().await?;
            (users, bl, seq)
        };
    let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let highest = users.iter().map(|u| u.0).max().unwrap_or(0).max(sequence);
    Ok(DjangoExport {
        highest_id_given: highest,
        users: users
            .into_iter()
            .map(|(id, username, email, password, active, joined)| DjangoUser {
                id,
                username,
                email,
                password,
                is_active: active != 0,
                date_joined: at(joined),
            })
            .collect(),
        blacklisted: blacklist.into_iter().map(|(token, when)| DjangoBlacklisted { token, blacklisted_at: at(when) }).collect(),
    })
}
