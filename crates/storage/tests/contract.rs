//! The repository contract: every storage behaviour, written once and run against both
//! backends (Postgres and SQLite), a fresh database per test, and against the domain's
//! in-memory fake, so that the unit tests that run on it run on a store that behaves alike.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly; clippy counts only #[test] fns as tests")]

use std::sync::Arc;

use tessera_domain::audit::{AuditChain, ChainPoint, NewAuditEvent, Sealing};
use tessera_domain::ports::{NewRefresh, RotateOutcome, RotateRequest, Store};
use tessera_domain::rotation::RefreshRefusal;
use tessera_domain::{
    ClientId, Duration, Email, KeyState, KeyedHasher, OAuthClient, OffsetDateTime, PasswordHash, RefreshRecord, RepoError, RequestMeta,
    RiskAction, RiskCondition, RiskRule, Session, SessionId, TokenHash, TokenProfile, User, UserStatus,
};
use uuid::Uuid;

fn now() -> OffsetDateTime {
    // Postgres keeps microseconds; round so values compare equal after a round trip.
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.microsecond() * 1000).unwrap()
}

async fn user(store: &dyn Store, email: &str) -> User {
    store.create_user(&Email::parse(email).unwrap(), Some(&PasswordHash::from_phc("$argon2id$fake".into())), now()).await.unwrap()
}

async fn client(store: &dyn Store, id: &str) {
    let c = OAuthClient {
        client_id: ClientId::parse(id).unwrap(),
        name: id.into(),
        secret_hash: None,
        profile: "standard".into(),
        created_at: now(),
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    store.create_client(&c).await.unwrap();
}

use tessera_storage::testing::random_hash;

async fn open(store: &dyn Store, u: &User, t0: OffsetDateTime) -> (Session, RefreshRecord) {
    let (session, first) = unopened(store, u, t0).await;
    store.open_session(&session, &first).await.unwrap();
    (session, first)
}

/// A session of `u` and its first token, not yet stored.
async fn unopened(store: &dyn Store, u: &User, t0: OffsetDateTime) -> (Session, RefreshRecord) {
    client(store, &format!("c{}", Uuid::new_v4().simple())).await;
    tessera_storage::testing::session_of(u.id, None, t0)
}

/// What the use-case seals as a rotation's answer; here a marker, the same for every child.
fn sealed_answer(_: &Session, child: &RefreshRecord) -> Result<Vec<u8>, RepoError> {
    Ok([b"answer:".as_slice(), child.hash.0.as_slice()].concat())
}

fn child_req(route: tessera_domain::Route, presented: TokenHash, now: OffsetDateTime, grace: Duration) -> RotateRequest<'static> {
    let h = random_hash();
    RotateRequest {
        presented,
        route,
        presenting_client: None,
        now,
        grace,
        child: NewRefresh { hash: h, sealed_secret: vec![1; 56], access_jti: Uuid::new_v4() },
        bound_access: None,
        faces: None,
        not_rotated: &[],
        request: &NO_REQUEST,
        rules: &[],
        dpop_jkt: None,
        seal_answer: &sealed_answer,
    }
}

static NO_REQUEST: RequestMeta = RequestMeta { ip: None, user_agent: None };

async fn emails_are_unique_case_insensitively(store: Arc<dyn Store>) {
    user(&*store, "Ann@Example.com").await;
    let err = store.create_user(&Email::parse("ann@EXAMPLE.COM").unwrap(), None, now()).await.unwrap_err();
    assert!(matches!(err, RepoError::Conflict("users_email_key")), "{err:?}");
    let found = store.user_by_email(&Email::parse("ANN@example.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(found.email.as_str(), "Ann@Example.com");
    assert_eq!(found.status, UserStatus::Active);
}

async fn imported_users_keep_their_ids_and_later_ids_go_above_them(store: Arc<dyn Store>) {
    let first = user(&*store, "first@example.com").await;
    let imported = User {
        id: tessera_domain::UserId(first.id.0 + 40),
        email: Email::parse("django@example.com").unwrap(),
        password_hash: Some(PasswordHash::from_phc("pbkdf2_sha256$1000$salt$hash".into())),
        status: UserStatus::Blocked,
        created_at: now(),
        password_changed_at: None,
    };
    assert!(store.import_user(&imported, "django").await.unwrap());
    assert!(!store.import_user(&imported, "django").await.unwrap(), "a second import of the same id changes nothing");
    let back = store.user_by_id(imported.id).await.unwrap().unwrap();
    assert_eq!(
        (back.email.as_str(), back.status, back.password_hash.as_ref()),
        ("django@example.com", UserStatus::Blocked, imported.password_hash.as_ref())
    );
    let taken = User { id: tessera_domain::UserId(first.id.0 + 50), email: Email::parse("FIRST@example.com").unwrap(), ..imported.clone() };
    assert!(matches!(store.import_user(&taken, "django").await.unwrap_err(), RepoError::Conflict("users_email_key")));
    let next = user(&*store, "next@example.com").await;
    assert!(next.id.0 > imported.id.0, "{:?} must be above the imported {:?}", next.id, imported.id);

    // issue 22 item 8: the hashes still to be re-hashed are listed, in id order, from `after` on
    let listed = store.stale_password_hashes("$argon2id$", 0, 100).await.unwrap();
    assert_eq!(listed, vec![(imported.id, imported.password_hash.clone().unwrap())], "only the imported pbkdf2 hash");
    assert!(store.stale_password_hashes("$argon2id$", imported.id.0, 100).await.unwrap().is_empty());
    assert!(store.stale_password_hashes("pbkdf2_sha256$1000$", 0, 100).await.unwrap().iter().all(|(id, _)| *id != imported.id));
    let new_hash = PasswordHash::from_phc("$argon2id$new".into());
    let stale = PasswordHash::from_phc("not the current one".into());
    assert!(!store.rehash_password(imported.id, &stale, &new_hash).await.unwrap(), "a changed hash is not replaced");
    assert_eq!(store.user_by_id(imported.id).await.unwrap().unwrap().password_hash, imported.password_hash, "only the hash it replaces");
    assert!(store.rehash_password(imported.id, imported.password_hash.as_ref().unwrap(), &new_hash).await.unwrap());
    assert_eq!(store.user_by_id(imported.id).await.unwrap().unwrap().password_hash, Some(new_hash));
    assert!(store.stale_password_hashes("$argon2id$", 0, 100).await.unwrap().is_empty(), "re-hashed: no longer stale");
}

/// Issue 21: an imported id that a user registered here has is a conflict, never "present"; a
/// user answers to the legacy tokens of its own deployment only; the id sequence moves past every
/// id the old deployment gave out; an import is finished only when it says so.
async fn an_imported_id_never_speaks_for_a_user_registered_here(store: Arc<dyn Store>) {
    use tessera_domain::UserId;
    let native = user(&*store, "native@example.com").await;
    let django = |id: i64, email: &str| User {
        id: UserId(id),
        email: Email::parse(email).unwrap(),
        password_hash: None,
        status: UserStatus::Active,
        created_at: now(),
        password_changed_at: None,
    };
    // the old deployment's user with the native user's id, and another e-mail
    let err = store.import_user(&django(native.id.0, "legacy@example.com"), "django").await.unwrap_err();
    assert!(matches!(err, RepoError::Conflict("users_pkey")), "{err:?}");
    assert_eq!(store.user_by_id(native.id).await.unwrap().unwrap().email.as_str(), "native@example.com", "nothing changed");
    // the same id and e-mail, but registered here: still not the old deployment's user
    let err = store.import_user(&django(native.id.0, "native@example.com"), "django").await.unwrap_err();
    assert!(matches!(err, RepoError::Conflict("users_pkey")), "{err:?}");
    assert!(store.user_from("django", native.id).await.unwrap().is_none(), "a user registered here answers to no legacy token");

    let carried = django(native.id.0 + 10, "carried@example.com");
    assert!(store.import_user(&carried, "django").await.unwrap());
    assert!(store.user_from("django", carried.id).await.unwrap().is_some());
    assert!(store.user_from("flask", carried.id).await.unwrap().is_none(), "not a user of another deployment");
    let err = store.import_user(&carried, "flask").await.unwrap_err();
    assert!(matches!(err, RepoError::Conflict("users_pkey")), "the same id from another deployment: {err:?}");

    // ids the old deployment gave out (its deleted users' too) are never given out again
    store.reserve_user_ids(native.id.0 + 100).await.unwrap();
    store.reserve_user_ids(native.id.0 + 20).await.unwrap();
    let next = user(&*store, "next@example.com").await;
    assert!(next.id.0 > native.id.0 + 100, "{:?}", next.id);
    assert!(store.user_from("django", next.id).await.unwrap().is_none());

    // finished only when finished; a run started again does not unfinish it
    assert!(!store.import_finished("django").await.unwrap());
    store.start_import("django", now()).await.unwrap();
    assert!(!store.import_finished("django").await.unwrap());
    store.finish_import("django", now()).await.unwrap();
    assert!(store.import_finished("django").await.unwrap());
    store.start_import("django", now()).await.unwrap();
    assert!(store.import_finished("django").await.unwrap());
    assert!(!store.import_finished("flask").await.unwrap());

    // a deleted user answers to no legacy token
    store.delete_user(carried.id, now()).await.unwrap();
    assert!(store.user_from("django", carried.id).await.unwrap().is_none());
}

async fn failed_logins_lock_the_address_then_the_account_but_never_the_owners_address(store: Arc<dyn Store>) {
    let t0 = now();
    let policy =
        tessera_domain::LockoutPolicy { threshold: 5, account_threshold: 20, base_seconds: 30, max_seconds: 900, reset_seconds: 3600 };
    store.login_succeeded("ann@example.com", "198.51.100.9", t0).await.unwrap();
    for i in 0..4 {
        assert_eq!(store.login_failed("ann@example.com", "203.0.113.7", t0 + Duration::seconds(i), &policy).await.unwrap(), None);
    }
    let lock = store.login_failed("ann@example.com", "203.0.113.7", t0 + Duration::seconds(4), &policy).await.unwrap();
    assert_eq!(lock, Some(t0 + Duration::seconds(34)), "the fifth failure locks the address for base_seconds");
    assert_eq!(store.login_lock("ann@example.com", "203.0.113.7", t0 + Duration::seconds(5)).await.unwrap(), lock);
    assert_eq!(
        store.login_lock("ann@example.com", "192.0.2.1", t0 + Duration::seconds(5)).await.unwrap(),
        None,
        "other addresses are free"
    );
    assert_eq!(store.login_lock("ann@example.com", "203.0.113.7", t0 + Duration::seconds(35)).await.unwrap(), None, "the lock passes");

    // twenty failures from as many addresses lock the account at every address but the owner's
    for i in 0..20 {
        store.login_failed("ann@example.com", &format!("192.0.2.{i}"), t0 + Duration::seconds(10), &policy).await.unwrap();
    }
    let at = t0 + Duration::seconds(11);
    assert!(store.login_lock("ann@example.com", "192.0.2.200", at).await.unwrap().is_some());
    assert_eq!(store.login_lock("ann@example.com", "198.51.100.9", at).await.unwrap(), None);
    assert_eq!(store.login_lock("bob@example.com", "192.0.2.200", at).await.unwrap(), None, "other accounts are free");

    // concurrent failures are all counted: the lock's length gives the count
    let wide = tessera_domain::LockoutPolicy {
        threshold: 5,
        account_threshold: 1000,
        base_seconds: 1,
        max_seconds: u32::MAX,
        reset_seconds: 3600,
    };
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.login_failed("cy@example.com", "203.0.113.9", t0, &wide).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let lock = store.login_lock("cy@example.com", "203.0.113.9", t0).await.unwrap().unwrap();
    assert_eq!(lock - t0, Duration::seconds(1 << 15), "20 failures: 2^(20-5) seconds");
    // ann: the owner, the attacker, 20 addresses and the account row; cy: an address and the account row
    assert_eq!(store.prune_login_attempts(t0 + Duration::seconds(3600)).await.unwrap(), 25, "every row older than the cut");
}

async fn a_password_login_opens_its_session_and_forgets_the_addresss_failures_in_one_write(store: Arc<dyn Store>) {
    let u = user(&*store, "dee@example.com").await;
    let t0 = now();
    let policy =
        tessera_domain::LockoutPolicy { threshold: 5, account_threshold: 20, base_seconds: 30, max_seconds: 900, reset_seconds: 3600 };
    for i in 0..4 {
        assert_eq!(store.login_failed("dee@example.com", "203.0.113.8", t0 + Duration::seconds(i), &policy).await.unwrap(), None);
    }
    let (session, first) = unopened(&*store, &u, t0 + Duration::seconds(5)).await;
    store.open_session_after_login(&session, &first, "dee@example.com", "203.0.113.8").await.unwrap();
    let (_, stored) = store.refresh_by_hash(first.hash, None).await.unwrap().unwrap();
    assert_eq!(stored.id, session.id);
    // the four failures are forgotten: four more do not lock (a fifth in a row would)
    for i in 6..10 {
        assert_eq!(store.login_failed("dee@example.com", "203.0.113.8", t0 + Duration::seconds(i), &policy).await.unwrap(), None);
    }
    // and the address is the owner's: an account-wide lock spares it
    for i in 0..20 {
        store.login_failed("dee@example.com", &format!("192.0.2.{i}"), t0 + Duration::seconds(10), &policy).await.unwrap();
    }
    let at = t0 + Duration::seconds(11);
    assert!(store.login_lock("dee@example.com", "192.0.2.200", at).await.unwrap().is_some());
    assert_eq!(store.login_lock("dee@example.com", "203.0.113.8", at).await.unwrap(), None);
}

async fn a_session_round_trips_and_its_token_rotates_once(store: Arc<dyn Store>) {
    let u = user(&*store, "a@example.com").await;
    let t0 = now();
    let (session, first) = open(&*store, &u, t0).await;
    let (tok, sess) = store.refresh_by_hash(first.hash, None).await.unwrap().unwrap();
    assert_eq!(sess.id, session.id);
    assert_eq!(sess.profile, TokenProfile::standard());
    assert_eq!(tok.expires_at, first.expires_at);

    let req = child_req(u.id.route(), first.hash, t0 + Duration::minutes(1), Duration::seconds(5));
    let new_hash = req.child.hash;
    let RotateOutcome::Rotated { child, .. } = store.rotate(req).await.unwrap() else { panic!("expected a rotation") };
    assert_eq!(child.hash, new_hash);
    assert_eq!(child.parent, Some(first.hash));
    let family = store.family(session.id).await.unwrap();
    assert_eq!(family.len(), 2);
    let parent = family.iter().find(|t| t.hash == first.hash).unwrap();
    assert!(parent.rotated_at.is_some());
    assert!(parent.sealed_secret.is_none(), "a rotated token keeps no sealed secret");
}

/// A token of a face named as not rotated is refused before anything else is decided, and
/// nothing is written: the caller refreshes it by reuse instead (see `RefreshFacts::not_rotated`).
async fn a_token_of_a_face_that_reuses_is_left_as_it_was(store: Arc<dyn Store>) {
    let u = user(&*store, "a@example.com").await;
    let t0 = now();
    let (session, first) = open(&*store, &u, t0).await;
    let not_rotated = [session.face.clone()];
    let at = t0 + Duration::minutes(1);
    let outcome =
        store.rotate(RotateRequest { not_rotated: &not_rotated, ..child_req(u.id.route(), first.hash, at, Duration::seconds(5)) }).await;
    assert!(
        matches!(outcome, Ok(RotateOutcome::Refused { refusal: RefreshRefusal::NotRotated, session: Some(s), ref revoked }) if s == session.id && revoked.is_empty()),
        "{outcome:?}"
    );
    let family = store.family(session.id).await.unwrap();
    assert_eq!(family.len(), 1, "no child");
    assert!(family[0].rotated_at.is_none() && family[0].sealed_secret.is_some(), "the token is as it was");
    let (_, sess) = store.refresh_by_hash(first.hash, Some(u.id.route())).await.unwrap().unwrap();
    assert_eq!(sess.last_refresh_at, session.last_refresh_at, "the session is as it was");
    // another face's list changes nothing: the same token then rotates
    let others = ["elsewhere".to_owned()];
    let outcome =
        store.rotate(RotateRequest { not_rotated: &others, ..child_req(u.id.route(), first.hash, at, Duration::seconds(5)) }).await;
    assert!(matches!(outcome, Ok(RotateOutcome::Rotated { .. })), "{outcome:?}");
}

async fn a_rotations_sealed_answer_is_kept_through_the_grace_window_and_then_dropped(store: Arc<dyn Store>) {
    let u = user(&*store, "grace@example.com").await;
    let t0 = now();
    let (session, first) = open(&*store, &u, t0).await;
    let at = t0 + Duration::minutes(1);
    let RotateOutcome::Rotated { child, .. } = store.rotate(child_req(u.id.route(), first.hash, at, Duration::seconds(5))).await.unwrap()
    else {
        panic!("expected a rotation")
    };
    let answer = sealed_answer(&session, &child).unwrap();
    assert_eq!(child.sealed_pair.as_deref(), Some(answer.as_slice()), "the rotation stores what the use-case sealed");
    // the parent again, within the window: the child as stored, its answer with it
    let again = store.rotate(child_req(u.id.route(), first.hash, at + Duration::seconds(2), Duration::seconds(5))).await.unwrap();
    let RotateOutcome::Reissued { child: reissued, .. } = again else { panic!("expected the same child: {again:?}") };
    assert_eq!((reissued.hash, reissued.sealed_pair.as_deref()), (child.hash, Some(answer.as_slice())));
    // the child rotated in turn: it keeps neither its secret nor its answer
    let RotateOutcome::Rotated { child: grandchild, .. } =
        store.rotate(child_req(u.id.route(), child.hash, at + Duration::seconds(10), Duration::seconds(5))).await.unwrap()
    else {
        panic!("expected a rotation")
    };
    let family = store.family(session.id).await.unwrap();
    let stored = family.iter().find(|t| t.hash == child.hash).unwrap();
    assert_eq!((stored.sealed_secret.as_deref(), stored.sealed_pair.as_deref()), (None, None));
    // the newest keeps both until its window has passed, then the sweep drops both
    let newest = family.iter().find(|t| t.hash == grandchild.hash).unwrap();
    assert!(newest.sealed_secret.is_some() && newest.sealed_pair.is_some());
    store.drop_sealed_secrets(at + Duration::minutes(1)).await.unwrap();
    let family = store.family(session.id).await.unwrap();
    assert!(family.iter().all(|t| t.sealed_secret.is_none() && t.sealed_pair.is_none()), "{family:?}");
}

async fn fifty_concurrent_rotations_of_one_token_rotate_once_and_return_one_child(store: Arc<dyn Store>) {
    let u = user(&*store, "race@example.com").await;
    let t0 = now();
    let (session, first) = open(&*store, &u, t0).await;
    let mut tasks = vec![];
    for _ in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.rotate(child_req(u.id.route(), first.hash, now(), Duration::seconds(30))).await }));
    }
    let (mut rotated, mut reissued, mut children) = (0, 0, std::collections::HashSet::new());
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RotateOutcome::Rotated { child, .. } => {
                rotated += 1;
                children.insert(child.hash);
            }
            RotateOutcome::Reissued { child, .. } => {
                reissued += 1;
                children.insert(child.hash);
            }
            RotateOutcome::Refused { refusal, .. } => panic!("unexpected refusal {refusal:?}"),
        }
    }
    assert_eq!(rotated, 1);
    assert_eq!(reissued, 49);
    assert_eq!(children.len(), 1, "every caller got the same child");
    let family = store.family(session.id).await.unwrap();
    assert_eq!(family.len(), 2);
    assert_eq!(family.iter().filter(|t| t.rotated_at.is_none()).count(), 1);
}

async fn without_grace_a_concurrent_second_use_revokes_the_family(store: Arc<dyn Store>) {
    let u = user(&*store, "nograce@example.com").await;
    let (session, first) = open(&*store, &u, now()).await;
    let mut tasks = vec![];
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.rotate(child_req(u.id.route(), first.hash, now(), Duration::ZERO)).await }));
    }
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RotateOutcome::Rotated { .. } => rotated += 1,
            RotateOutcome::Refused { refusal, .. } => {
                assert!(matches!(refusal, RefreshRefusal::Reused | RefreshRefusal::Revoked), "{refusal:?}")
            }
            RotateOutcome::Reissued { .. } => panic!("no grace, no reissue"),
        }
    }
    assert_eq!(rotated, 1);
    let s = store.session(session.id, None).await.unwrap().unwrap();
    assert_eq!(s.revoked_reason.as_deref(), Some("reuse_detected"));
}

async fn revocations_are_recorded_once(store: Arc<dyn Store>) {
    let u = user(&*store, "n@example.com").await;
    let (session, _) = open(&*store, &u, now()).await;
    assert!(store.revoke_session(session.id, session.user_id.route(), "logout", now()).await.unwrap());
    assert!(!store.revoke_session(session.id, session.user_id.route(), "logout", now()).await.unwrap(), "second revocation is a no-op");
    let since = store.revoked_since(now() - Duration::minutes(1)).await.unwrap();
    assert!(since.iter().any(|(id, _)| *id == session.id));
    assert!(store.revoked_since(now() + Duration::minutes(1)).await.unwrap().is_empty());
    let s = store.session(session.id, None).await.unwrap().unwrap();
    assert_eq!(s.revoked_reason.as_deref(), Some("logout"));
}

async fn emails_compare_case_insensitively_beyond_ascii(store: Arc<dyn Store>) {
    user(&*store, "Ärger@Example.com").await;
    let found = store.user_by_email(&Email::parse("ärger@example.COM").unwrap()).await.unwrap();
    assert_eq!(found.map(|u| u.email.as_str().to_owned()).as_deref(), Some("Ärger@Example.com"));
    let err = store.create_user(&Email::parse("ÄRGER@example.com").unwrap(), None, now()).await.unwrap_err();
    assert!(matches!(err, RepoError::Conflict("users_email_key")), "{err:?}");
}

async fn unknown_tokens_and_sessions_are_absent(store: Arc<dyn Store>) {
    assert!(store.refresh_by_hash(random_hash(), None).await.unwrap().is_none());
    assert!(store.session(SessionId(Uuid::now_v7()), None).await.unwrap().is_none());
    assert!(matches!(
        store.rotate(child_req(tessera_domain::Route(0), random_hash(), now(), Duration::seconds(5))).await.unwrap(),
        RotateOutcome::Refused { refusal: RefreshRefusal::Unknown, .. }
    ));
    store.ping().await.unwrap();
}

async fn blocking_a_user_revokes_every_session_in_the_same_transaction(store: Arc<dyn Store>) {
    let u = user(&*store, "b@example.com").await;
    let (s1, _) = open(&*store, &u, now()).await;
    let (s2, _) = open(&*store, &u, now()).await;
    let other = user(&*store, "other@example.com").await;
    let (s3, _) = open(&*store, &other, now()).await;
    let mut revoked = store.set_user_status(u.id, UserStatus::Blocked, now()).await.unwrap();
    revoked.sort_by_key(|s| s.0);
    let mut expected = vec![s1.id, s2.id];
    expected.sort_by_key(|s| s.0);
    assert_eq!(revoked, expected);
    assert!(store.session(s3.id, None).await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(store.user_by_id(u.id).await.unwrap().unwrap().status, UserStatus::Blocked);
    assert!(matches!(store.set_user_status(tessera_domain::UserId(999_999), UserStatus::Blocked, now()).await, Err(RepoError::NotFound)));
}

async fn revoke_user_sessions_can_spare_one(store: Arc<dyn Store>) {
    let u = user(&*store, "o@example.com").await;
    let (keep, _) = open(&*store, &u, now()).await;
    let (drop1, _) = open(&*store, &u, now()).await;
    let ids = store.revoke_user_sessions(u.id, Some(keep.id), "logout_others", now()).await.unwrap();
    assert_eq!(ids, vec![drop1.id]);
    assert!(store.session(keep.id, None).await.unwrap().unwrap().revoked_at.is_none());
}

async fn concurrent_instances_agree_on_one_signing_key(store: Arc<dyn Store>) {
    let mut tasks = vec![];
    for i in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = tessera_domain::ports::StoredKey {
                kid: format!("kid{i}"),
                alg: "HS256".into(),
                state: KeyState::Active,
                sealed_secret: vec![i; 40],
                created_at: now(),
                activated_at: None,
                retired_at: None,
            };
            store.ensure_signing_key(&key).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
}

async fn clients_are_unique_and_keep_their_secret_hash(store: Arc<dyn Store>) {
    let c = OAuthClient {
        client_id: ClientId::parse("conf").unwrap(),
        name: "Conf".into(),
        secret_hash: Some(random_hash()),
        profile: "extended".into(),
        created_at: now(),
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    store.create_client(&c).await.unwrap();
    assert!(matches!(store.create_client(&c).await, Err(RepoError::Conflict("clients_pkey"))));
    let back = store.client_by_id("conf").await.unwrap().unwrap();
    assert_eq!(back.secret_hash, c.secret_hash);
    assert_eq!(back.profile, "extended");
    assert!(store.client_by_id("nobody").await.unwrap().is_none());
}

async fn a_rotation_records_the_request_and_risk_rules_revoke_in_its_transaction(store: Arc<dyn Store>) {
    let u = user(&*store, "risk@example.com").await;
    let t0 = now();
    let (session, first) = open(&*store, &u, t0).await;
    let (other, _) = open(&*store, &u, t0).await;
    let rules = [
        RiskRule { when: RiskCondition::IpChanged, then: RiskAction::Notify },
        RiskRule { when: RiskCondition::UserAgentChanged, then: RiskAction::RevokeUser },
    ];
    // a new address: rotated, reported, and recorded on the session
    let moved = RequestMeta { ip: Some("10.1.1.1".into()), user_agent: Some("test".into()) };
    let faces = ["native".to_owned()];
    let mut req = child_req(u.id.route(), first.hash, t0, Duration::ZERO);
    req.request = &moved;
    req.rules = &rules;
    req.faces = Some(&faces);
    let RotateOutcome::Rotated { child, signals, session: after } = store.rotate(req).await.unwrap() else { panic!("expected a rotation") };
    assert_eq!(signals.len(), 1);
    assert_eq!(after.ip.as_deref(), Some("10.1.1.1"));
    assert_eq!(store.session(session.id, None).await.unwrap().unwrap().ip.as_deref(), Some("10.1.1.1"));
    // another face's sessions are not this face's to refresh
    let medods = ["medods".to_owned()];
    let mut req = child_req(u.id.route(), child.hash, t0, Duration::ZERO);
    req.faces = Some(&medods);
    assert!(matches!(store.rotate(req).await.unwrap(), RotateOutcome::Refused { refusal: RefreshRefusal::WrongFace, .. }));
    // a new User-Agent: every session of the user ends, in the rotation's transaction
    let thief = RequestMeta { ip: Some("10.1.1.1".into()), user_agent: Some("curl/8".into()) };
    let mut req = child_req(u.id.route(), child.hash, t0, Duration::ZERO);
    req.request = &thief;
    req.rules = &rules;
    let RotateOutcome::Refused { refusal, revoked, .. } = store.rotate(req).await.unwrap() else { panic!("expected a refusal") };
    assert_eq!(refusal, RefreshRefusal::RiskRevoked(RiskCondition::UserAgentChanged));
    assert_eq!(revoked.len(), 2);
    for id in [session.id, other.id] {
        assert_eq!(store.session(id, None).await.unwrap().unwrap().revoked_reason.as_deref(), Some("user_agent_changed"));
    }
}

async fn concurrent_schedulers_make_one_key_change_per_step(store: Arc<dyn Store>) {
    use tessera_domain::key_schedule::{KeyChange, KeySchedule};
    let schedule = KeySchedule { period: Duration::days(30), publish_ahead: Duration::minutes(15), keep_retired: Duration::hours(10) };
    let t0 = now();
    let first = tessera_domain::ports::StoredKey {
        kid: "first".into(),
        alg: "ES256".into(),
        state: KeyState::Active,
        sealed_secret: vec![1; 40],
        created_at: t0,
        activated_at: Some(t0),
        retired_at: None,
    };
    store.ensure_signing_key(&first).await.unwrap();
    let run = |at: OffsetDateTime| {
        let store = store.clone();
        async move {
            let mut tasks = vec![];
            for i in 0..8u8 {
                let store = store.clone();
                let candidate = tessera_domain::ports::StoredKey {
                    kid: format!("cand-{at}-{i}"),
                    state: KeyState::Next,
                    sealed_secret: vec![i; 40],
                    ..first_like(at)
                };
                tasks.push(tokio::spawn(async move { store.schedule_keys(&candidate, at, &schedule).await.unwrap() }));
            }
            let mut all = vec![];
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        }
    };
    assert!(run(t0 + Duration::days(1)).await.is_empty(), "nothing due");
    let published = run(t0 + Duration::days(30) - Duration::minutes(15)).await;
    assert_eq!(published, [KeyChange::Publish], "eight instances, one next key");
    let activated = run(t0 + Duration::days(30)).await;
    assert_eq!(activated.len(), 1, "{activated:?}");
    let keys = store.signing_keys().await.unwrap();
    let state = |kid: &str| keys.iter().find(|k| k.kid == kid).map(|k| k.state);
    assert_eq!(state("first"), Some(KeyState::Retired));
    assert_eq!(keys.iter().filter(|k| k.state == KeyState::Active).count(), 1);
    let dropped = run(t0 + Duration::days(30) + Duration::hours(10)).await;
    assert_eq!(dropped, [KeyChange::Drop("first".into())]);
    assert_eq!(state_after(&*store, "first").await, None);
}

fn first_like(at: OffsetDateTime) -> tessera_domain::ports::StoredKey {
    tessera_domain::ports::StoredKey {
        kid: String::new(),
        alg: "ES256".into(),
        state: KeyState::Next,
        sealed_secret: vec![],
        created_at: at,
        activated_at: None,
        retired_at: None,
    }
}

async fn state_after(store: &dyn Store, kid: &str) -> Option<KeyState> {
    store.signing_keys().await.unwrap().into_iter().find(|k| k.kid == kid).map(|k| k.state)
}

async fn users_list_in_id_order_and_a_set_password_is_stored(store: Arc<dyn Store>) {
    let a = user(&*store, "a@example.com").await;
    let b = user(&*store, "b@example.com").await;
    let c = user(&*store, "c@example.com").await;
    let ids = |us: Vec<User>| us.iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_users(0, 100).await.unwrap()), vec![a.id, b.id, c.id]);
    assert_eq!(ids(store.list_users(a.id.0, 1).await.unwrap()), vec![b.id]);
    let t = now();
    let hash = PasswordHash::from_phc("$argon2id$new".into());
    assert!(store.set_password(b.id, &hash, t).await.unwrap());
    let back = store.user_by_id(b.id).await.unwrap().unwrap();
    assert_eq!((back.password_hash, back.password_changed_at), (Some(hash.clone()), Some(t)));
    assert!(!store.set_password(tessera_domain::UserId(999_999), &hash, t).await.unwrap());
}

async fn deleting_a_user_revokes_its_sessions_erases_it_and_frees_the_address(store: Arc<dyn Store>) {
    let u = user(&*store, "gone@example.com").await;
    let (s1, _) = open(&*store, &u, now()).await;
    let (s2, _) = open(&*store, &u, now()).await;
    let other = user(&*store, "stays@example.com").await;
    let (s3, _) = open(&*store, &other, now()).await;
    let mut revoked = store.delete_user(u.id, now()).await.unwrap();
    revoked.sort_by_key(|s| s.0);
    let mut expected = vec![s1.id, s2.id];
    expected.sort_by_key(|s| s.0);
    assert_eq!(revoked, expected);
    // the sessions stay, revoked, so every instance hears of them
    assert_eq!(store.session(s1.id, None).await.unwrap().unwrap().revoked_reason.as_deref(), Some("user_deleted"));
    assert!(store.session(s3.id, None).await.unwrap().unwrap().revoked_at.is_none());
    let tomb = store.user_by_id(u.id).await.unwrap().unwrap();
    assert_eq!((tomb.status, tomb.password_hash.is_none()), (UserStatus::Blocked, true));
    assert!(!tomb.email.to_string().contains("gone"), "the address is erased: {}", tomb.email);
    assert!(store.user_by_email(&Email::parse("gone@example.com").unwrap()).await.unwrap().is_none());
    let again = user(&*store, "gone@example.com").await;
    assert!(again.id.0 > u.id.0, "a new id");
    assert!(matches!(store.delete_user(tessera_domain::UserId(999_999), now()).await, Err(RepoError::NotFound)));
}

/// The placeholder address a deleted user gets may already be some row's (registered before
/// registration refused `.invalid`): the deletion still succeeds, and that row keeps it.
async fn deleting_a_user_whose_placeholder_address_is_taken_still_succeeds(store: Arc<dyn Store>) {
    user(&*store, "filler@example.com").await; // an id without a 1, which the skeleton makes an l
    let u = user(&*store, "victim@example.com").await;
    let squatter = user(&*store, Email::deleted(u.id).as_str()).await;
    assert_eq!(Email::deleted(u.id).normalized(), Email::deleted(u.id).as_str(), "the key a deletion used to write");
    store.delete_user(u.id, now()).await.unwrap();
    let tomb = store.user_by_id(u.id).await.unwrap().unwrap();
    assert_eq!((tomb.email, tomb.status), (Email::deleted(u.id), UserStatus::Blocked));
    assert_eq!(store.user_by_email(&Email::deleted(u.id)).await.unwrap().unwrap().id, squatter.id);
    // two deleted users do not meet either
    let other = user(&*store, "other@example.com").await;
    store.delete_user(other.id, now()).await.unwrap();
}

/// A DPoP proof is remembered once, whichever instance asks (the replay check of RFC 9449
/// §11.1), and forgotten once its window has ended.
async fn a_dpop_proof_is_accepted_once_and_forgotten_after_its_window(store: Arc<dyn Store>) {
    let t0 = now();
    let (a, b) = (random_hash(), random_hash());
    assert!(store.remember_proof(a, t0 + Duration::seconds(61)).await.unwrap());
    assert!(!store.remember_proof(a, t0 + Duration::seconds(61)).await.unwrap(), "a replay");
    assert!(store.remember_proof(b, t0 + Duration::seconds(120)).await.unwrap());
    assert_eq!(store.prune_proofs(t0 + Duration::seconds(90)).await.unwrap(), 1);
    assert!(!store.remember_proof(b, t0 + Duration::seconds(120)).await.unwrap(), "still in its window");
    assert!(store.remember_proof(a, t0 + Duration::seconds(200)).await.unwrap(), "forgotten after its window");
}

/// What a client may ask for in the client_credentials grant is kept, in order, and changed by
/// an update.
async fn clients_keep_the_scopes_and_audiences_they_may_ask_for(store: Arc<dyn Store>) {
    let mut c = OAuthClient {
        client_id: ClientId::parse("reports").unwrap(),
        name: "Reports".into(),
        secret_hash: Some(random_hash()),
        profile: "standard".into(),
        created_at: now(),
        scopes: vec!["reports:write".into(), "reports:read".into()],
        audiences: vec!["reports-api".into()],
        require_dpop: false,
        exchange_types: vec![],
    };
    store.create_client(&c).await.unwrap();
    let read = store.client_by_id("reports").await.unwrap().unwrap();
    assert_eq!((read.scopes, read.audiences), (c.scopes.clone(), c.audiences.clone()));
    c.scopes = vec![];
    c.audiences = vec!["a".into(), "b".into()];
    assert!(store.update_client(&c).await.unwrap());
    let read = store.list_clients().await.unwrap().into_iter().find(|x| x.client_id.as_str() == "reports").unwrap();
    assert_eq!((read.scopes, read.audiences), (vec![], vec!["a".to_owned(), "b".to_owned()]));
    // a client made before these existed may ask for nothing
    client(&*store, "plain").await;
    let plain = store.client_by_id("plain").await.unwrap().unwrap();
    assert!(plain.scopes.is_empty() && plain.audiences.is_empty());
}

async fn clients_list_change_and_delete_ending_their_sessions(store: Arc<dyn Store>) {
    client(&*store, "zeta").await;
    client(&*store, "alpha").await;
    let ids: Vec<String> = store.list_clients().await.unwrap().iter().map(|c| c.client_id.as_str().to_owned()).collect();
    assert_eq!(ids, ["alpha", "zeta"]);
    let mut c = store.client_by_id("alpha").await.unwrap().unwrap();
    c.secret_hash = Some(random_hash());
    c.profile = "extended".into();
    assert!(store.update_client(&c).await.unwrap());
    let back = store.client_by_id("alpha").await.unwrap().unwrap();
    assert_eq!((back.secret_hash, back.profile.as_str()), (c.secret_hash, "extended"));

    let u = user(&*store, "cl@example.com").await;
    let (mut s, mut first) = open(&*store, &u, now()).await;
    s.id = SessionId(Uuid::now_v7());
    s.client_id = Some("alpha".into());
    first.hash = random_hash();
    first.session_id = s.id;
    store.open_session(&s, &first).await.unwrap();
    let ended = store.delete_client("alpha", now()).await.unwrap();
    assert_eq!(ended, vec![s.id]);
    let after = store.session(s.id, None).await.unwrap().unwrap();
    assert_eq!((after.revoked_reason.as_deref(), after.client_id), (Some("client_deleted"), None));
    assert!(store.client_by_id("alpha").await.unwrap().is_none());
    assert!(matches!(store.delete_client("alpha", now()).await, Err(RepoError::NotFound)));
    c.client_id = ClientId::parse("never").unwrap();
    assert!(!store.update_client(&c).await.unwrap());
}

/// A store's database written to by hand, as someone with write access to it would.
enum Raw {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

impl Raw {
    async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Raw::Pg(p) => sqlx::raw_sql(sql).execute(p).await.map(drop).unwrap(),
            Raw::Lite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop).unwrap(),
        }
    }
}

async fn audit_event(store: &dyn Store, user: i64) {
    let e = NewAuditEvent { at: now(), kind: "login", user_id: Some(user), session_id: None, detail: serde_json::json!({}) };
    store.append_audit(&e).await.unwrap();
}

fn sealed_head(s: Sealing) -> ChainPoint {
    match s {
        Sealing::Sealed { head: Some(head), .. } => head,
        other => panic!("{other:?}"),
    }
}

/// Issue 21, item 11: the sealer never seals an event below the sealed head again (its seal was
/// cleared by hand), and seals nothing past a point the chain no longer holds (the newest
/// events deleted, or a tail un-sealed to be sealed again).
async fn audit_the_sealer_never_seals_below_its_head_nor_after_a_point_the_chain_lost(store: Arc<dyn Store>, raw: Raw) {
    let chain = AuditChain::new(KeyedHasher::new([1; 32]), KeyedHasher::new([2; 32]));
    for u in 1..=5 {
        audit_event(&*store, u).await;
    }
    let sealed = store.seal_audit(&chain, 100, None).await.unwrap();
    assert!(matches!(sealed, Sealing::Sealed { count: 5, head: Some(ChainPoint { seq: 5, .. }) }), "{sealed:?}");
    let head = sealed_head(sealed);
    assert_eq!(store.audit_head().await.unwrap(), Some((head.clone(), 5)));
    assert_eq!(store.audit_unsealed_below_head().await.unwrap(), None);
    let ids: Vec<i64> = store.audit_chain(0, 100).await.unwrap().iter().map(|r| r.id).collect();

    // an event below the head edited and its seal cleared: it is never sealed again, and shows
    raw.exec("update audit_events set kind = 'logout', seq = null, prev_hash = null, hash = null where seq = 3").await;
    audit_event(&*store, 6).await;
    let sealed = store.seal_audit(&chain, 100, Some(&head)).await.unwrap();
    assert!(matches!(sealed, Sealing::Sealed { count: 1, head: Some(ChainPoint { seq: 6, .. }) }), "only the new event: {sealed:?}");
    let head = sealed_head(sealed);
    let chained: Vec<i64> = store.audit_chain(0, 100).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(chained[..4], [ids[0], ids[1], ids[3], ids[4]]);
    assert_eq!((store.audit_unsealed_below_head().await.unwrap(), store.audit_unsealed().await.unwrap()), (Some(ids[2]), 1));
    assert!(matches!(store.seal_audit(&chain, 100, None).await.unwrap(), Sealing::Sealed { count: 0, .. }), "not even without a point");

    // the newest events deleted: nothing is sealed after the point the chain lost
    raw.exec("delete from audit_events where seq >= 5").await;
    audit_event(&*store, 7).await;
    let found = store.audit_chain(3, 1).await.unwrap().remove(0);
    let sealed = store.seal_audit(&chain, 100, Some(&head)).await.unwrap();
    assert_eq!(sealed, Sealing::Diverged { expected: head.clone(), found: Some(ChainPoint { seq: 4, hash: found.hash.unwrap() }) });
    assert_eq!(store.audit_unsealed().await.unwrap(), 2, "the new event waits");

    // a tail un-sealed so that the sealer chains it again: refused from the same point
    raw.exec("update audit_events set seq = null, prev_hash = null, hash = null where seq >= 2").await;
    assert!(matches!(
        store.seal_audit(&chain, 100, Some(&head)).await.unwrap(),
        Sealing::Diverged { found: Some(ChainPoint { seq: 1, .. }), .. }
    ));
    // (a sealer with no point to continue from cannot tell such a tail from new events: only a
    // head kept outside the database shows it, see the CLI's and the e2e tests)
}

/// Postgres draws an id when an insert starts, and may commit it after a later id: the sealer
/// waits for inserts in flight, so a late commit is never left below the head as if its seal
/// had been cleared. (SQLite has one writer: ids are drawn in commit order.)
async fn audit_an_event_committed_after_a_later_one_is_sealed_not_left_below_the_head(store: Arc<dyn Store>, raw: Raw) {
    let Raw::Pg(pool) = &raw else { return };
    let chain = AuditChain::new(KeyedHasher::new([1; 32]), KeyedHasher::new([2; 32]));
    let mut slow = pool.begin().await.unwrap();
    sqlx::query("insert into audit_events (at, kind) values (now(), 'slow')").execute(&mut *slow).await.unwrap();
    audit_event(&*store, 2).await;
    // the slow insert is in flight: this round waits for it a moment, then skips
    assert!(matches!(store.seal_audit(&chain, 100, None).await.unwrap(), Sealing::Sealed { count: 0, .. }));
    slow.commit().await.unwrap();
    assert!(matches!(store.seal_audit(&chain, 100, None).await.unwrap(), Sealing::Sealed { count: 2, .. }));
    let kinds: Vec<String> = store.audit_chain(0, 10).await.unwrap().into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["slow", "login"], "in id order");
    assert_eq!((store.audit_unsealed_below_head().await.unwrap(), store.audit_unsealed().await.unwrap()), (None, 0));
}

/// The contract tests that also write to the database by hand.
macro_rules! contract_raw {
    ($($name:ident),* $(,)?) => {
        mod postgres_by_hand {
            $(#[tokio::test]
            async fn $name() {
                let store = tessera_storage::testing::fresh_store().await.unwrap();
                let raw = super::Raw::Pg(store.pool().clone());
                super::$name(std::sync::Arc::new(store), raw).await
            })*
        }
        mod sqlite_by_hand {
            $(#[tokio::test]
            async fn $name() {
                let store = tessera_storage::testing::fresh_sqlite().await.unwrap();
                let raw = super::Raw::Lite(store.pool().clone());
                super::$name(std::sync::Arc::new(store), raw).await
            })*
        }
    };
}

contract_raw!(
    audit_the_sealer_never_seals_below_its_head_nor_after_a_point_the_chain_lost,
    audit_an_event_committed_after_a_later_one_is_sealed_not_left_below_the_head,
);

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(std::sync::Arc::new(tessera_storage::testing::fresh_store().await.unwrap())).await
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(std::sync::Arc::new(tessera_storage::testing::fresh_sqlite().await.unwrap())).await
            })*
        }
        /// The domain's in-memory fake, which its unit tests run on: it keeps the same contract.
        mod fake {
            $(#[tokio::test]
            async fn $name() {
                super::$name(std::sync::Arc::new(tessera_domain::fakes::InMemoryStore::default())).await
            })*
        }
    };
}

contract!(
    a_dpop_proof_is_accepted_once_and_forgotten_after_its_window,
    clients_keep_the_scopes_and_audiences_they_may_ask_for,
    emails_are_unique_case_insensitively,
    failed_logins_lock_the_address_then_the_account_but_never_the_owners_address,
    imported_users_keep_their_ids_and_later_ids_go_above_them,
    an_imported_id_never_speaks_for_a_user_registered_here,
    emails_compare_case_insensitively_beyond_ascii,
    a_session_round_trips_and_its_token_rotates_once,
    a_token_of_a_face_that_reuses_is_left_as_it_was,
    a_rotations_sealed_answer_is_kept_through_the_grace_window_and_then_dropped,
    a_password_login_opens_its_session_and_forgets_the_addresss_failures_in_one_write,
    fifty_concurrent_rotations_of_one_token_rotate_once_and_return_one_child,
    without_grace_a_concurrent_second_use_revokes_the_family,
    revocations_are_recorded_once,
    blocking_a_user_revokes_every_session_in_the_same_transaction,
    revoke_user_sessions_can_spare_one,
    concurrent_instances_agree_on_one_signing_key,
    clients_are_unique_and_keep_their_secret_hash,
    unknown_tokens_and_sessions_are_absent,
    a_rotation_records_the_request_and_risk_rules_revoke_in_its_transaction,
    concurrent_schedulers_make_one_key_change_per_step,
    users_list_in_id_order_and_a_set_password_is_stored,
    deleting_a_user_revokes_its_sessions_erases_it_and_frees_the_address,
    deleting_a_user_whose_placeholder_address_is_taken_still_succeeds,
    clients_list_change_and_delete_ending_their_sessions,
);
