//! Use-case tests over the in-memory fakes, at exact instants.

use std::sync::Arc;

use time::macros::datetime;

use super::*;
use crate::fakes::{InMemoryStore, InlineHasher, MemoryRevocations};
use crate::password::{Argon2Hasher, Argon2Params};
use crate::ports::{ClientRepository, SessionRepository, UserRepository};
use crate::secret::SecretEncoding;
use crate::{Algorithm, KeyState, SigningKey};

const T0: OffsetDateTime = datetime!(2026-05-01 09:00 UTC);

pub(super) struct World {
    pub(super) svc: TokenService,
    pub(super) store: Arc<InMemoryStore>,
    pub(super) face: Arc<Face>,
}

fn native_face() -> Face {
    Face {
        name: "native".into(),
        audience: "native".into(),
        profile: TokenProfile::standard(),
        refresh: RefreshPolicy::Rotate,
        grace: Duration::seconds(5),
        risk: vec![],
        format: Arc::new(NativeFormat { issuer: "tessera".into(), accepted_issuers: vec![], alg: Algorithm::HS256 }),
    }
}

pub(super) fn world() -> World {
    world_with(vec![native_face()])
}

fn world_with(faces: Vec<Face>) -> World {
    let store = Arc::new(InMemoryStore::default());
    let hasher = Arc::new(InlineHasher(Argon2Hasher::new(Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap()));
    let key = SigningKey::generate(Algorithm::HS256, T0).unwrap();
    let svc = TokenService::new(ServiceParts {
        store: store.clone(),
        hasher,
        revocations: Arc::new(MemoryRevocations::default()),
        notifier: None,
        keyring: Keyring::new(&[key], 0),
        refresh_hasher: KeyedHasher::new([3; 32]),
        sealer: Sealer::new([4; 32]),
        settings: TokenSettings::default(),
        faces: Faces::new(faces).unwrap(),
        limiter: None,
        events: None,
        audit: crate::audit::AuditChain::new(KeyedHasher::new([5; 32]), KeyedHasher::new([6; 32])),
    });
    let face = svc.face("native").unwrap();
    World { svc, store, face }
}

fn origin(profile: &TokenProfile) -> LoginOrigin<'_> {
    LoginOrigin { client_id: Some("app"), profile: Some(profile), ..LoginOrigin::default() }
}

pub(super) async fn logged_in(w: &World) -> IssuedPair {
    w.svc.register("ann@example.com", "correct horse".into(), T0).await.unwrap();
    w.svc.login_password(&w.face, "ann@example.com", "correct horse".into(), origin(&TokenProfile::standard()), T0).await.unwrap()
}

/// A refresh at the native face, which rotates.
pub(super) async fn rotate(
    w: &World,
    refresh: &str,
    client: Option<&str>,
    bound: Option<&str>,
    now: OffsetDateTime,
) -> Result<IssuedPair, DomainError> {
    let input = RefreshInput { client, bound_access: bound, request: RequestMeta::default(), dpop_jkt: None };
    match w.svc.refresh(&w.face, refresh, input, now).await? {
        Refreshed::Pair(p) => Ok(p),
        Refreshed::Access(_) => panic!("the native face rotates"),
    }
}

pub(super) fn auth(e: DomainError) -> AuthError {
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
async fn an_imported_hash_is_rehashed_at_login_and_its_password_can_then_be_changed() {
    let w = world();
    let pair = logged_in(&w).await;
    let ctx = w.svc.resolve_access(&w.face, &pair.access_token, T0).unwrap();
    // the user as an import leaves them: Django's hash of the same password
    let argon = w.store.user_by_id(ctx.user_id).await.unwrap().unwrap().password_hash.unwrap();
    let django = PasswordHash::from_phc("pbkdf2_sha256$1000$NaCl1234$CWSNiMVTuHI9yCPRXhcWPTEQpddbBAOBo1V3g+mOgu8=".into());
    assert!(w.store.rehash_password(ctx.user_id, &argon, &django).await.unwrap());

    // the check re-hashes it, and the change replaces the re-hash, not the imported hash
    w.svc.change_password(&ctx, "correct horse".into(), "battery staple".into(), None, T0).await.unwrap();
    let stored = w.store.user_by_id(ctx.user_id).await.unwrap().unwrap().password_hash.unwrap();
    assert!(stored.as_str().starts_with("$argon2id$"), "{}", stored.as_str());
    assert!(w.svc.check_password("ann@example.com", "battery staple".into()).await.is_ok());
    assert_eq!(auth(w.svc.check_password("ann@example.com", "correct horse".into()).await.unwrap_err()), AuthError::InvalidCredentials);
}

#[tokio::test]
async fn login_with_a_wrong_password_or_unknown_email_is_the_same_error() {
    let w = world();
    w.svc.register("ann@example.com", "correct horse".into(), T0).await.unwrap();
    let p = TokenProfile::standard();
    let a = w.svc.login_password(&w.face, "ann@example.com", "wrong horse".into(), origin(&p), T0).await.unwrap_err();
    let b = w.svc.login_password(&w.face, "bob@example.com", "correct horse".into(), origin(&p), T0).await.unwrap_err();
    assert_eq!(auth(a), AuthError::InvalidCredentials);
    assert_eq!(auth(b), AuthError::InvalidCredentials);
}

#[tokio::test]
async fn login_issues_an_access_token_that_resolves_until_it_expires() {
    let w = world();
    let pair = logged_in(&w).await;
    assert_eq!(pair.expires_in, 300);
    let ctx = w.svc.resolve_access(&w.face, &pair.access_token, T0 + Duration::seconds(299)).unwrap();
    assert_eq!(ctx.session_id, pair.session_id);
    assert_eq!(ctx.client_id.as_deref(), Some("app"));
    assert_eq!(w.svc.resolve_access(&w.face, &pair.access_token, T0 + Duration::seconds(300)), Err(AuthError::TokenExpired));
}

#[tokio::test]
async fn refresh_rotates_and_the_new_token_works_once_more() {
    let w = world();
    let p0 = logged_in(&w).await;
    let p1 = rotate(&w, &p0.refresh_token, Some("app"), None, T0 + Duration::minutes(1)).await.unwrap();
    assert_ne!(p1.refresh_token, p0.refresh_token);
    assert_eq!(p1.session_id, p0.session_id);
    let p2 = rotate(&w, &p1.refresh_token, Some("app"), None, T0 + Duration::minutes(2)).await.unwrap();
    assert_ne!(p2.refresh_token, p1.refresh_token);
}

#[tokio::test]
async fn the_parent_within_grace_gets_the_identical_pair() {
    let w = world();
    let p0 = logged_in(&w).await;
    let t = T0 + Duration::minutes(1);
    let p1 = rotate(&w, &p0.refresh_token, Some("app"), None, t).await.unwrap();
    let again = rotate(&w, &p0.refresh_token, Some("app"), None, t + Duration::seconds(5)).await.unwrap();
    assert_eq!(again.refresh_token, p1.refresh_token);
    assert_eq!(again.access_token, p1.access_token);
    // the family is intact: the child still rotates
    rotate(&w, &p1.refresh_token, Some("app"), None, t + Duration::seconds(6)).await.unwrap();
}

#[tokio::test]
async fn refresh_token_presented_after_grace_revokes_the_family() {
    let w = world();
    let p0 = logged_in(&w).await;
    let t = T0 + Duration::minutes(1);
    let p1 = rotate(&w, &p0.refresh_token, Some("app"), None, t).await.unwrap();
    let err = rotate(&w, &p0.refresh_token, Some("app"), None, t + Duration::seconds(6)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenReused);
    // the legitimate child is dead too, and so are the family's access tokens
    let err = rotate(&w, &p1.refresh_token, Some("app"), None, t + Duration::seconds(7)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenRevoked);
    assert_eq!(w.svc.resolve_access(&w.face, &p1.access_token, t + Duration::seconds(7)), Err(AuthError::TokenRevoked));
    let session = w.store.session(p0.session_id, None).await.unwrap().unwrap();
    assert_eq!(session.revoked_reason.as_deref(), Some("reuse_detected"));
}

#[tokio::test]
async fn refresh_is_refused_at_the_exact_expiry_instant() {
    let w = world();
    let p0 = logged_in(&w).await;
    let err = rotate(&w, &p0.refresh_token, Some("app"), None, T0 + Duration::hours(24)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenExpired);
    assert!(rotate(&w, &p0.refresh_token, Some("app"), None, T0 + Duration::hours(24) - Duration::seconds(1)).await.is_ok());
}

#[tokio::test]
async fn unknown_refresh_tokens_and_other_clients_are_refused() {
    let w = world();
    let p0 = logged_in(&w).await;
    let err = rotate(&w, &RefreshSecret::generate().unwrap().encode(SecretEncoding::UrlSafe), Some("app"), None, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenInvalid);
    let err = rotate(&w, &p0.refresh_token, Some("other"), None, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::WrongClient);
    // refusing for the wrong client did not consume the token
    assert!(rotate(&w, &p0.refresh_token, Some("app"), None, T0).await.is_ok());
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session_and_its_access_tokens() {
    let w = world();
    let p0 = logged_in(&w).await;
    w.svc.revoke_refresh(&w.face, &p0.refresh_token, Some("app"), T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&w.face, &p0.access_token, T0), Err(AuthError::TokenRevoked));
    let err = rotate(&w, &p0.refresh_token, Some("app"), None, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenRevoked);
    // unknown tokens are fine
    w.svc.revoke_refresh(&w.face, &RefreshSecret::generate().unwrap().encode(SecretEncoding::UrlSafe), Some("app"), T0).await.unwrap();
}

#[tokio::test]
async fn logout_scopes_revoke_the_right_sessions() {
    let w = world();
    let a = logged_in(&w).await;
    let p = TokenProfile::standard();
    let b = w.svc.login_password(&w.face, "ann@example.com", "correct horse".into(), origin(&p), T0).await.unwrap();
    let c = w.svc.login_password(&w.face, "ann@example.com", "correct horse".into(), origin(&p), T0).await.unwrap();
    let ctx_a = w.svc.resolve_access(&w.face, &a.access_token, T0).unwrap();
    w.svc.logout(&ctx_a, LogoutScope::Others, T0).await.unwrap();
    assert!(w.svc.resolve_access(&w.face, &a.access_token, T0).is_ok());
    assert_eq!(w.svc.resolve_access(&w.face, &b.access_token, T0), Err(AuthError::TokenRevoked));
    assert_eq!(w.svc.resolve_access(&w.face, &c.access_token, T0), Err(AuthError::TokenRevoked));
    w.svc.logout(&ctx_a, LogoutScope::Local, T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&w.face, &a.access_token, T0), Err(AuthError::TokenRevoked));
    let d = w.svc.login_password(&w.face, "ann@example.com", "correct horse".into(), origin(&p), T0).await.unwrap();
    let ctx_d = w.svc.resolve_access(&w.face, &d.access_token, T0).unwrap();
    w.svc.logout(&ctx_d, LogoutScope::Global, T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&w.face, &d.access_token, T0), Err(AuthError::TokenRevoked));
}

#[tokio::test]
async fn a_blocked_user_can_neither_log_in_nor_refresh() {
    let w = world();
    let p0 = logged_in(&w).await;
    w.svc.set_user_status(p0.user_id, UserStatus::Blocked, T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&w.face, &p0.access_token, T0), Err(AuthError::TokenRevoked));
    let p = TokenProfile::standard();
    let err = w.svc.login_password(&w.face, "ann@example.com", "correct horse".into(), origin(&p), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::UserBlocked);
    // a wrong password does not reveal that the account is blocked
    let err = w.svc.login_password(&w.face, "ann@example.com", "wrong horse".into(), origin(&p), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::InvalidCredentials);
    // refreshing names the block, not merely the revocation it caused
    let err = rotate(&w, &p0.refresh_token, Some("app"), None, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::UserBlocked);
    assert_eq!(auth(w.svc.check_refresh(&w.face, &p0.refresh_token, T0).await.unwrap_err()), AuthError::UserBlocked);
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
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    w.store.create_client(&client).await.unwrap();
    assert!(w.svc.authenticate_client("conf", Some("s3cret")).await.is_ok());
    assert!(w.svc.authenticate_client("conf", Some("wrong")).await.is_err());
    assert!(w.svc.authenticate_client("conf", None).await.is_err());
    assert!(w.svc.authenticate_client("nobody", None).await.is_err());
}

#[tokio::test]
async fn a_client_gets_only_the_scopes_and_audiences_it_may_ask_for() {
    let w = world();
    let mut client = OAuthClient {
        client_id: crate::ClientId::parse("reports").unwrap(),
        name: "r".into(),
        secret_hash: Some(w.svc.secret_hash(b"s3cret")),
        profile: "standard".into(),
        created_at: T0,
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["reports-api".into()],
        require_dpop: false,
        exchange_types: vec![],
    };
    let ttl = Duration::minutes(5);
    let issue = |c: &OAuthClient, scope, audience| {
        w.svc.client_credentials(&w.face, c, ttl, ClientTokenRequest { scope, audience, dpop_jkt: None }, T0)
    };
    let all = issue(&client, None, None).unwrap();
    assert_eq!((all.scope.as_str(), all.audience.as_str(), all.expires_in), ("read write", "reports-api", 300));
    // asked twice, granted once, in the order asked
    assert_eq!(issue(&client, Some("write read write"), Some("reports-api")).unwrap().scope, "write read");
    assert_eq!(issue(&client, Some("admin"), None).unwrap_err().to_string(), DomainError::from(AuthError::ScopeNotAllowed).to_string());
    assert!(matches!(issue(&client, None, Some("other")), Err(DomainError::Auth(AuthError::AudienceNotAllowed))));
    // the token reads back as a client's, and never as a user's
    let claims = w.face.format.read_client_access(&w.svc.keyring, &all.access_token, T0).unwrap();
    assert_eq!((claims.sub.as_str(), claims.aud.as_str(), claims.scope.as_deref()), ("reports", "reports-api", Some("read write")));
    assert!(w.svc.resolve_access(&w.face, &all.access_token, T0).is_err());
    assert!(w.face.format.read_client_access(&w.svc.keyring, &all.access_token, T0 + Duration::minutes(6)).is_err(), "expired");

    client.audiences.push("billing-api".into());
    assert!(matches!(issue(&client, None, None), Err(DomainError::Auth(AuthError::AudienceNotAllowed))), "several: one must be named");
    assert_eq!(issue(&client, None, Some("billing-api")).unwrap().audience, "billing-api");
    for refused in [
        OAuthClient { secret_hash: None, ..client.clone() },
        OAuthClient { audiences: vec![], ..client.clone() },
        OAuthClient { client_id: crate::ClientId::parse("7").unwrap(), ..client.clone() },
    ] {
        assert!(matches!(issue(&refused, None, Some("billing-api")), Err(DomainError::Auth(AuthError::UnauthorizedClient))));
    }
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
    rotate(&w, &p0.refresh_token, Some("app"), None, T0).await.unwrap();
    let family = w.store.family(p0.session_id).await.unwrap();
    assert_eq!(family.len(), 2);
    assert_eq!(family.iter().filter(|t| t.sealed_secret.is_some()).count(), 1);
    assert_eq!(family.iter().filter(|t| t.rotated_at.is_none()).count(), 1);
}

#[tokio::test]
async fn a_bound_pair_refreshes_only_with_its_own_access_token() {
    let w = world();
    let p0 = logged_in(&w).await;
    let other =
        w.svc.login_password(&w.face, "ann@example.com", "correct horse".into(), origin(&TokenProfile::standard()), T0).await.unwrap();
    let err = rotate(&w, &p0.refresh_token, Some("app"), Some(&other.access_token), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::PairMismatch);
    let p1 = rotate(&w, &p0.refresh_token, Some("app"), Some(&p0.access_token), T0).await.unwrap();
    // another pair's access token is refused for the new refresh token
    let err = rotate(&w, &p1.refresh_token, Some("app"), Some(&p0.access_token), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::PairMismatch);
}

#[tokio::test]
async fn check_refresh_accepts_a_live_token_without_rotating_it() {
    let w = world();
    let p0 = logged_in(&w).await;
    for _ in 0..2 {
        let (record, session, user) = w.svc.check_refresh(&w.face, &p0.refresh_token, T0).await.unwrap();
        assert_eq!((record.access_jti, session.id, user.id), (p0.access_jti, p0.session_id, p0.user_id));
    }
    assert_eq!(auth(w.svc.check_refresh(&w.face, &p0.refresh_token, T0 + Duration::hours(24)).await.unwrap_err()), AuthError::TokenExpired);
    w.svc.revoke_session(p0.session_id, p0.user_id, "logout", T0).await.unwrap();
    assert_eq!(auth(w.svc.check_refresh(&w.face, &p0.refresh_token, T0).await.unwrap_err()), AuthError::TokenRevoked);
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
    w.svc.revoke_token(&w.face, &p0.refresh_token, "other", T0).await.unwrap();
    w.svc.revoke_token(&w.face, &p0.access_token, "other", T0).await.unwrap();
    w.svc.revoke_token(&w.face, "garbage", "app", T0).await.unwrap();
    assert!(w.svc.resolve_access(&w.face, &p0.access_token, T0).is_ok());
    w.svc.revoke_token(&w.face, &p0.access_token, "app", T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&w.face, &p0.access_token, T0), Err(AuthError::TokenRevoked));
    let p1 = w.svc.login_password(&w.face, "ann@example.com", "correct horse".into(), origin(&TokenProfile::standard()), T0).await.unwrap();
    w.svc.revoke_token(&w.face, &p1.refresh_token, "app", T0).await.unwrap();
    assert_eq!(w.svc.resolve_access(&w.face, &p1.access_token, T0), Err(AuthError::TokenRevoked));
}

fn face(name: &str, audience: &str, refresh: RefreshPolicy) -> Face {
    Face { name: name.into(), audience: audience.into(), refresh, ..native_face() }
}

async fn pair_at(w: &World, face: &str) -> IssuedPair {
    if w.svc.check_password("ann@example.com", "correct horse".into()).await.is_err() {
        w.svc.register("ann@example.com", "correct horse".into(), T0).await.unwrap();
    }
    let f = w.svc.face(face).unwrap();
    w.svc.login_password(&f, "ann@example.com", "correct horse".into(), LoginOrigin::default(), T0).await.unwrap()
}

#[tokio::test]
async fn a_reuse_face_refreshes_again_and_again_with_one_refresh_token() {
    let w = world_with(vec![native_face(), face("sj", "sj", RefreshPolicy::Reuse)]);
    let sj = w.svc.face("sj").unwrap();
    let p0 = pair_at(&w, "sj").await;
    let mut seen = std::collections::HashSet::new();
    for minute in 1..=3 {
        let r = w.svc.refresh(&sj, &p0.refresh_token, RefreshInput::default(), T0 + Duration::minutes(minute)).await.unwrap();
        let Refreshed::Access(a) = r else { panic!("a reuse face answers an access token only") };
        assert_eq!(a.session_id, p0.session_id);
        assert!(w.svc.resolve_access(&sj, &a.access_token, T0 + Duration::minutes(minute)).is_ok());
        assert!(seen.insert(a.access_token));
    }
    assert_eq!(w.store.family(p0.session_id).await.unwrap().len(), 1, "nothing was rotated");
    // until it expires, or is revoked
    let late = w.svc.refresh(&sj, &p0.refresh_token, RefreshInput::default(), T0 + Duration::hours(24)).await.unwrap_err();
    assert_eq!(auth(late), AuthError::TokenExpired);
    w.svc.logout_refresh(&sj, &p0.refresh_token, T0).await.unwrap();
    let gone = w.svc.refresh(&sj, &p0.refresh_token, RefreshInput::default(), T0).await.unwrap_err();
    assert_eq!(auth(gone), AuthError::TokenRevoked);
}

/// A face that rotates beside a peer that reuses (simplejwt beside djoser, as `make bench` runs
/// them): its own tokens rotate without being read first, since the rotation reads the token's
/// session anyway and tells whose it is; a reusing peer's token is refreshed as that peer
/// refreshes, with the answers it gave before, refusals included.
#[tokio::test]
async fn a_rotating_face_learns_a_tokens_policy_inside_the_rotation() {
    let w = world_with(vec![native_face(), face("sj", "django", RefreshPolicy::Rotate), face("dj", "django", RefreshPolicy::Reuse)]);
    let (sj, dj) = (w.svc.face("sj").unwrap(), w.svc.face("dj").unwrap());
    // its own token: rotated, and no lookup besides the rotation's own read
    let own = pair_at(&w, "sj").await;
    let reads = w.store.refresh_reads();
    let Refreshed::Pair(next) = w.svc.refresh(&sj, &own.refresh_token, RefreshInput::default(), T0).await.unwrap() else {
        panic!("sj rotates its own tokens")
    };
    assert_eq!(w.store.refresh_reads(), reads, "the rotation alone read the token");
    let err = w.svc.refresh(&sj, &own.refresh_token, RefreshInput::default(), T0 + Duration::seconds(10)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenReused, "reuse after the window is still caught");
    assert_eq!(auth(w.svc.refresh(&sj, &next.refresh_token, RefreshInput::default(), T0).await.unwrap_err()), AuthError::TokenRevoked);

    // the peer's token: an access token only, nothing rotated, and read once, then kept
    let theirs = pair_at(&w, "dj").await;
    let reads = w.store.refresh_reads();
    for second in 1..=3 {
        let at = T0 + Duration::seconds(second);
        let r = w.svc.refresh(&sj, &theirs.refresh_token, RefreshInput::default(), at).await.unwrap();
        let Refreshed::Access(a) = r else { panic!("a reusing peer's token is never rotated") };
        assert_eq!(a.session_id, theirs.session_id);
        assert!(w.svc.resolve_access(&sj, &a.access_token, at).is_ok());
    }
    assert_eq!(w.store.refresh_reads(), reads + 1, "read once, then answered from memory");
    assert_eq!(w.store.family(theirs.session_id).await.unwrap().len(), 1, "nothing was rotated");
    assert!(w.svc.refresh(&dj, &theirs.refresh_token, RefreshInput::default(), T0).await.is_ok(), "and it lives on at its face");

    // refusals as the reusing face gives them: a revoked session, then a blocked user
    let revoked = pair_at(&w, "dj").await;
    w.svc.revoke_session(revoked.session_id, revoked.user_id, "logout", T0).await.unwrap();
    let err = w.svc.refresh(&sj, &revoked.refresh_token, RefreshInput::default(), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenRevoked);
    let blocked = pair_at(&w, "dj").await;
    w.svc.set_user_status(blocked.user_id, UserStatus::Blocked, T0).await.unwrap();
    let err = w.svc.refresh(&sj, &blocked.refresh_token, RefreshInput::default(), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::UserBlocked);
    let err = w.svc.refresh(&sj, &theirs.refresh_token, RefreshInput::default(), T0 + Duration::minutes(4)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::UserBlocked, "the token kept in memory hears the block");
}

#[tokio::test]
async fn every_face_refuses_other_faces_tokens_except_within_its_group() {
    let w = world_with(vec![native_face(), face("a", "django", RefreshPolicy::Rotate), face("b", "django", RefreshPolicy::Rotate)]);
    let (native, a, b) = (w.face.clone(), w.svc.face("a").unwrap(), w.svc.face("b").unwrap());
    let at_native = pair_at(&w, "native").await;
    let at_a = pair_at(&w, "a").await;
    // access tokens
    assert_eq!(w.svc.resolve_access(&a, &at_native.access_token, T0), Err(AuthError::WrongAudience));
    assert_eq!(w.svc.resolve_access(&native, &at_a.access_token, T0), Err(AuthError::WrongAudience));
    assert!(w.svc.resolve_access(&b, &at_a.access_token, T0).is_ok(), "one group accepts each other's tokens");
    // refresh tokens, opaque ones included: the session's face decides
    let err = w.svc.refresh(&a, &at_native.refresh_token, RefreshInput::default(), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::WrongAudience);
    let err = rotate(&w, &at_a.refresh_token, None, None, T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::WrongAudience);
    assert!(w.svc.refresh(&b, &at_a.refresh_token, RefreshInput::default(), T0).await.is_ok());
    // revocation at the wrong face changes nothing
    w.svc.revoke_refresh(&a, &at_native.refresh_token, None, T0).await.unwrap();
    assert!(w.svc.resolve_access(&native, &at_native.access_token, T0).is_ok());
}

#[tokio::test]
async fn a_risk_rule_decided_in_the_rotation_revokes_every_session_of_the_user() {
    let mut strict = face("m", "m", RefreshPolicy::Rotate);
    strict.risk = vec![
        crate::RiskRule { when: crate::RiskCondition::IpChanged, then: crate::RiskAction::Notify },
        crate::RiskRule { when: crate::RiskCondition::UserAgentChanged, then: crate::RiskAction::RevokeUser },
    ];
    let w = world_with(vec![native_face(), strict]);
    let m = w.svc.face("m").unwrap();
    w.svc.register("ann@example.com", "correct horse".into(), T0).await.unwrap();
    let device = RequestMeta { ip: Some("10.0.0.1".into()), user_agent: Some("app/1".into()) };
    let login = |req: RequestMeta| LoginOrigin { request: req, ..LoginOrigin::default() };
    let p0 = w.svc.login_password(&m, "ann@example.com", "correct horse".into(), login(device.clone()), T0).await.unwrap();
    let other = pair_at(&w, "native").await;
    // a new address is only reported, and becomes the session's reference
    let moved = RequestMeta { ip: Some("10.0.0.2".into()), user_agent: Some("app/1".into()) };
    let input = |req: RequestMeta| RefreshInput { request: req, ..RefreshInput::default() };
    let Refreshed::Pair(p1) = w.svc.refresh(&m, &p0.refresh_token, input(moved.clone()), T0).await.unwrap() else { panic!() };
    assert_eq!(w.store.session(p0.session_id, None).await.unwrap().unwrap().ip.as_deref(), Some("10.0.0.2"));
    // a new User-Agent ends every session of the user, here and at other faces
    let thief = RequestMeta { ip: Some("10.0.0.2".into()), user_agent: Some("curl/8".into()) };
    let err = w.svc.refresh(&m, &p1.refresh_token, input(thief), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::RiskRefused { condition: crate::RiskCondition::UserAgentChanged, revoked: true });
    assert_eq!(w.svc.resolve_access(&w.face, &other.access_token, T0), Err(AuthError::TokenRevoked));
    let err = w.svc.refresh(&m, &p1.refresh_token, input(moved), T0).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenRevoked);
}

#[tokio::test]
async fn the_revocation_horizon_covers_the_longest_access_lifetime_of_any_face() {
    let mut long = face("drf", "drf", RefreshPolicy::Rotate);
    long.profile = TokenProfile::new("drf", Duration::hours(10), Duration::days(90)).unwrap();
    let w = world_with(vec![native_face(), long]);
    assert_eq!(w.svc.faces().longest_access_ttl(), Duration::hours(10));
}

#[tokio::test]
async fn introspection_tells_live_tokens_of_every_face_and_nothing_of_dead_ones() {
    let w = world_with(vec![native_face(), face("sj", "django", RefreshPolicy::Reuse)]);
    let native = pair_at(&w, "native").await;
    let sj = pair_at(&w, "sj").await;
    let a = w.svc.introspect(&native.access_token, T0).await.unwrap().unwrap();
    assert_eq!((a.token_type, a.face.as_str(), a.audience.as_str(), a.user_id), ("access_token", "native", "native", native.user_id));
    assert_eq!(a.expires_at, (T0 + Duration::minutes(5)).unix_timestamp());
    let r = w.svc.introspect(&sj.refresh_token, T0).await.unwrap().unwrap();
    assert_eq!((r.token_type, r.face.as_str(), r.session_id), ("refresh_token", "sj", Some(sj.session_id)));
    // expired, revoked, unknown, garbage: nothing
    assert!(w.svc.introspect(&native.access_token, T0 + Duration::minutes(5)).await.unwrap().is_none());
    assert!(w.svc.introspect("garbage", T0).await.unwrap().is_none());
    w.svc.revoke_session(native.session_id, native.user_id, "logout", T0).await.unwrap();
    assert!(w.svc.introspect(&native.access_token, T0).await.unwrap().is_none());
    assert!(w.svc.introspect(&native.refresh_token, T0).await.unwrap().is_none());
}

#[tokio::test]
async fn a_sealed_secret_is_kept_only_while_its_grace_window_is_open() {
    let w = world();
    let p0 = logged_in(&w).await;
    let t = T0 + Duration::minutes(1);
    let p1 = rotate(&w, &p0.refresh_token, Some("app"), None, t).await.unwrap();
    // within the window nothing is dropped, and the parent still gets the same pair
    assert_eq!(w.svc.sweep_sealed_secrets(t + Duration::seconds(2)).await.unwrap(), 0);
    assert_eq!(rotate(&w, &p0.refresh_token, Some("app"), None, t + Duration::seconds(3)).await.unwrap().refresh_token, p1.refresh_token);
    // after it, the secret is gone from the store; the child itself still refreshes
    assert_eq!(w.svc.sweep_sealed_secrets(t + Duration::seconds(7)).await.unwrap(), 1);
    assert!(w.store.family(p0.session_id).await.unwrap().iter().all(|r| r.sealed_secret.is_none()));
    assert!(rotate(&w, &p1.refresh_token, Some("app"), None, t + Duration::seconds(8)).await.is_ok());
}

#[tokio::test]
async fn a_rotation_whose_answer_a_failover_lost_is_a_retry_not_reuse() {
    let w = world();
    let p0 = logged_in(&w).await;
    let t = T0 + Duration::minutes(1);
    // the rotation commits, and its answer is lost with the primary: the client gets an error
    w.store.lose_next_rotation_answer();
    assert!(matches!(rotate(&w, &p0.refresh_token, Some("app"), None, t).await, Err(DomainError::Repo(crate::RepoError::Unavailable(_)))));
    // the database is back 20 s later, past the 5 s window: what a retry needs was kept, and the
    // old token gets the child the lost rotation made, as often as it is retried
    let back = t + Duration::seconds(20);
    assert_eq!(w.svc.sweep_sealed_secrets(back).await.unwrap(), 0);
    let p1 = rotate(&w, &p0.refresh_token, Some("app"), None, back).await.unwrap();
    let again = rotate(&w, &p0.refresh_token, Some("app"), None, back + Duration::seconds(1)).await.unwrap();
    assert_eq!((again.refresh_token.as_str(), again.access_token.as_str()), (p1.refresh_token.as_str(), p1.access_token.as_str()));
    assert_eq!(w.store.family(p0.session_id).await.unwrap().len(), 2);
    // once the child is used, the old token is reuse, as anywhere else
    rotate(&w, &p1.refresh_token, Some("app"), None, back + Duration::seconds(2)).await.unwrap();
    let err = rotate(&w, &p0.refresh_token, Some("app"), None, back + Duration::seconds(3)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenReused);

    // and the widened window closes: two minutes after the last failure, a late retry is reuse
    let w = world();
    let p0 = logged_in(&w).await;
    w.store.lose_next_rotation_answer();
    assert!(rotate(&w, &p0.refresh_token, Some("app"), None, t).await.is_err());
    let err = rotate(&w, &p0.refresh_token, Some("app"), None, t + Duration::seconds(121)).await.unwrap_err();
    assert_eq!(auth(err), AuthError::TokenReused);
}

/// The native format, reading simplejwt's legacy tokens of a Django deployment besides.
struct NativeWithLegacy(NativeFormat, crate::LegacyKey);

impl TokenFormat for NativeWithLegacy {
    fn render_access(&self, k: &Keyring, aud: &str, s: &Session, jti: Uuid, at: OffsetDateTime) -> Result<String, DomainError> {
        self.0.render_access(k, aud, s, jti, at)
    }
    fn render_refresh(
        &self,
        k: &Keyring,
        aud: &str,
        s: &Session,
        r: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<String, DomainError> {
        self.0.render_refresh(k, aud, s, r, secret)
    }
    fn read_access(&self, k: &Keyring, token: &str, now: Option<OffsetDateTime>) -> Result<AccessView, AuthError> {
        self.0.read_access(k, token, now)
    }
    fn read_refresh(&self, k: &Keyring, token: &str, now: OffsetDateTime) -> Result<RefreshView, AuthError> {
        self.0.read_refresh(k, token, now)
    }
    fn read_legacy(&self, token: &str, kind: TokenKind, now: OffsetDateTime) -> Option<Result<LegacyToken, AuthError>> {
        self.1.read(token, kind, "token_type", &["user_id"], now)
    }
}

/// Shown with the `tokens` fuzz target (fuzz/): a legacy refresh token issued near the end of time
/// (`iat` in the year 9999) made its session's cap, `iat + max_session_lifetime`, panic, at
/// introspection and at adoption. Its session now lives until the token's own `exp`.
#[tokio::test]
async fn a_legacy_token_issued_at_the_end_of_time_is_adopted_without_a_panic() {
    let secret = b"legacy-django-secret";
    let Some(key) = crate::LegacyKey::hmac(secret, Algorithm::HS256, crate::ORIGIN_DJANGO) else { panic!("an HMAC key") };
    let w = world_with(vec![Face {
        format: Arc::new(NativeWithLegacy(NativeFormat { issuer: "tessera".into(), accepted_issuers: vec![], alg: Algorithm::HS256 }, key)),
        ..native_face()
    }]);
    let user = User {
        id: UserId(1),
        email: Email::parse("ann@example.com").unwrap(),
        password_hash: None,
        status: crate::UserStatus::Active,
        created_at: T0,
        password_changed_at: None,
    };
    w.store.import_user(&user, crate::ORIGIN_DJANGO).await.unwrap();
    w.store.finish_import(crate::ORIGIN_DJANGO, T0).await.unwrap();
    let end = datetime!(9999-12-31 23:59:59 UTC).unix_timestamp();
    let claims = serde_json::json!({
        "token_type": "refresh", "exp": end, "iat": end - 60, "jti": "f864e65a5d58419888a79b50caf1362a", "user_id": 1
    });
    let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap();
    let seen = w.svc.introspect(&token, T0).await.unwrap().unwrap();
    assert_eq!((seen.token_type, seen.expires_at), ("refresh_token", end));
    let (record, session, _) = w.svc.check_refresh(&w.face, &token, T0).await.unwrap();
    assert_eq!((record.expires_at.unix_timestamp(), session.expires_at.unix_timestamp()), (end, end));
}

/// Refuses every attempt: each is throttled.
struct Always;

impl crate::throttle::AttemptLimiter for Always {
    fn check(&self, _address: &str) -> Result<(), std::time::Duration> {
        Err(std::time::Duration::from_secs(30))
    }
}

/// Counts the WARN events of the code run under it.
struct Warnings(Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Found beside the registration flood below: every failed login wrote a WARN line, and every
/// login refused because the account is locked out at the address, which costs no hash, did too.
/// A spray now writes what it writes in the audit trail: the first failure of the window.
#[tokio::test]
async fn a_password_spray_writes_a_log_line_per_window_not_per_guess() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::layer::SubscriberExt as _;
    let warnings = Arc::new(AtomicUsize::new(0));
    let _logging = tracing::subscriber::set_default(tracing_subscriber::registry().with(Warnings(warnings.clone())));
    let mut w = world();
    w.svc.settings.failed_login_window = Duration::minutes(1);
    w.svc.register("ann@example.com", "correct horse".into(), T0).await.unwrap();
    let profile = TokenProfile::standard();
    let from = LoginOrigin { request: RequestMeta { ip: Some("10.0.0.1".into()), user_agent: None }, ..origin(&profile) };
    for i in 0..40 {
        let at = T0 + Duration::milliseconds(i);
        // other accounts (failures) and ann's (failures, then a lockout at this address)
        let email = if i % 2 == 0 { format!("nobody{i}@example.com") } else { "ann@example.com".to_owned() };
        assert!(w.svc.login_password(&w.face, &email, "wrong guess".into(), from.clone(), at).await.is_err());
    }
    assert_eq!(warnings.load(Ordering::Relaxed), 2, "the window's first failure, and the first refusal of the locked account");
}

/// `make soak` found a registration flood from one address writing a log line per refused
/// request, 24,000 a second: the log grew as fast as the flood. One line per address and minute
/// now, as in the audit trail.
#[tokio::test]
async fn a_flood_of_throttled_attempts_writes_one_log_line_per_address_and_minute() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::layer::SubscriberExt as _;
    let warnings = Arc::new(AtomicUsize::new(0));
    let _logging = tracing::subscriber::set_default(tracing_subscriber::registry().with(Warnings(warnings.clone())));
    let mut w = world();
    w.svc.limiter = Some(Arc::new(Always));
    for i in 0..50 {
        let at = T0 + Duration::milliseconds(i);
        let err = w.svc.register_from(&format!("flood{i}@example.com"), "correct horse".into(), Some("10.66.0.1"), at).await.unwrap_err();
        assert!(matches!(err, DomainError::Throttled { .. }), "{err:?}");
        let err = w.svc.register_from(&format!("other{i}@example.com"), "correct horse".into(), Some("10.66.0.2"), at).await.unwrap_err();
        assert!(matches!(err, DomainError::Throttled { .. }), "{err:?}");
    }
    assert_eq!(warnings.load(Ordering::Relaxed), 2, "one line for each of the two addresses");
    let later = T0 + Duration::minutes(1) + Duration::seconds(1);
    assert!(w.svc.register_from("again@example.com", "correct horse".into(), Some("10.66.0.1"), later).await.is_err());
    assert_eq!(warnings.load(Ordering::Relaxed), 3, "and one more a minute later");
}

/// The native format with a refresh token that is a JWT carrying its secret, as simplejwt's is.
struct JwtRefresh(NativeFormat);

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct RefreshJwt {
    secret: String,
    exp: i64,
}

impl crate::keys::TimedClaims for RefreshJwt {
    fn exp(&self) -> i64 {
        self.exp
    }
}

impl TokenFormat for JwtRefresh {
    fn render_access(&self, k: &Keyring, aud: &str, s: &Session, jti: Uuid, at: OffsetDateTime) -> Result<String, DomainError> {
        self.0.render_access(k, aud, s, jti, at)
    }
    fn render_refresh(&self, k: &Keyring, _: &str, _: &Session, r: &RefreshRecord, secret: &RefreshSecret) -> Result<String, DomainError> {
        let claims = RefreshJwt { secret: secret.encode(crate::secret::SecretEncoding::UrlSafe), exp: r.expires_at.unix_timestamp() };
        k.sign(Algorithm::HS256, "JWT", &claims)
    }
    fn read_access(&self, k: &Keyring, token: &str, now: Option<OffsetDateTime>) -> Result<AccessView, AuthError> {
        self.0.read_access(k, token, now)
    }
    fn read_refresh(&self, k: &Keyring, token: &str, now: OffsetDateTime) -> Result<RefreshView, AuthError> {
        let claims: RefreshJwt = k.verify(token, &[Algorithm::HS256], now)?;
        let secret = RefreshSecret::parse(&claims.secret, crate::secret::SecretEncoding::UrlSafe).ok_or(AuthError::TokenInvalid)?;
        Ok(RefreshView { secret, audience: None })
    }
}

/// A refresh JWT is read once and then spent by its rotation: the keyring remembers the claims of
/// the tokens it verified (`Ring::claims`), and a spent refresh token, whose claims hold its
/// secret, is forgotten then rather than when evicted. One that is only checked stays remembered.
#[tokio::test]
async fn a_refresh_jwt_spent_by_a_rotation_is_not_kept_in_memory() {
    let format = NativeFormat { issuer: "tessera".into(), accepted_issuers: vec![], alg: Algorithm::HS256 };
    let w = world_with(vec![Face { format: Arc::new(JwtRefresh(format)), ..native_face() }]);
    let p0 = logged_in(&w).await;
    w.svc.check_refresh(&w.face, &p0.refresh_token, T0).await.unwrap();
    assert!(w.svc.keyring.remembers(&p0.refresh_token), "a token checked and not spent is remembered");
    let p1 = rotate(&w, &p0.refresh_token, Some("app"), None, T0).await.unwrap();
    assert!(!w.svc.keyring.remembers(&p0.refresh_token));
    // a retry within the grace window reads it again, gets the same pair, and forgets it again
    let again = rotate(&w, &p0.refresh_token, Some("app"), None, T0 + Duration::seconds(1)).await.unwrap();
    assert_eq!(again.refresh_token, p1.refresh_token);
    assert!(!w.svc.keyring.remembers(&p0.refresh_token));
    // and the child rotates in its turn
    let p2 = rotate(&w, &p1.refresh_token, Some("app"), None, T0 + Duration::seconds(2)).await.unwrap();
    assert_ne!(p2.refresh_token, p1.refresh_token);
    assert!(!w.svc.keyring.remembers(&p1.refresh_token));
}
