//! Replays the captured exchanges of the original Python libraries (`tests/fixtures/`) against
//! Tessera's dialects, through the conformance kit the product ships (`tessera conformance`,
//! `tessera_cli::conformance`): the peers' tokens are replaced by tokens of ours of the same kind
//! (valid, expired, tampered, rotated, ...); status, the headers that matter and the JSON body
//! are compared exactly, JWTs by shape (same claims, same JSON types; our extra `sid` aside).
//! Every case must pass; the only ones skipped are the peers' HTML pages (unknown paths, and
//! Werkzeug's 405 for `GET /login`): Tessera answers those with one RFC 9457 problem.

use serde_json::{Value, json};
use tessera_cli::conformance::{self, CaseResult, Dialect, Era, Options, Outcome, Routes};

use crate::helpers::{TestApp, spawn_with};

/// Runs the kit and fails with its report unless every case passed (the HTML cases aside).
async fn kit(app: &TestApp, dialect: Dialect, era: Era, user: &str, password: &str) -> Vec<CaseResult> {
    let opts = Options {
        dialect,
        era,
        routes: Routes::Documented,
        base_url: app.address.clone(),
        user: user.into(),
        password: password.into(),
        username_field: Some("username".into()),
        hs256_secret: Some(app.key_secret.clone()),
    };
    let run = conformance::run(&opts).await.unwrap();
    let report = conformance::render(&run);
    assert!(run.notes.is_empty(), "configured as the captured app: {report}");
    let results = run.results;
    for r in &results {
        match &r.outcome {
            Outcome::Passed => {}
            Outcome::Skipped(why) => assert!(why.contains("HTML"), "{}: skipped ({why})\n{report}", r.case),
            Outcome::Failed(_) => panic!("{} differs from the original:\n{report}", r.case),
        }
    }
    results
}

// ---------------------------------------------------------------- simplejwt and djoser

async fn django_app(era: &str) -> TestApp {
    let era = era.to_owned();
    spawn_with(move |s| {
        s.dialects.simplejwt.era = era.clone();
        s.dialects.simplejwt.username_field = "username".into();
        // the peers were captured with ROTATE_REFRESH_TOKENS and BLACKLIST_AFTER_ROTATION on
        s.dialects.simplejwt.refresh_policy = tessera_domain::RefreshPolicy::Rotate;
        s.dialects.djoser.refresh_policy = tessera_domain::RefreshPolicy::Rotate;
        s.dialects.djoser.era = era;
    })
    .await
}

async fn replay_django(era: Era, simplejwt_era: &str) {
    let app = django_app(simplejwt_era).await;
    let (email, password) = ("user0001@example.com", "pw-user0001-long");
    assert_eq!(app.register(email, password).await.status(), 201);
    let results = kit(&app, Dialect::Simplejwt, era, email, password).await;
    assert_eq!(results.iter().filter(|r| r.outcome == Outcome::Passed).count(), 33, "every captured case but the HTML 404");

    // beyond the kit's shape check: djoser's own body for our user, and its realm
    let login: Value = app
        .http
        .post(app.url("/api/token/"))
        .json(&json!({"username": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = app
        .http
        .get(app.url("/users/me/"))
        .header("authorization", format!("JWT {}", login["access"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"email": email, "id": 1, "username": email}));
    let res = app.http.get(app.url("/users/me/")).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "JWT realm=\"api\"", "djoser's realm");
}

async fn django_legacy_fixtures_replay_against_simplejwt_and_djoser() {
    replay_django(Era::Legacy, "5.4").await;
}

async fn django_current_fixtures_replay_against_simplejwt_and_djoser() {
    replay_django(Era::Current, "5.5").await;
}

// ---------------------------------------------------------------- flask-jwt-extended

async fn replay_flask(era: Era, flask_era: &str) {
    let era_owned = flask_era.to_owned();
    let app = spawn_with(move |s| {
        s.dialects.flask.era = era_owned;
        s.dialects.flask.envelope = "library".into();
    })
    .await;
    let (email, password) = ("user0001@example.com", "pw-user0001-long");
    assert_eq!(app.register(email, password).await.status(), 201);
    let results = kit(&app, Dialect::Flask, era, email, password).await;
    assert_eq!(results.iter().filter(|r| r.outcome == Outcome::Passed).count(), 26, "every captured case but the two HTML pages");
}

async fn flask_legacy_fixtures_replay_against_the_flask_dialect() {
    replay_flask(Era::Legacy, "3").await;
}

async fn flask_current_fixtures_replay_against_the_flask_dialect() {
    replay_flask(Era::Current, "4").await;
}

crate::both_backends!(
    django_legacy_fixtures_replay_against_simplejwt_and_djoser,
    django_current_fixtures_replay_against_simplejwt_and_djoser,
    flask_legacy_fixtures_replay_against_the_flask_dialect,
    flask_current_fixtures_replay_against_the_flask_dialect,
);
