//! E-mail addresses as an attacker would try them: invisible characters and markup are refused,
//! and a look-alike of a registered address is that address.

use serde_json::{Value, json};
use tessera_api::startup::Backend;
use tessera_domain::{Email, OffsetDateTime, UserId};

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

crate::both_backends!(invisible_characters_markup_and_look_alikes_are_refused, addresses_stored_under_the_old_rule_are_normalized_again);
