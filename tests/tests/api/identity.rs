//! A token speaks for exactly one person (issue 21): the attacks a security review made on the
//! migration path and the caches, replayed over real HTTP on both databases. Each failed before
//! its fix.

use serde_json::{Value, json};
use tessera_cli::import::OnConflict;
use tessera_dialects::config::LegacySecret;
use tessera_domain::{OffsetDateTime, RefreshPolicy, UserId};
use tessera_server::Settings;

use crate::helpers::{TestApp, now_unix, sign_hs256, spawn_with};

fn fixtures() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn django_secret() -> String {
    s(&fixtures()["django"]["secret"]).to_owned()
}

/// The faces of a migrated Django deployment: simplejwt and djoser read its tokens.
fn django_faces(st: &mut Settings) {
    st.dialects.simplejwt.legacy_secret = Some(LegacySecret::new(django_secret()));
    st.dialects.djoser.legacy_secret = Some(LegacySecret::new(django_secret()));
}

/// An operator's process on the app's database, configured as the server is.
async fn operator(app: &TestApp, configure: impl FnOnce(&mut Settings)) -> tessera_server::startup::Core {
    let mut settings = Settings {
        database: tessera_server::config::DatabaseSettings { url: app.db_url.clone(), ..Default::default() },
        secrets: tessera_server::config::SecretSettings { master_key: Some(app.master_key.clone()), master_key_file: None },
        ..Default::default()
    };
    configure(&mut settings);
    tessera_server::startup::Core::build(settings, false, false).await.unwrap()
}

/// The Django database the real Django and simplejwt wrote (`fixtures/legacy/django.sql`),
/// as a SQLite file; `extra` runs after the dump.
async fn django_db(extra: &str) -> (String, std::path::PathBuf) {
    use sqlx::{ConnectOptions, Connection};
    let dir = std::env::temp_dir().join(format!("tessera-django-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("django.sqlite3");
    let dump = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy/django.sql")).unwrap();
    let mut c =
        sqlx::sqlite::SqliteConnectOptions::new().filename(&file).create_if_missing(true).foreign_keys(false).connect().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(dump)).execute(&mut c).await.unwrap();
    if !extra.is_empty() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(extra.to_owned())).execute(&mut c).await.unwrap();
    }
    c.close().await.unwrap();
    (format!("sqlite:{}", file.display()), dir)
}

/// A token as simplejwt minted it with the deployment's secret (no `kid`).
fn simplejwt_token(kind: &str, user_id: i64, exp: i64) -> String {
    let claims = json!({"token_type": kind, "exp": exp, "iat": now_unix() - 60, "jti": uuid::Uuid::new_v4().simple().to_string(), "user_id": user_id});
    sign_hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims, django_secret().as_bytes())
}

async fn get(app: &TestApp, path: &str, auth: &str) -> (u16, Value) {
    let res = app.http.get(app.url(path)).header("authorization", auth).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url(path)).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn register(app: &TestApp, email: &str) -> i64 {
    let res = app.register(email, "correct horse battery staple").await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// A confidential client that may introspect, and what introspection says of `token`.
async fn introspector(app: &TestApp) -> impl Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Value> + Send>> {
    let client = tessera_domain::OAuthClient {
        client_id: tessera_domain::ClientId::parse("resource-server").unwrap(),
        name: "resource server".into(),
        secret_hash: Some(app.secrets.refresh_hasher.hash(b"rs-secret-rs-secret")),
        profile: "standard".into(),
        created_at: OffsetDateTime::now_utc(),
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    app.store.create_client(&client).await.unwrap();
    let (http, url) = (app.http.clone(), app.url("/oauth/introspect"));
    move |token: String| {
        let req = http.post(&url).basic_auth("resource-server", Some("rs-secret-rs-secret")).form(&[("token", token)]);
        Box::pin(async move { req.send().await.unwrap().json::<Value>().await.unwrap() })
    }
}

/// Every way a legacy access token of user `id` is presented: djoser's `/users/me/`,
/// simplejwt's verify, introspection. Each answer: accepted or not.
async fn legacy_access_accepted(
    app: &TestApp,
    token: &str,
    introspect: &impl Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Value> + Send>>,
) -> [bool; 3] {
    let (me, _) = get(app, "/users/me/", &format!("JWT {token}")).await;
    let (verify, _) = post(app, "/api/token/verify/", json!({"token": token})).await;
    let active = introspect(token.to_owned()).await["active"] == true;
    [me == 200, verify == 200, active]
}

/// Item 1: two users register here (ids 1 and 2); the Django deployment's users 1 and 2 are
/// other people. Their old tokens must never act as the users registered here, the import must
/// report the collision, and no later registration may be handed an id an old token names.
async fn an_imported_id_never_makes_a_legacy_token_speak_for_a_user_registered_here() {
    let app = spawn_with(django_faces).await;
    let introspect = introspector(&app).await;
    assert_eq!((register(&app, "native-one@example.com").await, register(&app, "native-two@example.com").await), (1, 2));
    let d = &fixtures()["django"];
    let alice_access = s(&d["alice"]["access"]);
    let alice_refresh = s(&d["alice"]["refresh"]);

    // before any import: Django's user 1 is not the user 1 registered here
    assert_eq!(legacy_access_accepted(&app, alice_access, &introspect).await, [false; 3]);
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": alice_refresh})).await;
    assert_eq!(status, 401, "{body}");

    // the import stops on the collisions and writes no user
    let (url, dir) = django_db("").await;
    let core = operator(&app, django_faces).await;
    let err = tessera_cli::import::django(&core, &url, "simplejwt", OnConflict::Stop, OffsetDateTime::now_utc()).await.unwrap_err();
    assert_eq!(tessera_cli::cli::exit_code(&err), 5, "{err:#}");
    let text = format!("{err:#}");
    assert!(text.contains("user 1: the id 1 belongs to another user here") && text.contains("user 2:"), "{text}");
    assert!(app.store.user_by_id(UserId(3)).await.unwrap().is_none(), "nothing imported: {text}");

    // with skip, the others come over and the collisions are listed
    let summary = tessera_cli::import::django(&core, &url, "simplejwt", OnConflict::Skip, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(summary.users_imported, 4, "{summary}");
    assert_eq!(summary.conflicts.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2], "{summary}");
    assert!(summary.ids_reserved_up_to >= 6, "{summary}");

    // alice's tokens still do not speak for native user 1; carol's (id 3) speak for carol
    assert_eq!(legacy_access_accepted(&app, alice_access, &introspect).await, [false; 3]);
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": alice_refresh})).await;
    assert_eq!(status, 401, "{body}");
    let carol = simplejwt_token("access", 3, now_unix() + 300);
    assert_eq!(legacy_access_accepted(&app, &carol, &introspect).await, [true; 3]);
    let (_, me) = get(&app, "/users/me/", &format!("JWT {carol}")).await;
    assert_eq!(me["email"], "carol@example.com");

    // the next registration is handed an id no old token names, and old tokens naming it fail
    let next = register(&app, "next@example.com").await;
    assert!(next > 6, "{next}");
    let forged_for_next = simplejwt_token("access", next, now_unix() + 300);
    assert_eq!(legacy_access_accepted(&app, &forged_for_next, &introspect).await, [false; 3]);
    std::fs::remove_dir_all(dir).ok();
}

/// Item 3: a blacklist row signed with an older secret is reported and skipped, and the rows
/// after it are carried over; no legacy token is honoured before the import has finished.
async fn an_import_that_meets_an_unreadable_blacklist_row_carries_on_and_tokens_wait_for_its_end() {
    let app = spawn_with(django_faces).await;
    let d = &fixtures()["django"];
    // an older secret's token, blacklisted before alice's (the rows are read in id order)
    let old = s(&d["alice_wrong_secret"]["refresh"]);
    let extra = format!(
        "insert into token_blacklist_outstandingtoken (token, created_at, expires_at, user_id, jti, id) values ('{old}', null, '2099-01-01', 1, 'old', 0);
         insert into token_blacklist_blacklistedtoken (blacklisted_at, token_id, id) values ('2026-12-01 13:00:00', 0, 0);"
    );
    let (url, dir) = django_db(&extra).await;

    // users in, import not finished: no legacy token is honoured yet
    let user = tessera_domain::User {
        id: UserId(1),
        email: tessera_domain::Email::parse("alice@example.com").unwrap(),
        password_hash: None,
        status: tessera_domain::UserStatus::Active,
        created_at: OffsetDateTime::now_utc(),
        password_changed_at: None,
    };
    app.store.start_import("django", OffsetDateTime::now_utc()).await.unwrap();
    assert!(app.store.import_user(&user, "django").await.unwrap());
    let (status, body) = get(&app, "/users/me/", &format!("JWT {}", s(&d["alice"]["access"]))).await;
    assert_eq!(status, 401, "an import that has not finished honours nothing: {body}");
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": d["alice"]["refresh"]})).await;
    assert_eq!(status, 401);

    let core = operator(&app, django_faces).await;
    let summary = tessera_cli::import::django(&core, &url, "simplejwt", OnConflict::Stop, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(summary.blacklisted_unreadable.len(), 1, "{summary}");
    assert_eq!(summary.blacklisted_imported, 1, "the row after the unreadable one is carried over: {summary}");
    assert_eq!((summary.users_imported, summary.users_present), (5, 1), "{summary}");

    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": d["alice_blacklisted_refresh"]})).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(&app, "/users/me/", &format!("JWT {}", s(&d["alice"]["access"]))).await;
    assert_eq!(status, 200, "finished: alice's tokens work: {body}");
    std::fs::remove_dir_all(dir).ok();
}

/// Item 2: another process blocks, then deletes, a migrated user. Every legacy token of the user
/// is refused by the running server at once: djoser's `/users/me/`, simplejwt's verify,
/// introspection.
async fn blocking_or_deleting_a_user_refuses_their_legacy_tokens_everywhere_at_once() {
    let f = fixtures();
    let app = spawn_with(django_faces).await;
    let introspect = introspector(&app).await;
    let core = operator(&app, django_faces).await;
    let (url, dir) = django_db("").await;
    tessera_cli::import::django(&core, &url, "simplejwt", OnConflict::Stop, OffsetDateTime::now_utc()).await.unwrap();

    let alice = s(&f["django"]["alice"]["access"]);
    let bob = s(&f["django"]["bob"]["access"]);
    assert_eq!(legacy_access_accepted(&app, alice, &introspect).await, [true; 3]);
    assert_eq!(legacy_access_accepted(&app, bob, &introspect).await, [true; 3]);
    // the server has read both users: a cache would now answer for them
    assert_eq!(get(&app, "/users/me/", &format!("JWT {bob}")).await.1["email"], "bob@example.com");

    let now = OffsetDateTime::now_utc();
    core.state.service.set_user_status(UserId(1), tessera_domain::UserStatus::Blocked, now).await.unwrap();
    assert_eq!(legacy_access_accepted(&app, alice, &introspect).await, [false; 3], "a blocked user's legacy token");
    let (status, body) = get(&app, "/users/me/", &format!("JWT {alice}")).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("user_inactive")), "{body}");

    core.state.service.delete_user(UserId(2), now).await.unwrap();
    assert_eq!(legacy_access_accepted(&app, bob, &introspect).await, [false; 3], "a deleted user's legacy token");
    let (status, me) = get(&app, "/users/me/", &format!("JWT {bob}")).await;
    assert_eq!(status, 401);
    assert!(!me.to_string().contains("deleted"), "{me}");
    std::fs::remove_dir_all(dir).ok();
}

/// Items 1 and 2 for flask-jwt-extended: its users come over through `import flask`; a user
/// registered here never answers to a flask token; a block or deletion refuses them at once.
async fn flask_tokens_speak_only_for_users_imported_from_flask() {
    let f = fixtures();
    let secret = s(&f["flask_legacy"]["secret"]).to_owned();
    let configure = move |st: &mut Settings| st.dialects.flask.legacy_secret = Some(LegacySecret::new(secret.clone()));
    let app = spawn_with(configure.clone()).await;
    let core = operator(&app, configure).await;
    let user1 = format!("Bearer {}", s(&f["flask_legacy"]["user1"]["access"]));
    let user2 = format!("Bearer {}", s(&f["flask_legacy"]["user2"]["access"]));
    let user1_refresh = format!("Bearer {}", s(&f["flask_legacy"]["user1"]["refresh"]));

    // a user registered here is handed id 1: the flask deployment's user 1 is someone else
    assert_eq!(register(&app, "native@example.com").await, 1);
    assert_eq!(get(&app, "/api/v1/protected", &user1).await.0, 401);
    let res = app.http.post(app.url("/api/v1/refresh/token")).header("authorization", &user1_refresh).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // the users file: id 1 collides and is reported; werkzeug's hash is checked at login
    let hash = "pbkdf2:sha256:1000$NaCl1234$09648d88c553b8723dc823d15e17163d3110a5d75b040381a3557783e98e82ef";
    let users = tempfile_with(&format!(
        "{{\"id\": 1, \"email\": \"one@example.com\", \"password_hash\": null}}\n\
         {{\"id\": 2, \"email\": \"two@example.com\", \"password_hash\": \"{hash}\"}}\n\
         {{\"id\": 3, \"email\": \"three@example.com\", \"password_hash\": \"md5$never$seen\"}}\n\
         {{\"highest_id\": 40}}\n"
    ));
    let err = tessera_cli::import::flask(&core, &users, OnConflict::Stop, OffsetDateTime::now_utc()).await.unwrap_err();
    assert_eq!(tessera_cli::cli::exit_code(&err), 5, "{err:#}");
    let summary = tessera_cli::import::flask(&core, &users, OnConflict::Skip, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!(summary.users_imported, 1, "{summary}");
    assert_eq!(summary.conflicts.iter().map(|c| c.id).collect::<Vec<_>>(), [1]);
    assert_eq!(summary.users_skipped.iter().map(|c| c.id).collect::<Vec<_>>(), [3], "an unknown hash format: {summary}");
    assert_eq!(get(&app, "/api/v1/protected", &user1).await.0, 401, "still not the native user 1");
    assert_eq!(get(&app, "/api/v1/protected", &user2).await.0, 200);
    let login = app.login("two@example.com", "correct horse").await;
    assert_eq!(login.status(), 200, "a werkzeug hash verifies");
    assert!(register(&app, "later@example.com").await > 40, "ids the flask deployment gave out are never handed out");

    core.state.service.set_user_status(UserId(2), tessera_domain::UserStatus::Blocked, OffsetDateTime::now_utc()).await.unwrap();
    assert_ne!(get(&app, "/api/v1/protected", &user2).await.0, 200, "blocked");
    core.state.service.delete_user(UserId(2), OffsetDateTime::now_utc()).await.unwrap();
    assert_ne!(get(&app, "/api/v1/protected", &user2).await.0, 200, "deleted");
    std::fs::remove_file(users).ok();
}

/// Item 4: simplejwt rotates, djoser (its sibling on the audience `django`) does not. A
/// simplejwt refresh token presented at djoser must still rotate, and its reuse there must end
/// the session at every face.
async fn a_refresh_token_follows_the_policy_of_the_face_that_issued_it() {
    let app = spawn_with(|st| st.dialects.simplejwt.refresh_policy = RefreshPolicy::Rotate).await;
    register(&app, "ann@example.com").await;
    let (status, pair) = post(&app, "/api/token/", json!({"email": "ann@example.com", "password": "correct horse battery staple"})).await;
    assert_eq!(status, 200, "{pair}");
    let parent = s(&pair["refresh"]).to_owned();

    let (status, body) = post(&app, "/auth/jwt/refresh/", json!({"refresh": parent})).await;
    assert_eq!(status, 200, "{body}");
    let child = body["refresh"].as_str().unwrap_or_else(|| panic!("rotated at djoser too: {body}")).to_owned();

    // the rotated parent, replayed at djoser: reuse, and the whole session ends
    let (status, body) = post(&app, "/auth/jwt/refresh/", json!({"refresh": parent})).await;
    assert_eq!(status, 401, "{body}");
    for path in ["/api/token/refresh/", "/auth/jwt/refresh/"] {
        let (status, body) = post(&app, path, json!({"refresh": child})).await;
        assert_eq!(status, 401, "the child is revoked with its session at {path}: {body}");
    }
}

/// Items 5 and 6: a legacy refresh token with a 50-year `exp` is adopted no longer than a
/// session may live; introspecting a legacy token writes nothing and says what it is.
async fn legacy_sessions_are_capped_and_introspection_only_reads() {
    let app = spawn_with(django_faces).await;
    let introspect = introspector(&app).await;
    let core = operator(&app, django_faces).await;
    let (url, dir) = django_db("").await;
    tessera_cli::import::django(&core, &url, "simplejwt", OnConflict::Stop, OffsetDateTime::now_utc()).await.unwrap();
    let fifty_years = now_unix() + 50 * 365 * 86_400;
    let refresh = simplejwt_token("refresh", 3, fifty_years);
    let access = simplejwt_token("access", 3, now_unix() + 300);
    let cap = now_unix() + 366 * 86_400;

    let sessions = || async { app.store.sessions_of_user(UserId(3), OffsetDateTime::now_utc(), 10).await.unwrap().len() };
    let a = introspect(access.clone()).await;
    assert_eq!((a["active"].as_bool(), a["legacy"].as_str()), (Some(true), Some("django")), "{a}");
    assert!(a.get("sid").is_none() && a.get("iss").is_none(), "no invented session, not Tessera's issuer: {a}");
    let r = introspect(refresh.clone()).await;
    assert_eq!(
        (r["active"].as_bool(), r["token_type"].as_str(), r["legacy"].as_str()),
        (Some(true), Some("refresh_token"), Some("django")),
        "{r}"
    );
    assert!(r.get("sid").is_none(), "{r}");
    assert!(r["exp"].as_i64().unwrap() <= cap, "capped: {r}");
    assert_eq!(sessions().await, 0, "introspection adopted nothing");

    // adopted at its first use (simplejwt reuses by default): capped at max_session_lifetime
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sessions().await, 1);
    let r = introspect(refresh).await;
    assert!(r["sid"].is_string(), "a Tessera session now: {r}");
    assert!(r["exp"].as_i64().unwrap() <= cap, "the adopted session is capped: {r}");
    std::fs::remove_dir_all(dir).ok();
}

/// Item 7: a session opened under a 30-hour access profile that the configuration has since
/// removed was revoked 12 hours ago. An instance started afterwards must still refuse its
/// unexpired access tokens, although the configured horizon (the longest configured access
/// lifetime, drf-social-oauth2's 10 hours) has passed since the revocation.
async fn a_revocation_outlives_a_shortened_profile() {
    let app = spawn_with(|_| {}).await;
    let user = register(&app, "ann@example.com").await;
    let now = OffsetDateTime::now_utc();
    let ten_hours =
        tessera_domain::TokenProfile::new("long-gone", tessera_domain::Duration::hours(30), tessera_domain::Duration::days(30)).unwrap();
    let session = tessera_domain::Session {
        id: tessera_domain::SessionId(uuid::Uuid::now_v7()),
        user_id: UserId(user),
        client_id: None,
        face: "simplejwt".into(),
        profile: ten_hours,
        created_at: now - tessera_domain::Duration::hours(13),
        expires_at: now + tessera_domain::Duration::days(30),
        last_refresh_at: None,
        ip: None,
        user_agent: None,
        revoked_at: None,
        revoked_reason: None,
        subject: None,
        dpop_jkt: None,
    };
    let record = tessera_domain::RefreshRecord {
        hash: tessera_domain::TokenHash([7; 32]),
        session_id: session.id,
        parent: None,
        access_jti: uuid::Uuid::new_v4(),
        issued_at: session.created_at,
        expires_at: session.expires_at,
        rotated_at: None,
        sealed_secret: None,
        sealed_pair: None,
    };
    app.store.open_session(&session, &record).await.unwrap();
    // revoked twelve hours ago: longer ago than today's configured horizon
    app.store.revoke_session(session.id, session.user_id.route(), "revoked", now - tessera_domain::Duration::hours(12)).await.unwrap();
    // its access token, issued thirteen hours ago for thirty hours
    let iat = now.unix_timestamp() - 13 * 3600;
    let claims = json!({"token_type": "access", "exp": iat + 30 * 3600, "iat": iat, "jti": uuid::Uuid::new_v4().simple().to_string(),
                        "user_id": user, "sid": session.id.0, "aud": "django"});
    let token = sign_hs256(&json!({"alg": "HS256", "typ": "JWT", "kid": app.kid}), &claims, &app.key_secret);

    let second = another_instance(&app).await;
    // SQLite's instances reload revocations every second
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let res = app.http.post(format!("{second}/api/token/verify/")).json(&json!({"token": token})).send().await.unwrap();
    assert_eq!(res.status(), 401, "a revoked session's token, after a restart: {}", res.text().await.unwrap());
}

/// Issue 22 item 8: a refused login takes as long whatever the e-mail has: no account, a
/// password hashed here, or an imported hash not yet re-hashed that costs far more to check
/// (before: an imported pbkdf2 user's refusal took several times an unknown e-mail's).
async fn a_refused_login_takes_as_long_whatever_hash_the_email_has() {
    let app = spawn_with(|_| {}).await;
    let core = operator(&app, |_| {}).await;
    register(&app, "native@example.com").await;
    // a Werkzeug hash at 100,000 iterations: far costlier to check than the tests' Argon2
    let hash = format!("pbkdf2:sha256:100000$NaCl1234${}", "0".repeat(64));
    let users = tempfile_with(&format!(
        "{{\"id\": 7, \"email\": \"imported@example.com\", \"password_hash\": \"{hash}\"}}\n{{\"highest_id\": 7}}\n"
    ));
    tessera_cli::import::flask(&core, &users, OnConflict::Stop, OffsetDateTime::now_utc()).await.unwrap();
    // the server as deployed after the import
    let server = another_instance(&app).await;
    let refusal = |email: &'static str| {
        let (http, url) = (app.http.clone(), format!("{server}/oauth/token"));
        async move {
            let started = std::time::Instant::now();
            let form = [("grant_type", "password"), ("username", email), ("password", "not the password at all")];
            let res = http.post(url).form(&form).send().await.unwrap();
            assert_eq!(res.status(), 400, "{email}: {}", res.text().await.unwrap());
            started.elapsed()
        }
    };
    let (mut unknown, mut native, mut imported) = (vec![], vec![], vec![]);
    for _ in 0..3 {
        unknown.push(refusal("nobody@example.com").await);
        native.push(refusal("native@example.com").await);
        imported.push(refusal("imported@example.com").await);
    }
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[1]
    };
    let (unknown, native, imported) = (median(&mut unknown), median(&mut native), median(&mut imported));
    assert!(imported > std::time::Duration::from_millis(30), "the imported hash is the costly one: {imported:?}");
    for (who, took) in [("an unknown e-mail", unknown), ("a user hashed here", native)] {
        assert!(took * 2 >= imported, "{who}'s refusal took {took:?}, an imported user's {imported:?}");
    }
    std::fs::remove_file(users).ok();
}

/// Another instance of `app`'s deployment (the same database and master key), started now:
/// its address.
async fn another_instance(app: &TestApp) -> String {
    let mut settings = Settings::default();
    settings.database.url = app.db_url.clone();
    settings.database.create_if_missing = false;
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.metrics.port = 0;
    settings.secrets.master_key = Some(app.master_key.clone());
    settings.dialects.medods.caller_key = Some(crate::helpers::CALLER_KEY.into());
    let built = tessera_server::Application::build(settings).await.unwrap();
    let address = format!("http://127.0.0.1:{}", built.port());
    tokio::spawn(built.run_until_stopped());
    address
}

fn tempfile_with(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("tessera-users-{}.jsonl", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    path
}

crate::both_backends!(
    a_refused_login_takes_as_long_whatever_hash_the_email_has,
    an_imported_id_never_makes_a_legacy_token_speak_for_a_user_registered_here,
    an_import_that_meets_an_unreadable_blacklist_row_carries_on_and_tokens_wait_for_its_end,
    blocking_or_deleting_a_user_refuses_their_legacy_tokens_everywhere_at_once,
    flask_tokens_speak_only_for_users_imported_from_flask,
    a_refresh_token_follows_the_policy_of_the_face_that_issued_it,
    legacy_sessions_are_capped_and_introspection_only_reads,
    a_revocation_outlives_a_shortened_profile,
);
