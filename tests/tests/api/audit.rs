//! The audit trail as an operator checks it: what happened is there, chained, and an event edited,
//! deleted or inserted by hand in the database is caught.

use tessera_api::startup::Backend;

use crate::helpers::{TestApp, pair, spawn_app};

/// Runs one statement on the app's database, as someone with write access would.
async fn tamper(app: &TestApp, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match &app.backend {
        Backend::Postgres(pg) => sqlx::raw_sql(sql).execute(pg.pool()).await.map(drop).unwrap(),
        Backend::Sqlite(lite) => sqlx::raw_sql(sql).execute(lite.pool()).await.map(drop).unwrap(),
    }
}

async fn the_trail_records_what_happened_and_catches_edits_deletions_and_insertions() {
    let app = spawn_app().await;
    app.register("ann@example.com", "correct horse battery").await;
    assert_eq!(app.login("ann@example.com", "wrong horse battery").await.status(), 400);
    let first = pair(app.login("ann@example.com", "correct horse battery").await).await;
    let second = pair(app.refresh(&first.refresh).await).await;
    pair(app.refresh(&second.refresh).await).await;
    assert_eq!(app.refresh(&first.refresh).await.status(), 400, "reuse");

    let core = app.admin().await;
    let service = &core.state.service;
    let verdict = service.verify_audit().await.unwrap();
    assert_eq!(verdict.broken, None);
    assert!(verdict.checked >= 5, "{verdict:?}");
    let kinds: Vec<String> = service.audit_events(None, None, 100).await.unwrap().into_iter().map(|e| e.kind).collect();
    for kind in ["login_failed", "login", "refresh", "session_revoked"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let failed = service.audit_events(None, None, 100).await.unwrap().into_iter().find(|e| e.kind == "login_failed").unwrap();
    assert!(failed.detail.contains("ann@example.com") && !failed.detail.contains("wrong horse"), "never the password: {}", failed.detail);
    let revoked = service.audit_events(None, None, 100).await.unwrap().into_iter().find(|e| e.kind == "session_revoked").unwrap();
    assert!(revoked.detail.contains("reuse_detected"), "{}", revoked.detail);

    // an edit
    let cast = if matches!(app.backend, Backend::Postgres(_)) { "::jsonb" } else { "" };
    tamper(&app, &format!("update audit_events set detail = '{{\"face\": \"nobody\"}}'{cast} where seq = 2")).await;
    let broken = service.verify_audit().await.unwrap().broken.expect("an edited event is caught");
    assert_eq!(broken.seq, 2, "{broken:?}");
    assert!(broken.reason.contains("edited"), "{broken:?}");

    // a deletion
    let app = spawn_app().await;
    app.register("bob@example.com", "correct horse battery").await;
    pair(app.login("bob@example.com", "correct horse battery").await).await;
    assert_eq!(app.login("bob@example.com", "wrong").await.status(), 400);
    let core = app.admin().await;
    assert_eq!(core.state.service.verify_audit().await.unwrap().broken, None);
    tamper(&app, "delete from audit_events where seq = 1").await;
    let broken = core.state.service.verify_audit().await.unwrap().broken.expect("a deleted event is caught");
    assert_eq!(broken.seq, 1);
    assert!(broken.reason.contains("missing"), "{broken:?}");

    // an insertion: a forged event linked to the last one, but without the key its hash is wrong
    let app = spawn_app().await;
    app.register("cy@example.com", "correct horse battery").await;
    pair(app.login("cy@example.com", "correct horse battery").await).await;
    let core = app.admin().await;
    let intact = core.state.service.verify_audit().await.unwrap();
    assert_eq!(intact.broken, None);
    let at = if matches!(app.backend, Backend::Postgres(_)) { "now()" } else { "'2026-12-01T00:00:00Z'" };
    let last = intact.checked;
    tamper(
        &app,
        &format!(
            "insert into audit_events (at, kind, user_id, seq, prev_hash, hash) \
             select {at}, 'login', 1, seq + 1, hash, hash from audit_events where seq = {last}"
        ),
    )
    .await;
    let broken = core.state.service.verify_audit().await.unwrap().broken.expect("an inserted event is caught");
    assert_eq!(broken.seq, last as i64 + 1, "{broken:?}");
}

crate::both_backends!(the_trail_records_what_happened_and_catches_edits_deletions_and_insertions);
