//! Concurrency: many refreshes of one token at once.

use std::collections::HashMap;

use serde_json::Value;
use tessera_domain::SessionId;
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_with};

async fn race(app: &crate::helpers::TestApp, refresh: &str, n: usize) -> Vec<(u16, Value)> {
    let futures = (0..n).map(|_| async {
        let res = app.refresh(refresh).await;
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    });
    futures::future::join_all(futures).await
}

async fn fifty_concurrent_refreshes_of_one_token_rotate_once() {
    let app = spawn_app().await;
    let p = app.user_with_pair("race@example.com").await;
    let sid = Uuid::parse_str(app.verify_independently(&p.access).await["sid"].as_str().unwrap()).unwrap();
    let results = race(&app, &p.refresh, 50).await;

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (s, _) in &results {
        *by_status.entry(*s).or_default() += 1;
    }
    assert!(results.iter().all(|(s, _)| *s < 500), "no 5xx: {by_status:?}");
    let children: std::collections::HashSet<&str> =
        results.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b["refresh_token"].as_str().unwrap()).collect();
    assert_eq!(children.len(), 1, "one rotation, every success carries the same child: {by_status:?}");
    for (s, b) in &results {
        if *s != 200 {
            assert_eq!((*s, b["error"].as_str()), (400, Some("invalid_grant")));
        }
    }

    let family = app.store.family(SessionId(sid)).await.unwrap();
    assert_eq!(family.len(), 2, "the parent and exactly one child");
    assert_eq!(family.iter().filter(|t| t.rotated_at.is_none()).count(), 1);
    // the family is consistent: the child rotates normally
    let child = children.into_iter().next().unwrap();
    assert_eq!(app.refresh(child).await.status(), 200);
}

async fn without_grace_concurrent_refreshes_rotate_once_and_revoke_the_family() {
    let app = spawn_with(|s| s.tokens.refresh_grace_seconds = 0).await;
    let p = app.user_with_pair("strict@example.com").await;
    let results = race(&app, &p.refresh, 20).await;
    assert!(results.iter().all(|(s, _)| *s == 200 || *s == 400), "only 200 or 400");
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 1, "exactly one rotation");
    // a second use is reuse: the family is revoked, including the winner's tokens
    let winner = results.iter().find(|(s, _)| *s == 200).unwrap();
    assert_eq!(app.me(winner.1["access_token"].as_str().unwrap()).await.status(), 401);
}

crate::both_backends!(
    fifty_concurrent_refreshes_of_one_token_rotate_once,
    without_grace_concurrent_refreshes_rotate_once_and_revoke_the_family,
);
