//! The audit trail as an operator checks it: what happened is there, chained, and an event edited,
//! deleted or inserted by hand in the database is caught.

use tessera_server::startup::Backend;

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

/// `tessera audit verify --head <head>` run in this process (the CLI's own code) on the app's
/// database and master key, as an operator of the deployment would.
async fn tessera_audit_verify_head(app: &TestApp, head: &str) -> anyhow::Result<()> {
    use tessera_cli::cli::{AuditCommand, Cli, Command};
    let dir = std::env::temp_dir().join(format!("tessera-audit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tessera.toml");
    std::fs::write(&config, format!("[database]\nurl = {:?}\n\n[secrets]\nmaster_key = {:?}\n", app.db_url, app.master_key)).unwrap();
    // --database-url: DATABASE_URL in the environment (make test sets it) must not win over it
    let cli = Cli {
        config: Some(config),
        database_url: Some(app.db_url.clone()),
        json: false,
        command: Command::Audit(AuditCommand::Verify { head: Some(head.to_owned()) }),
    };
    let result = tessera_cli::cli::run(cli).await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// Issue 21, item 11: an instance that sealed the chain stops sealing when the database no
/// longer holds where it left it; a new process cannot tell (it takes the chain as it finds it),
/// but the head kept before catches the chain sealed again, and `tessera audit verify --head`
/// exits 4.
async fn a_sealer_stops_when_its_head_is_lost_and_a_kept_head_catches_the_chain_sealed_again() {
    let app = spawn_app().await;
    app.register("dee@example.com", "correct horse battery").await;
    pair(app.login("dee@example.com", "correct horse battery").await).await;
    pair(app.login("dee@example.com", "correct horse battery").await).await;
    let core = app.admin().await;
    let service = &core.state.service;
    let head = service.audit_head().await.unwrap().expect("an intact chain");
    assert!(head.seq >= 2, "{head:?}");
    tessera_audit_verify_head(&app, &head.to_string()).await.unwrap();

    // the second event edited, and its seal and every later one cleared
    tamper(&app, "update audit_events set kind = 'logout' where seq = 2").await;
    tamper(&app, "update audit_events set seq = null, prev_hash = null, hash = null where seq >= 2").await;
    let stopped = service.seal_audit().await.unwrap_err().to_string();
    assert!(stopped.contains(&format!("no longer holds event #{}", head.seq)) && stopped.contains("ends at #1"), "{stopped}");

    // a new process seals the tail again: the chain verifies by itself...
    let fresh = app.admin().await;
    let verdict = fresh.state.service.verify_audit().await.unwrap();
    assert_eq!((verdict.broken, verdict.checked), (None, head.count));
    // ...but holds another event where the kept head was
    let broken = fresh.state.service.verify_audit_against(Some(&head)).await.unwrap().broken.expect("caught against the kept head");
    assert_eq!((broken.seq, broken.reason), (head.seq, tessera_domain::audit::REWRITTEN));
    let e = tessera_audit_verify_head(&app, &head.to_string()).await.unwrap_err();
    assert_eq!(tessera_cli::cli::exit_code(&e), 4);
    assert!(e.to_string().contains("sealed again"), "{e}");
}

crate::both_backends!(
    the_trail_records_what_happened_and_catches_edits_deletions_and_insertions,
    a_sealer_stops_when_its_head_is_lost_and_a_kept_head_catches_the_chain_sealed_again,
);
