//! Swagger UI in a real browser: `tests/browser/swagger_ui.py` (Selenium, from
//! `scripts/test-venv.sh`) drives the served `/docs/` in headless Chromium as a user would:
//! registers with "Try it out", logs in with "Try it out" on POST /oauth/token, then logs in with
//! the first form of the Authorize dialog (its only one: the OAuth2 password flow) with only an
//! e-mail and a password (the client id comes prefilled) and calls GET /v1/me. One backend: the
//! page is under test here, not the store.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use crate::helpers::spawn_app;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

#[tokio::test]
async fn swagger_ui_registers_logs_in_and_calls_me_in_a_browser() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing; this test drives headless Chromium: apt-get install chromium chromium-driver"
        );
    }
    let venv = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test-venv.sh")).output().await.unwrap();
    assert!(venv.status.success(), "scripts/test-venv.sh: {}", String::from_utf8_lossy(&venv.stderr));
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_owned();

    let app = spawn_app().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/swagger_ui.py");
    let run = Command::new(python)
        .args([script, &app.address, "tessera"])
        .env("CHROMIUM", CHROMIUM)
        .env("CHROMEDRIVER", CHROMEDRIVER)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser script finishes within 3 minutes")
        .expect("the browser script starts");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Swagger UI could not do it ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status);
}
