//! Use-case tests over the in-memory fakes, at exact instants.

use std::sync::Arc;

use time::macros::datetime;

use super::*;
use crate::fakes::{InMemoryStore, InlineHasher, MemoryRevocations};
use crate::password::{Argon2Hasher, Argon2Params};
use crate::ports::{ClientRepository, SessionRepository, UserRepository};
use crate::{KeyState, SigningKey};

const T0: OffsetDateTime = datetime!(2026-05-01 09:00 UTC);

struct World {
    svc: TokenService,
    store: Arc<InMemoryStore>,
    fmt: NativeFormat,
}

fn world() -> World {
    let store = Arc::new(InMemoryStore::default());
    let hasher = Arc::new(InlineHasher(Argon2Hasher::new(Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap()));
    let key = SigningKey::generate(Algorithm::HS256, T0).unwrap();
    let svc = TokenService::new(
        store.clone(),
        hasher,
        Arc::new(MemoryRevocations::default()),
        Keyring::new(&[key], 0),
        KeyedHasher::new([3; 32]),
        Sealer::new([4; 32]),
        TokenSettings::default(),
    );
    let fmt = svc.native_format();
    World { svc, store, fmt }
}

fn origin(profile: &TokenProfile) -> LoginOrigin<'_> {
    LoginOrigin { client_id: Some("app"), face: "native", profile, ip: None, user_agent: None, subject: None }
}

async fn logged_in(w: &World) -> IssuedPair {
    w.svc.register("ann@example.com", "correct horse".into(), T0).await.unwrap();
    w.svc.login_password("ann@example.com", "correct horse".into(), origin(&TokenProfile::standard()), &w.fmt, T0).await.unwrap()
}

fn auth(e: DomainError) -> AuthError {
    match e {
        DomainError::Auth(a) => a,
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[tokio::test]
async fn register_refuses_a_taken_email_case_insensitively() {
    let w = world();
    w.svc.register("Ann@Example.com", "correct horse".into(), T0).await.unwrap();
    let err = w.svc.register("ann@EXAMPLE.com", "another one".into(), T0).await.unwrap_err();
    assert!(matches!(err, DomainError::EmailTaken));
}

#[tokio::test]
async fn register_stores_an_argon2id_hash_not_the_password() {
    let w = world();
    let u = w.svc.register("ann@example.com", "correct horse".into(), T0).await.unwrap();
    let stored = w.store.user_by_id(u.id).await.unwrap().unwrap();
    let hash = stored.password_hash.unwrap();
    assert!(hash.as_str().starts_with("$argon2id$"));
    assert!(!hash.as_str().contains("correct horse"));
}

#[tokio::test]
async fn login_with_a_wrong_password_or_unknown_email_is_the_same_error() {
    let w = world();
    w.svc.register("ann@example.com", "correct horse".into(), T0).await.unwrap();
    let p = TokenProfile::standard();
    let a = w.svc.login_password("ann@example.com", "wrong horse".into(), origin(&p), &w.fmt, T0).await.unwrap_err();
    let b = w.svc.login_password("bob@example.com", "correct horse".into(), origin(&p), &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(a), AuthError::InvalidCredentials);
    assert_eq!(auth(b), AuthError::InvalidCredentials);
}

#[tokio::test]
async fn login_issues_an_access_token_that_resolves_until_it_expires() {
    let w = world();
    let pair = logged_in(&w).await;
    assert_eq!(pair.expires_in, 300);
    let ctx = w.svc.resolve_access(&pair.access_token, T0 + Duration::seconds(299)).unwrap();
    assert_eq!(ctx.session_id, pair.session_id);
    assert_eq!(ctx.client_id.as_deref(), Some("app"));
    assert_eq!(w.svc.resolve_access(&pair.access_token, T0 + Duration::seconds(300)), Err(AuthError::TokenExpired));
}

#[tokio::test]
async fn refresh_rotates_and_the_new_token_works_once_more() {
    let w = world();
    let p0 = logged_in(&w).await;
    let p1 = w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, T0 + Duration::minutes(1)).await.unwrap();
    assert_ne!(p1.refresh_token, p0.refresh_token);
    assert_eq!(p1.session_id, p0.session_id);
    let p2 = w.svc.refresh(&p1.refresh_secret, Some("app"), None, &w.fmt, T0 + Duration::minutes(2)).await.unwrap();
    assert_ne!(p2.refresh_token, p1.refresh_token);
}

#[tokio::test]
async fn the_parent_within_grace_gets_the_identical_pair() {
    let w = world();
    let p0 = logged_in(&w).await;
    let t = T0 + Duration::minutes(1);
    let p1 = w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, t).await.unwrap();
    let again = w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, t + Duration::seconds(5)).await.unwrap();
    assert_eq!(again.refresh_token, p1.refresh_token);
    assert_eq!(again.access_token, p1.access_token);
    // the family is intact: the child still rotates
    w.svc.refresh(&p1.refresh_secret, Some("app"), None, &w.fmt, t + Duration::seconds(6)).await.unwrap();
}

#[tokio::test]
async fn refresh_token_presented_after_grace_revokes_the_family() {
    let w = world();
    let p0 = logged_in(&w).await;
    let t = T0 + Duration::minutes(1);
    let p1 = w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, t).await.unwrap();
    let err = w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, t + Duration::seconds(6)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenReused);
    // the legitimate child is dead too, and so are the family's access tokens
    let err = w.svc.refresh(&p1.refresh_secret, Some("app"), None, &w.fmt, t + Duration::seconds(7)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenRevoked);
    assert_eq!(w.svc.resolve_access(&p1.access_token, t + Duration::seconds(7)), Err(AuthError::TokenRevoked));
    let session = w.store.session(p0.session_id).await.unwrap().unwrap();
    assert_eq!(session.revoked_reason.as_deref(), Some("reuse_detected"));
}

#[tokio::test]
async fn refresh_is_refused_at_the_exact_expiry_instant() {
    let w = world();
    let p0 = logged_in(&w).await;
    let err = w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, T0 + Duration::hours(24)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenExpired);
    assert!(w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, T0 + Duration::hours(24) - Duration::seconds(1)).await.is_ok());
}

#[tokio::test]
async fn unknown_refresh_tokens_and_other_clients_are_refused() {
    let w = world();
    let p0 = logged_in(&w).await;
    let err = w.svc.refresh(&RefreshSecret::generate().unwrap(), Some("app"), None, &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenInvalid);
    let err = w.svc.refresh(&p0.refresh_secret, Some("other"), None, &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::WrongClient);
    // refusing for the wrong client did not consume the token
    assert!(w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, T0).await.is_ok());
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session_and_its_access_tokens() {
    let w = world();
    let p0 = logged_in(&w).await;
    w.svc.revoke_refresh(&p0.refresh_secret, Some("app"), T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&p0.access_token, T0), Err(AuthError::TokenRevoked));
    let err = w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenRevoked);
    // unknown tokens are fine
    w.svc.revoke_refresh(&RefreshSecret::generate().unwrap(), Some("app"), T0).await.unwrap();
}

#[tokio::test]
async fn logout_scopes_revoke_the_right_sessions() {
    let w = world();
    let a = logged_in(&w).await;
    let p = TokenProfile::standard();
    let b = w.svc.login_password("ann@example.com", "correct horse".into(), origin(&p), &w.fmt, T0).await.unwrap();
    let c = w.svc.login_password("ann@example.com", "correct horse".into(), origin(&p), &w.fmt, T0).await.unwrap();
    let ctx_a = w.svc.resolve_access(&a.access_token, T0).unwrap();
    w.svc.logout(&ctx_a, LogoutScope::Others, T0).await.unwrap();
    assert!(w.svc.resolve_access(&a.access_token, T0).is_ok());
    assert_eq!(w.svc.resolve_access(&b.access_token, T0), Err(AuthError::TokenRevoked));
    assert_eq!(w.svc.resolve_access(&c.access_token, T0), Err(AuthError::TokenRevoked));
    w.svc.logout(&ctx_a, LogoutScope::Local, T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&a.access_token, T0), Err(AuthError::TokenRevoked));
    let d = w.svc.login_password("ann@example.com", "correct horse".into(), origin(&p), &w.fmt, T0).await.unwrap();
    let ctx_d = w.svc.resolve_access(&d.access_token, T0).unwrap();
    w.svc.logout(&ctx_d, LogoutScope::Global, T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&d.access_token, T0), Err(AuthError::TokenRevoked));
}

#[tokio::test]
async fn a_blocked_user_can_neither_log_in_nor_refresh() {
    let w = world();
    let p0 = logged_in(&w).await;
    w.svc.set_user_status(p0.user_id, UserStatus::Blocked, T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&p0.access_token, T0), Err(AuthError::TokenRevoked));
    let p = TokenProfile::standard();
    let err = w.svc.login_password("ann@example.com", "correct horse".into(), origin(&p), &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::UserBlocked);
    // a wrong password does not reveal that the account is blocked
    let err = w.svc.login_password("ann@example.com", "wrong horse".into(), origin(&p), &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::InvalidCredentials);
    // refreshing names the block, not merely the revocation it caused
    let err = w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::UserBlocked);
    assert_eq!(auth(w.svc.check_refresh(&p0.refresh_secret, T0).await.unwrap_err()), AuthError::UserBlocked);
}

#[tokio::test]
async fn confidential_clients_must_present_their_secret() {
    let w = world();
    let hash = w.svc.secret_hash(b"s3cret");
    let client = OAuthClient {
        client_id: crate::ClientId::parse("conf").unwrap(),
        name: "c".into(),
        secret_hash: Some(hash),
        profile: "standard".into(),
        created_at: T0,
    };
    w.store.create_client(&client).await.unwrap();
    assert!(w.svc.authenticate_client("conf", Some("s3cret")).await.is_ok());
    assert!(w.svc.authenticate_client("conf", Some("wrong")).await.is_err());
    assert!(w.svc.authenticate_client("conf", None).await.is_err());
    assert!(w.svc.authenticate_client("nobody", None).await.is_err());
}

#[tokio::test]
async fn access_tokens_signed_by_a_retired_key_still_verify_but_next_keys_do_not_sign() {
    let mut k = SigningKey::generate(Algorithm::HS256, T0).unwrap();
    k.state = KeyState::Next;
    let ring = Keyring::new(&[k], 0);
    assert!(!ring.can_sign(Algorithm::HS256));
}

#[tokio::test]
async fn rotated_tokens_drop_their_sealed_secret() {
    let w = world();
    let p0 = logged_in(&w).await;
    w.svc.refresh(&p0.refresh_secret, Some("app"), None, &w.fmt, T0).await.unwrap();
    let family = w.store.family(p0.session_id).await.unwrap();
    assert_eq!(family.len(), 2);
    assert_eq!(family.iter().filter(|t| t.sealed_secret.is_some()).count(), 1);
    assert_eq!(family.iter().filter(|t| t.rotated_at.is_none()).count(), 1);
}

#[tokio::test]
async fn a_bound_pair_refreshes_only_with_its_own_access_token() {
    let w = world();
    let p0 = logged_in(&w).await;
    let err = w.svc.refresh(&p0.refresh_secret, Some("app"), Some(Uuid::new_v4()), &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::PairMismatch);
    let p1 = w.svc.refresh(&p0.refresh_secret, Some("app"), Some(p0.access_jti), &w.fmt, T0).await.unwrap();
    // another pair's access token is refused for the new refresh token
    let err = w.svc.refresh(&p1.refresh_secret, Some("app"), Some(p0.access_jti), &w.fmt, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::PairMismatch);
}

#[tokio::test]
async fn check_refresh_accepts_a_live_token_without_rotating_it() {
    let w = world();
    let p0 = logged_in(&w).await;
    for _ in 0..2 {
        let (record, session, user) = w.svc.check_refresh(&p0.refresh_secret, T0).await.unwrap();
        assert_eq!((record.access_jti, session.id, user.id), (p0.access_jti, p0.session_id, p0.user_id));
    }
    assert_eq!(auth(w.svc.check_refresh(&p0.refresh_secret, T0 + Duration::hours(24)).await.unwrap_err()), AuthError::TokenExpired);
    w.svc.revoke_session(p0.session_id, "logout", T0).await.unwrap();
    assert_eq!(auth(w.svc.check_refresh(&p0.refresh_secret, T0).await.unwrap_err()), AuthError::TokenRevoked);
}

#[tokio::test]
async fn an_external_identity_maps_to_one_local_user() {
    let w = world();
    let a = w.svc.user_for_identity("medods", "64842", T0).await.unwrap();
    let b = w.svc.user_for_identity("medods", "64842", T0).await.unwrap();
    let c = w.svc.user_for_identity("medods", "1", T0).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_ne!(a.id, c.id);
    assert!(a.password_hash.is_none());
    assert!(a.email.as_str().ends_with("@identities.invalid"));
}

#[tokio::test]
async fn revoke_token_ends_the_session_of_either_token_of_the_client_only() {
    let w = world();
    let p0 = logged_in(&w).await;
    // another client's revocation changes nothing, and says nothing
    w.svc.revoke_token(&p0.refresh_token, "other", T0).await.unwrap();
    w.svc.revoke_token(&p0.access_token, "other", T0).await.unwrap();
    w.svc.revoke_token("garbage", "app", T0).await.unwrap();
    assert!(w.svc.resolve_access(&p0.access_token, T0).is_ok());
    w.svc.revoke_token(&p0.access_token, "app", T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&p0.access_token, T0), Err(AuthError::TokenRevoked));
    let p1 = w.svc.login_password("ann@example.com", "correct horse".into(), origin(&TokenProfile::standard()), &w.fmt, T0).await.unwrap();
    w.svc.revoke_token(&p1.refresh_token, "app", T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&p1.access_token, T0), Err(AuthError::TokenRevoked));
}
