//! Shard-ready rotations: on a Postgres whose session and refresh-token tables are
//! hash-partitioned by route (`partitioned.sql`, a test configuration standing in for Citus
//! shards), every statement on the login, refresh and revocation paths reads and writes the one
//! partition of its user.
//!
//! The proof does not compare plans with copies of the statements: it runs the store's own
//! statements while another transaction holds every other partition locked (`ACCESS EXCLUSIVE`),
//! with a `lock_timeout`. A statement that opened any other partition would wait on that lock and
//! fail. Plans are made for each statement's values (`plan_cache_mode = force_custom_plan`), as
//! Citus routes a statement by its values; both tables' partitions of one route have the same
//! number. A statement that names no route (the look-up of a token issued before routing keys)
//! is shown to fail the same way, so the lock is seen to catch what it must.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tessera_domain::ports::{ClientRepository, NewRefresh, RotateOutcome, RotateRequest, SessionRepository, UserRepository};
use tessera_domain::rotation::RefreshRefusal;
use tessera_domain::{
    ClientId, Duration, Email, OAuthClient, OffsetDateTime, PasswordHash, RefreshRecord, RepoError, RequestMeta, Session, TokenHash, User,
};
use tessera_storage::PgStore;
use tessera_storage::testing::random_hash;
use uuid::Uuid;

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.microsecond() * 1000).unwrap()
}

fn session_of(u: &User, client: &str, t0: OffsetDateTime) -> (Session, RefreshRecord) {
    tessera_storage::testing::session_of(u.id, Some(client), t0)
}

fn sealed(_: &Session, child: &RefreshRecord) -> Result<Vec<u8>, RepoError> {
    Ok(child.hash.0.to_vec())
}

static NO_REQUEST: RequestMeta = RequestMeta { ip: None, user_agent: None };

fn rotation(u: &User, presented: TokenHash, now: OffsetDateTime) -> RotateRequest<'static> {
    RotateRequest {
        presented,
        route: u.id.route(),
        presenting_client: None,
        now,
        grace: Duration::seconds(5),
        child: NewRefresh { hash: random_hash(), sealed_secret: vec![1; 56], access_jti: Uuid::new_v4() },
        bound_access: None,
        faces: None,
        not_rotated: &[],
        request: &NO_REQUEST,
        rules: &[],
        dpop_jkt: None,
        seal_answer: &sealed,
    }
}

#[tokio::test]
async fn every_statement_of_login_refresh_and_revocation_touches_one_partition() {
    let url = tessera_storage::testing::create_database().await.unwrap();
    let setup = PgStore::connect_lazy(&url, 2).unwrap();
    setup.migrate().await.unwrap();
    sqlx::raw_sql(include_str!("partitioned.sql")).execute(setup.pool()).await.unwrap();

    let t0 = now();
    let ann = setup
        .create_user(&Email::parse("ann@example.com").unwrap(), Some(&PasswordHash::from_phc("$argon2id$x".into())), t0)
        .await
        .unwrap();
    let client = OAuthClient {
        client_id: ClientId::parse("app").unwrap(),
        name: "app".into(),
        secret_hash: None,
        profile: "standard".into(),
        created_at: t0,
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    setup.create_client(&client).await.unwrap();
    // Ann's partition: where her first session lands
    let (first_session, first_token) = session_of(&ann, "app", t0);
    setup.open_session(&first_session, &first_token).await.unwrap();
    let (home,): (String,) = sqlx::query_as("select tableoid::regclass::text from sessions where id = $1")
        .bind(first_session.id.0)
        .fetch_one(setup.pool())
        .await
        .unwrap();
    let n = home.strip_prefix("sessions_").unwrap();
    let others: Vec<String> =
        (0..4).map(|i| i.to_string()).filter(|i| i != n).flat_map(|i| [format!("sessions_{i}"), format!("refresh_tokens_{i}")]).collect();

    // every other partition locked until the end of the test
    let mut locker = setup.pool().begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("lock table {} in access exclusive mode", others.join(", "))))
        .execute(&mut *locker)
        .await
        .unwrap();

    let options = PgConnectOptions::from_str(&url).unwrap().options([("plan_cache_mode", "force_custom_plan"), ("lock_timeout", "2s")]);
    let hot = PgStore::from_pool(PgPoolOptions::new().max_connections(2).connect_with(options).await.unwrap());
    let route = ann.id.route();

    // login: a session and its first token (with the login's success)
    let (session, first) = session_of(&ann, "app", t0);
    hot.open_session_after_login(&session, &first, "ann@example.com", "127.0.0.1").await.expect("login");
    // refresh: a rotation, the parent again within the grace window, then after it (reuse)
    let RotateOutcome::Rotated { child, .. } = hot.rotate(rotation(&ann, first.hash, t0)).await.expect("rotation") else {
        panic!("rotated")
    };
    let again = hot.rotate(rotation(&ann, first.hash, t0 + Duration::seconds(1))).await.expect("grace");
    assert!(matches!(again, RotateOutcome::Reissued { .. }), "{again:?}");
    let (token, _) = hot.refresh_by_hash(child.hash, Some(route)).await.expect("look-up").expect("found");
    assert_eq!(token.hash, child.hash);
    assert!(hot.session(session.id, Some(route)).await.expect("session").is_some());
    hot.record_session_uses(&[(session.id, route, t0 + Duration::seconds(2))]).await.expect("last use");
    assert_eq!(hot.sessions_of_user(ann.id, t0, 10).await.expect("sessions").len(), 2);
    let reuse = hot.rotate(rotation(&ann, first.hash, t0 + Duration::minutes(1))).await.expect("reuse");
    assert!(matches!(reuse, RotateOutcome::Refused { refusal: RefreshRefusal::Reused, .. }), "{reuse:?}");
    // revocation: one session, a client's tokens and sessions, every session of the user
    let (other, other_first) = session_of(&ann, "app", t0);
    hot.open_session(&other, &other_first).await.expect("another login");
    // a token stored twice (two instances adopting one legacy token) is a conflict, as unsplit
    let (again, _) = session_of(&ann, "app", t0);
    let twice = hot.open_session(&again, &RefreshRecord { session_id: again.id, ..other_first.clone() }).await;
    assert!(matches!(twice, Err(RepoError::Conflict("refresh_tokens_pkey"))), "{twice:?}");
    assert!(hot.revoke_session(other.id, route, "logout", t0).await.expect("logout"));
    assert_eq!(hot.expire_client_refresh_tokens(ann.id, "app", t0 + Duration::seconds(3)).await.expect("client tokens"), 3);
    hot.revoke_client_sessions(ann.id, "app", "invalidate_sessions", t0).await.expect("client sessions");
    hot.revoke_user_sessions(ann.id, None, "logout_global", t0).await.expect("global logout");
    // a token unknown on its route: no other partition is asked
    let unknown = hot.rotate(rotation(&ann, random_hash(), t0)).await.expect("unknown");
    assert!(matches!(unknown, RotateOutcome::Refused { refusal: RefreshRefusal::Unknown, .. }), "{unknown:?}");

    // what names no route waits on the other partitions' locks, and fails
    assert!(hot.refresh_by_hash(child.hash, None).await.is_err(), "a look-up without its route opened another partition");
    assert!(hot.unrouted_tokens_live(t0).await.is_err());
    locker.rollback().await.unwrap();
    assert!(hot.refresh_by_hash(child.hash, None).await.unwrap().is_some());
}
