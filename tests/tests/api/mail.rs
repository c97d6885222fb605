//! The e-mail channel against a real SMTP server the test starts (aiosmtpd, from
//! `scripts/test-venv.sh`, writing each message it receives into a maildir): the Medods warning
//! of a refresh from a new IP address, and the notice of a password change.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_with};

const KEY: &str = "a-trusted-caller-key-0123";

/// aiosmtpd listening on a free port, delivering into a fresh maildir; stopped on drop.
struct Sink {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

fn start_sink() -> Sink {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test-venv.sh");
    let out = Command::new(script).output().expect("scripts/test-venv.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let python = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let maildir = std::env::temp_dir().join(format!("tessera-maildir-{port}-{}", std::process::id()));
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sink = Sink { child, port, maildir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = sink.child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut sink.child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("aiosmtpd exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "aiosmtpd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    sink
}

/// The messages delivered so far, decoded from quoted-printable enough to read them.
fn messages(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else { return vec![] };
    let mut out: Vec<String> = entries
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().replace("=\r\n", "").replace("=\n", "").replace("=3D", "="))
        .collect();
    out.sort();
    out
}

async fn wait_for(maildir: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = messages(maildir);
        if got.len() >= count || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn app_with_mail(sink: &Sink) -> TestApp {
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    spawn_with(move |s| {
        s.dialects.medods.caller_key = Some(KEY.into());
        s.email.smtp_url = url.clone();
        s.email.from = "Tessera <no-reply@tessera.test>".into();
    })
    .await
}

async fn generate(app: &TestApp, body: Value) -> Value {
    let res =
        app.http.post(app.url("/generate")).header("x-caller-key", KEY).header("user-agent", "client/1").json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn a_refresh_from_a_new_ip_sends_the_user_a_warning_by_email() {
    let sink = start_sink();
    let app = app_with_mail(&sink).await;
    let pair = generate(&app, json!({"user_id": 7, "GUID": "FF4vjiQAU8e6KYq/edxsrQ==", "email": "ann@example.com"})).await;
    // an address that is not one: the Medods error shape
    let bad = app
        .http
        .post(app.url("/generate"))
        .header("x-caller-key", KEY)
        .json(&json!({"user_id": 9, "GUID": "AAAAAAAAAAAAAAAAAAAAAA==", "email": "not an address"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["code"], "invalid_request");
    // a user the caller gave no address: no mail for them
    let other = generate(&app, json!({"user_id": 8, "GUID": "AAAAAAAAAAAAAAAAAAAAAA=="})).await;
    let moved = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    for p in [&pair, &other] {
        let res = moved
            .post(app.url("/refresh"))
            .header("user-agent", "client/1")
            .json(&json!({"access": p["access"], "refresh": p["refresh"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "the refresh goes ahead");
    }
    let got = wait_for(&sink.maildir, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_later = messages(&sink.maildir);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got_later.len(), 1, "only the user with an address gets mail: {got_later:?}");
    let m = &got[0];
    assert!(m.contains("To: ann@example.com"), "{m}");
    assert!(m.contains("From: Tessera <no-reply@tessera.test>"), "{m}");
    assert!(m.contains("Subject: Your session was used from a new address"), "{m}");
    assert!(m.contains("127.0.0.2") && m.contains("127.0.0.1"), "the new and the previous address: {m}");
    assert!(!m.contains(pair["refresh"].as_str().unwrap()) && !m.contains(pair["access"].as_str().unwrap()), "no token in the mail");
}

/// Registers `email` with "correct horse battery", logs in, and changes the password through
/// `POST /v1/password`; the status of the change.
async fn change_password(app: &TestApp, email: &str) -> u16 {
    assert_eq!(app.register(email, "correct horse battery").await.status(), 201);
    let form = [("grant_type", "password"), ("username", email), ("password", "correct horse battery")];
    let tokens: Value = app.http.post(app.url("/oauth/token")).form(&form).send().await.unwrap().json().await.unwrap();
    let res = app
        .http
        .post(app.url("/v1/password"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .json(&json!({"current_password": "correct horse battery", "new_password": "battery staple horse"}))
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

async fn a_password_change_sends_a_notice_by_email() {
    let sink = start_sink();
    let app = app_with_mail(&sink).await;
    assert_eq!(change_password(&app, "bob@example.com").await, 200);
    let got = wait_for(&sink.maildir, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert!(m.contains("To: bob@example.com") && m.contains("Subject: Your password was changed"), "{m}");
    assert!(!m.contains("battery staple horse") && !m.contains("correct horse battery"), "no password in the mail");
}

/// A configured but unreachable SMTP server changes nothing for the request: the password change
/// answers as without e-mail.
async fn an_unreachable_smtp_server_never_fails_a_request() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_with(move |s| s.email.smtp_url = format!("smtp://127.0.0.1:{dead}")).await;
    assert_eq!(change_password(&app, "cy@example.com").await, 200);
}

crate::both_backends!(
    a_refresh_from_a_new_ip_sends_the_user_a_warning_by_email,
    a_password_change_sends_a_notice_by_email,
    an_unreachable_smtp_server_never_fails_a_request,
);
