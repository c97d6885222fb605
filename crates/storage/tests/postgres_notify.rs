//! Postgres only: every instance learns of a revocation through LISTEN/NOTIFY.

use tessera_domain::ports::{SessionRepository, UserRepository};
use tessera_domain::{Duration, Email, OffsetDateTime, Session, SessionId, TokenHash, TokenProfile, UserId};
use tessera_storage::testing::fresh_store;

#[tokio::test]
async fn revocations_are_announced_to_listeners() {
    let store = fresh_store().await.expect("a fresh database");
    let mut listener = store.revocation_listener().await.expect("listen");
    let now = OffsetDateTime::now_utc();
    let user = store.create_user(&Email::parse("n@example.com").expect("email"), None, now).await.expect("user");
    let session = Session {
        id: SessionId(uuid::Uuid::now_v7()),
        user_id: UserId(user.id.0),
        client_id: None,
        face: "native".into(),
        profile: TokenProfile::standard(),
        created_at: now,
        expires_at: now + Duration::days(1),
        last_refresh_at: None,
        ip: None,
        user_agent: None,
        revoked_at: None,
        revoked_reason: None,
        subject: None,
        dpop_jkt: None,
    };
    let first = tessera_domain::RefreshRecord {
        hash: TokenHash([5; 32]),
        session_id: session.id,
        parent: None,
        access_jti: uuid::Uuid::new_v4(),
        issued_at: now,
        expires_at: now + Duration::hours(1),
        rotated_at: None,
        sealed_secret: None,
        sealed_pair: None,
    };
    store.open_session(&session, &first).await.expect("open");
    assert!(store.revoke_session(session.id, session.user_id.route(), "logout", now).await.expect("revoke"));
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv()).await.expect("in time").expect("a notification");
    assert_eq!(n.payload(), session.id.0.to_string());
}
