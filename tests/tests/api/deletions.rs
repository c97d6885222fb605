//! Deleting users and clients, as an attacker would get in the way (issue 21, item 8): a
//! deleted user's placeholder address cannot be taken beforehand, and a deleted client stops
//! authenticating at once on the running server.

use serde_json::{Value, json};
use tessera_domain::{Email, OffsetDateTime, UserId};

use crate::helpers::spawn_app;

/// Registering `deleted-<id>@deleted.invalid` before the user `<id>` is deleted made the
/// deletion fail on the address's uniqueness.
async fn a_deleted_users_placeholder_address_cannot_be_taken_beforehand() {
    let app = spawn_app().await;
    // an id without a 1 (the skeleton makes it an l, so the old deletion's key differed)
    assert_eq!(app.register("filler@example.com", "correct horse battery").await.status(), 201);
    let res = app.register("victim@example.com", "correct horse battery").await;
    assert_eq!(res.status(), 201);
    let victim = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let placeholder = format!("deleted-{victim}@deleted.invalid");

    // both registrations refuse the reserved domain, look-alikes of it too
    for squat in [placeholder.clone(), format!("deleted-{}@deleted.invalid", victim + 1), "x@identities.\u{456}nvalid".into()] {
        let res = app.register(&squat, "correct horse battery").await;
        let (status, body) = (res.status().as_u16(), res.json::<Value>().await.unwrap());
        assert_eq!((status, body["field"].as_str()), (400, Some("email")), "{squat}: {body}");
        let res =
            app.http.post(app.url("/users/")).json(&json!({"email": squat, "password": "correct horse battery"})).send().await.unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"email": ["Enter a valid email address."]}), "djoser: {squat}");
    }

    // an address squatted before registration refused it still does not stop the deletion
    let squatter = app.store.create_user(&Email::parse(&placeholder).unwrap(), None, OffsetDateTime::now_utc()).await.unwrap();
    let operator = app.admin().await; // what `tessera user delete` runs
    assert_eq!(operator.state.service.delete_user(UserId(victim), OffsetDateTime::now_utc()).await.unwrap(), 0);
    let tomb = app.store.user_by_id(UserId(victim)).await.unwrap().unwrap();
    assert_eq!(tomb.email.as_str(), placeholder);
    assert_eq!(app.store.user_by_email(&Email::parse(&placeholder).unwrap()).await.unwrap().unwrap().id, squatter.id);
    assert_eq!(app.register("victim@example.com", "correct horse battery").await.status(), 201, "the address is free again");
}

crate::both_backends!(a_deleted_users_placeholder_address_cannot_be_taken_beforehand);
