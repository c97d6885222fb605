//! E-mail addresses as an attacker would try them: invisible characters and markup are refused,
//! and a look-alike of a registered address is that address.

use serde_json::{Value, json};
use tessera_domain::{Email, OffsetDateTime, UserId};
use tessera_server::startup::Backend;

use crate::helpers::{TestApp, spawn_app};

async fn register(app: &TestApp, email: &str) -> (u16, Value) {
    let res = app.http.post(app.url("/v1/users")).json(&json!({"email": email, "password": "correct horse battery"})).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn invisible_characters_markup_and_look_alikes_are_refused() {
    let app = spawn_app().await;
    assert_eq!(register(&app, "ann@example.com").await.0, 201);
    for look_alike in ["\u{430}nn@example.com", "ANN@EXAMPLE.COM", "ａｎｎ@example.com", "ann@examp\u{217C}e.com"] {
        let (status, body) = register(&app, look_alike).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("email_taken")), "{look_alike:?}: {body}");
    }
    for bad in ["ann\u{200B}x@example.com", "\u{202E}moc.elpmaxe@ann", "<img src=x>@example.com", "\"ann\"@example.com"] {
        let (status, body) = register(&app, bad).await;
        assert_eq!((status, body["field"].as_str()), (400, Some("email")), "{bad:?}: {body}");
    }
    // djoser's registration words it as DRF does
    let res = app
        .http
        .post(app.url("/users/"))
        .json(&json!({"email": "x\u{200B}@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"email": ["Enter a valid email address."]}));
    // and a short password as Django's MinimumLengthValidator does (the domain says which rule
    // broke, typed; the message carries the configured minimum)
    let res = app.http.post(app.url("/users/")).json(&json!({"email": "short@example.com", "password": "abc"})).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"password": ["This password is too short. It must contain at least 8 characters."]})
    );
    // Tessera's own API words it in its own problem document
    let res = app.http.post(app.url("/v1/users")).json(&json!({"email": "short@example.com", "password": "abc"})).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["field"].as_str(), body["detail"].as_str()),
        (Some("password"), Some("password must be at least 8 characters")),
        "{body}"
    );
}

/// Rows stored under the old rule (lowercase only) are normalized again at startup; a user whose
/// new form another already has keeps the old one and is reported.
async fn addresses_stored_under_the_old_rule_are_normalized_again() {
    let app = spawn_app().await;
    let old = |email: &str| (email.to_owned(), email.to_lowercase());
    let rows = [old("Mary@Example.com"), old("bob@example.com"), old("b\u{43E}b@example.com")];
    for (email, normalized) in &rows {
        let q =
            "insert into users (email, email_normalized, status, created_at, email_normalized_version) values ($1, $2, 'active', $3, 1)";
        match &app.backend {
            Backend::Postgres(pg) => {
                sqlx::query(q).bind(email).bind(normalized).bind(OffsetDateTime::now_utc()).execute(pg.pool()).await.unwrap();
            }
            Backend::Sqlite(lite) => {
                let q = q.replace('$', "?");
                sqlx::query(sqlx::AssertSqlSafe(q))
                    .bind(email)
                    .bind(normalized)
                    .bind(OffsetDateTime::now_utc())
                    .execute(lite.pool())
                    .await
                    .unwrap();
            }
        }
    }
    let normalize = |raw: &str| Email::parse(raw).ok().map(|e| e.normalized());
    let (updated, kept) = app.store.renormalize_emails(Email::NORMALIZATION, normalize).await.unwrap();
    assert_eq!((updated.len(), kept.len()), (2, 1), "{updated:?} {kept:?}");
    let mary = app.store.user_by_email(&Email::parse("mary@EXAMPLE.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(mary.email.as_str(), "Mary@Example.com");
    let bob = app.store.user_by_email(&Email::parse("bob@example.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(bob.email.as_str(), "bob@example.com");
    assert_ne!(kept[0], bob.id);
    assert!(kept[0] > UserId(0));
    let (again, _) = app.store.renormalize_emails(Email::NORMALIZATION, normalize).await.unwrap();
    assert!(again.is_empty(), "done once");
}

/// What `Email::normalized` was in version 2: lowercase, NFKC, the UTS #39 skeleton, lowercase.
fn normalized_v2(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = email.to_lowercase().nfkc().collect();
    unicode_security::skeleton(&folded).collect::<String>().to_lowercase()
}

async fn djoser_register(app: &TestApp, email: &str) -> (u16, Value) {
    let body = json!({"email": email, "password": "correct horse battery"});
    let res = app.http.post(app.url("/users/")).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// Issue 21, item 9: letters that look like capitals (`ᴍ`, a small capital M; Cyrillic `м`)
/// registered beside the address they imitate, since addresses compare without case.
async fn a_capital_look_alike_is_the_address_it_imitates() {
    let app = spawn_app().await;
    assert_eq!(register(&app, "ann@example.com").await.0, 201);
    for look_alike in ["ann@example.co\u{1D0D}", "ann@exa\u{43C}ple.com", "\u{1D00}nn@example.com"] {
        let (status, body) = register(&app, look_alike).await;
        assert_eq!((status, body["code"].as_str()), (409, Some("email_taken")), "{look_alike:?}: {body}");
        assert_eq!(
            djoser_register(&app, look_alike).await,
            (400, json!({"email": ["user with this email already exists."]})),
            "djoser: {look_alike:?}"
        );
    }
    // and the other way round: the look-alike first
    assert_eq!(register(&app, "bob@example.co\u{1D0D}").await.0, 201);
    assert_eq!(register(&app, "BOB@example.com").await.0, 409);
}

/// An account stored under version 2 of the rule, whose form version 3 changes, still logs in
/// once a process of the new version has started on the database.
async fn an_account_of_the_old_rule_logs_in_after_the_upgrade() {
    let app = spawn_app().await;
    let email = "\u{1D0D}ary@example.com";
    let res = app.register(email, "correct horse battery").await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let old = normalized_v2(email);
    assert_ne!(old, Email::parse(email).unwrap().normalized(), "version 3 changes this address's form");
    let q = "update users set email_normalized = $2, email_normalized_version = 2 where id = $1";
    match &app.backend {
        Backend::Postgres(pg) => {
            sqlx::query(q).bind(id).bind(&old).execute(pg.pool()).await.unwrap();
        }
        Backend::Sqlite(lite) => {
            sqlx::query(sqlx::AssertSqlSafe(q.replace('$', "?"))).bind(id).bind(&old).execute(lite.pool()).await.unwrap();
        }
    }
    assert_eq!(app.login(email, "correct horse battery").await.status(), 400, "as stored by version 2");
    // the upgrade: a process of this version starts on the database
    drop(app.admin().await);
    let pair = crate::helpers::pair(app.login(email, "correct horse battery").await).await;
    assert_eq!(app.me(&pair.access).await.json::<Value>().await.unwrap()["id"], id);
    assert_eq!(app.login("\u{43C}ary@example.com", "correct horse battery").await.status(), 200, "and its look-alikes");
    assert_eq!(register(&app, "mary@example.com").await.0, 409);
}

crate::both_backends!(
    invisible_characters_markup_and_look_alikes_are_refused,
    addresses_stored_under_the_old_rule_are_normalized_again,
    a_capital_look_alike_is_the_address_it_imitates,
    an_account_of_the_old_rule_logs_in_after_the_upgrade,
);
