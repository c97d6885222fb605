//! The `tessera` binary as an operator runs it: configuration errors name their key,
//! production refuses generated secrets, a fresh start needs no configuration and persists the
//! secrets it generates, and SIGTERM stops the server cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tessera(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.current_dir(dir).env_remove("RUST_LOG").env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA") {
            c.env_remove(k);
        }
    }
    // servers run side by side: each one's metrics listener on a free port
    c.env("TESSERA__METRICS__PORT", "0");
    c
}

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-cli-{}", uuid_like()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{t:x}-{}", std::process::id())
}

#[test]
fn bad_configuration_stops_the_start_with_a_message_naming_the_key() {
    let dir = temp_dir();
    let out = tessera(&dir).arg("serve").env("TESSERA__SERVER__PORT", "not-a-port").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.port"), "{err}");

    let out = tessera(&dir).arg("serve").env("TESSERA__TOKENS__ALGORITHM", "none").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens.algorithm"));

    let out = tessera(&dir).arg("serve").env("TESSERA__SERVER__NO_SUCH_KEY", "1").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));
}

#[test]
fn production_refuses_generated_secrets() {
    let dir = temp_dir();
    let out = tessera(&dir).arg("serve").env("TESSERA__ENVIRONMENT", "production").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secrets.master_key") && err.contains("production"), "{err}");
    assert!(!dir.join("data/master.key").exists(), "nothing was generated");
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn http_post(port: u16, path: &str, content_type: &str, body: &str) -> String {
    http_post_with(port, path, content_type, "", body)
}

/// `extra`: more header lines, each ending in CRLF.
fn http_post_with(port: u16, path: &str, content_type: &str, extra: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Starts `tessera serve` on port 0 and returns it with its port and its log so far. `db`
/// empty: nothing configured at all.
fn serve(dir: &std::path::Path, db: &str) -> (std::process::Child, u16, Vec<String>) {
    let mut cmd = tessera(dir);
    cmd.env_remove("DATABASE_URL");
    if !db.is_empty() {
        cmd.env("DATABASE_URL", db);
    }
    let mut child = cmd.arg("serve").env("TESSERA__SERVER__PORT", "0").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // logs go to standard error
    let stdout = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // keep draining after the caller stops listening: a closed pipe would fail the
        // server's own writes
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = vec![];
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let port = line.split("address=http://127.0.0.1:").nth(1).and_then(|p| p.trim().parse::<u16>().ok());
            log.push(line);
            if let Some(port) = port {
                return (child, port, log);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.wait();
            child.stdout.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("tessera exited with {status}: {err}\n{log:?}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tessera did not report its address: {log:?}");
}

fn sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "tessera did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_start_needs_no_configuration_persists_its_secrets_and_stops_on_sigterm() {
    let db = tessera_storage::testing::create_database().await.unwrap();
    let dir = temp_dir();
    let (mut child, port, log) = tokio::task::spawn_blocking({
        let (dir, db) = (dir.clone(), db.clone());
        move || serve(&dir, &db)
    })
    .await
    .unwrap();
    let generated = log.iter().filter(|l| l.contains("generated a new master key")).count();
    assert_eq!(generated, 1, "one clear log line: {log:?}");
    let key_file = dir.join("data/master.key");
    assert!(key_file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let ready = http_get(port, "/health/ready");
    assert!(ready.starts_with("HTTP/1.0 200") || ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(sigterm(&mut child).success(), "a clean exit after SIGTERM");

    // the second start reuses the persisted key: no new one, and the stored signing key opens
    let (mut child, port, log) = tokio::task::spawn_blocking(move || serve(&dir, &db)).await.unwrap();
    assert!(!log.iter().any(|l| l.contains("generated a new master key")), "{log:?}");
    assert!(http_get(port, "/health/live").contains("200"));
    assert!(sigterm(&mut child).success());
}

#[test]
fn a_new_user_runs_it_with_nothing_installed_and_finds_their_data_after_a_restart() {
    let dir = temp_dir();
    let (mut child, port, log) = serve(&dir, "");
    assert!(log.iter().any(|l| l.contains("using SQLite") && l.contains("data/tessera.db")), "one line names the file: {log:?}");
    assert!(dir.join("data/tessera.db").exists());
    #[cfg(unix)]
    {
        // password hashes and sealed keys: the owner's alone
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("data")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(dir.join("data/tessera.db")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.join("data/master.key")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.join("data/medods-caller.key")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Medods' trusted-caller routes are closed: the generated key opens them
    let generate = r#"{"user_id":7,"GUID":"g"}"#;
    let open = http_post(port, "/generate", "application/json", generate);
    assert!(open.contains(" 401 ") && open.contains("unauthorized_caller"), "{open}");
    let key = std::fs::read_to_string(dir.join("data/medods-caller.key")).unwrap();
    assert!(!log.iter().any(|l| l.contains(key.trim())), "the key is never logged");
    let minted = http_post_with(port, "/generate", "application/json", &format!("X-Caller-Key: {}\r\n", key.trim()), generate);
    assert!(minted.contains(" 200 "), "{minted}");
    let created = http_post(port, "/v1/users", "application/json", r#"{"email":"ann@example.com","password":"correct horse battery"}"#);
    assert!(created.contains(" 201 "), "{created}");
    let login = "grant_type=password&username=ann%40example.com&password=correct+horse+battery";
    let tokens = http_post(port, "/oauth/token", "application/x-www-form-urlencoded", login);
    assert!(tokens.contains(" 200 ") && tokens.contains("refresh_token"), "{tokens}");
    let refresh = tokens.split("\"refresh_token\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    assert!(sigterm(&mut child).success());

    // stop, start again: the user and the session are still there
    let (mut child, port, _) = serve(&dir, "");
    let again = http_post(port, "/oauth/token", "application/x-www-form-urlencoded", login);
    assert!(again.contains(" 200 "), "the user survived the restart: {again}");
    let refreshed =
        http_post(port, "/oauth/token", "application/x-www-form-urlencoded", &format!("grant_type=refresh_token&refresh_token={refresh}"));
    assert!(refreshed.contains(" 200 "), "the session survived the restart: {refreshed}");
    assert!(sigterm(&mut child).success());
}

#[test]
fn database_url_sqlite_memory_gives_a_throwaway_run() {
    let dir = temp_dir();
    let (mut child, port, log) = serve(&dir, "sqlite::memory:");
    assert!(log.iter().any(|l| l.contains("sqlite::memory:")), "{log:?}");
    let created = http_post(port, "/v1/users", "application/json", r#"{"email":"ann@example.com","password":"correct horse battery"}"#);
    assert!(created.contains(" 201 "), "{created}");
    assert!(sigterm(&mut child).success());
    assert!(!dir.join("data/tessera.db").exists());
}

/// `tessera key list --json`, then `tessera key rotate --now`: a new key signs, the old one is
/// retired (its tokens still verify), as an operator scripts it.
#[test]
fn an_operator_lists_and_rotates_the_signing_keys() {
    // on its own SQLite file, whatever DATABASE_URL the suite runs with
    let dir = temp_dir();
    let list = |dir: &std::path::Path| -> Vec<serde_json::Value> {
        let out = tessera(dir).env_remove("DATABASE_URL").args(["key", "list", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let first = list(&dir);
    let es: Vec<_> = first.iter().filter(|k| k["alg"] == "ES256").collect();
    assert_eq!(es.len(), 1, "{first:?}");
    assert_eq!(es[0]["state"], "active");
    let out = tessera(&dir).env_remove("DATABASE_URL").args(["key", "rotate", "--now"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signs from now on"));
    let after = list(&dir);
    let states: Vec<(&str, &str)> =
        after.iter().filter(|k| k["alg"] == "ES256").map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap())).collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states.contains(&(es[0]["kid"].as_str().unwrap(), "retired")));
    assert_eq!(states.iter().filter(|(_, s)| *s == "active").count(), 1);
    // times as RFC 3339, as `user list --json` gives them
    let rfc3339 = |v: &serde_json::Value| v.as_str().is_some_and(|t| t.len() == 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z'));
    assert!(after.iter().all(|k| rfc3339(&k["created_at"])), "{after:?}");
    let retired = after.iter().find(|k| k["state"] == "retired").unwrap();
    assert!(rfc3339(&retired["retired_at"]) && rfc3339(&retired["activated_at"]), "{retired}");
    // the text columns in the order the help gives: kid, algorithm, state, created, activated, retired
    let out = tessera(&dir).env_remove("DATABASE_URL").args(["key", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.contains(" retired ") && l.contains("ES256")).unwrap();
    let at = |w: &str| line.find(w).unwrap();
    assert!(at("ES256") < at("retired") && at("created") < at("activated") && at("activated") < at(" retired 2"), "{line}");
    let help = String::from_utf8_lossy(&tessera(&dir).args(["key", "list", "--help"]).output().unwrap().stdout).into_owned();
    assert!(help.contains("kid, algorithm, state, and when created, activated and retired"), "{help}");
    let out = tessera(&dir).env_remove("DATABASE_URL").args(["key", "revoke", "nobody"]).output().unwrap();
    assert!(!out.status.success(), "an unknown kid is an error");
    std::fs::remove_dir_all(&dir).ok();
}

/// With `log.format = "json"` every log line is one JSON object, and the lines written while a
/// request runs carry its request id.
#[test]
fn json_logs_are_json_and_carry_the_request_id() {
    let dir = temp_dir();
    let mut child = tessera(&dir)
        .env_remove("DATABASE_URL")
        .args(["serve"])
        .env("TESSERA__SERVER__PORT", "0")
        .env("TESSERA__LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        assert!(Instant::now() < deadline, "no address in {lines:?}");
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        lines.push(v.clone());
        if let Some(port) = v["fields"]["address"].as_str().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse::<u16>().ok()) {
            break port;
        }
    };
    let body = r#"{"email":"ann@example.com","password":"correct horse battery"}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/users HTTP/1.0\r\nHost: x\r\nX-Request-Id: req-cli-42\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.contains(" 201 ") && answer.to_ascii_lowercase().contains("x-request-id: req-cli-42"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = false;
    while !found && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        // the request's span encloses the use-case's: `spans` lists them outermost first
        let in_request = v["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s["request_id"] == "req-cli-42"));
        found = v["fields"]["message"] == "user registered" && in_request;
        lines.push(v);
    }
    assert!(found, "the registration's log line names its request: {lines:#?}");
    // the access log line names it too (issue 22 item 9: it said `request_id=-`), the client's
    // id or the one made for the request, as the response echoes it
    let access = |rx: &std::sync::mpsc::Receiver<String>, path: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if let Some(m) = v["fields"]["message"].as_str().filter(|m| m.contains(&format!("\"{path} HTTP/1.0\""))) {
                return m.to_owned();
            }
        }
        panic!("no access log line for {path}");
    };
    let line = access(&rx, "POST /v1/users");
    assert!(line.contains("request_id=req-cli-42"), "{line}");
    let answer = http_get(port, "/health/ready");
    let echoed = answer.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("x-request-id: ").map(str::to_owned)).unwrap();
    let line = access(&rx, "GET /health/ready");
    assert!(line.contains(&format!("request_id={}", echoed.trim())), "the made id, as echoed ({echoed}): {line}");
    assert!(sigterm(&mut child).success());
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 22, item 2: started under a low soft limit on open files, `serve` raises it to the hard
/// limit, and caps connections below it, with headroom for the database pool and files.
#[test]
fn serve_raises_the_open_files_limit_and_caps_connections_below_it() {
    let dir = temp_dir();
    let bin = env!("CARGO_BIN_EXE_tessera");
    let mut cmd = Command::new("bash");
    cmd.current_dir(&dir).env_remove("RUST_LOG").env_remove("DATABASE_URL").env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA") {
            cmd.env_remove(k);
        }
    }
    // a hard limit of 2048 (lowering needs no privilege), the soft one far below it
    let mut child = cmd
        .args(["-c", &format!("ulimit -Sn 256 && ulimit -Hn 2048 && exec '{bin}' serve")])
        .env("TESSERA__SERVER__PORT", "0")
        .env("TESSERA__METRICS__PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.iter().any(|l: &String| l.contains("address=http://127.0.0.1:")) {
        assert!(Instant::now() < deadline, "no address in {log:?}");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
        assert!(child.try_wait().unwrap().is_none(), "tessera exited: {log:?}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let open_files: Vec<&str> =
        limits.lines().find(|l| l.starts_with("Max open files")).unwrap().split_whitespace().skip(3).take(2).collect();
    assert_eq!(open_files, ["2048", "2048"], "the soft limit is raised to the hard one: {limits}");
    // 2048 less 128 reserved and the database pool's 16
    let line = log.iter().find(|l| l.contains("connection limits")).unwrap_or_else(|| panic!("{log:?}"));
    assert!(line.contains("max_connections=1904") && line.contains("open_files_limit=2048"), "{line}");
    assert!(line.contains("body_timeout_seconds=10") && line.contains("keep_alive_seconds=5"), "{line}");
    assert!(sigterm(&mut child).success());
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 22, item 9: `tessera audit list | head -2` panicked (exit 101, "failed printing to
/// stdout: Broken pipe") once `head` had gone. A reader that goes away early ends the command
/// quietly, with success: here its standard output is closed before it writes anything.
#[test]
fn output_into_a_reader_that_went_away_ends_quietly() {
    let dir = temp_dir();
    let run = |args: &[&str]| tessera(&dir).env_remove("DATABASE_URL").args(args).output().unwrap();
    // a signing key, and a client whose creation is an audit event: both commands print lines
    assert!(run(&["client", "create", "--client-id", "piped"]).status.success());
    let keys = run(&["key", "list"]);
    assert!(!keys.stdout.is_empty());
    // issue 24: an admin command's answer is its output; its log holds no INFO chatter
    // ("using SQLite", "migrations applied" when none were)
    assert!(keys.stderr.is_empty(), "{}", String::from_utf8_lossy(&keys.stderr));
    assert!(!run(&["audit", "list"]).stdout.is_empty());
    for args in [&["audit", "list"][..], &["audit", "list", "--json"], &["key", "list"], &["openapi"]] {
        let mut child = tessera(&dir).env_remove("DATABASE_URL").args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `tessera import django` from a database the real Django and simplejwt wrote
/// (`tests/fixtures/legacy/django.sql`): ids kept, each user logs in with their old password
/// (Argon2, PBKDF2, bcrypt) and is re-hashed to Tessera's Argon2id; simplejwt's blacklist holds;
/// a live legacy refresh token works; run again, it imports nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_django_deployment_is_imported_and_its_users_log_in_with_their_old_passwords() {
    use sqlx::{ConnectOptions, Connection};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/legacy");
    let tokens: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures.join("tokens.json")).unwrap()).unwrap();
    let d = &tokens["django"];
    let dir = temp_dir();
    let django = dir.join("django.sqlite3");
    let dump = std::fs::read_to_string(fixtures.join("django.sql")).unwrap();
    // a dump, in the order iterdump wrote it: references are checked by Django, not here
    let mut c =
        sqlx::sqlite::SqliteConnectOptions::new().filename(&django).create_if_missing(true).foreign_keys(false).connect().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(dump)).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let config = format!("[dialects.simplejwt]\nlegacy_secret = \"{}\"\n", d["secret"].as_str().unwrap());
    std::fs::write(dir.join("config/default.toml"), config).unwrap();

    let import = || {
        let from = format!("sqlite:{}", django.display());
        let out = tessera(&dir).env_remove("DATABASE_URL").args(["import", "django", "--from", &from, "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = import();
    assert_eq!(first["users_imported"], 6, "{first}");
    assert_eq!(first["users_without_password"], 1, "frank's password is unusable: {first}");
    assert_eq!(first["blacklisted_imported"], 1, "{first}");
    assert_eq!(first["users_skipped"], serde_json::json!([]));
    let again = import();
    assert_eq!((again["users_imported"].clone(), again["users_present"].clone()), (0.into(), 6.into()), "{again}");

    let (mut child, port, _) = serve(&dir, "");
    for user in d["users"].as_array().unwrap() {
        let body = serde_json::json!({"email": user["email"], "password": user["password"]}).to_string();
        let res = http_post(port, "/api/token/", "application/json", &body);
        let ok = user["is_active"] == true && user["password"].is_string();
        assert_eq!(res.contains(" 200 "), ok, "{} ({}): {res}", user["email"], user["hasher"]);
    }
    let refresh = |token: &serde_json::Value| {
        http_post(port, "/api/token/refresh/", "application/json", &serde_json::json!({"refresh": token}).to_string())
    };
    let blacklisted = refresh(&d["alice_blacklisted_refresh"]);
    assert!(blacklisted.contains(" 401 ") && blacklisted.contains("blacklisted"), "{blacklisted}");
    assert!(refresh(&d["alice"]["refresh"]).contains(" 200 "));
    let created = http_post(port, "/v1/users", "application/json", r#"{"email":"new@example.com","password":"correct horse battery"}"#);
    assert!(created.contains("\"id\":7"), "new ids continue above the imported ones: {created}");
    assert!(sigterm(&mut child).success());

    let mut c = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("data/tessera.db")).connect().await.unwrap();
    let hashes: Vec<(i64, Option<String>)> =
        sqlx::query_as("select id, password_hash from users order by id").fetch_all(&mut c).await.unwrap();
    for (id, hash) in &hashes[..4] {
        assert!(hash.as_deref().unwrap().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "user {id} logged in and was re-hashed: {hash:?}");
    }
    assert!(hashes[4].1.as_deref().unwrap().starts_with("argon2$"), "erin never logged in: her Django hash stays");
    assert_eq!(hashes[5].1, None);
    c.close().await.unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// `tessera audit list | verify` as an operator uses them: key rotations and client changes are
/// in the trail, and a row edited by hand in the database is caught (exit 4, naming the event).
#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_catches_a_row_edited_by_hand() {
    use sqlx::{ConnectOptions, Connection};
    let dir = temp_dir();
    let run = |args: &[&str]| tessera(&dir).env_remove("DATABASE_URL").args(args).output().unwrap();
    assert!(run(&["client", "create", "--client-id", "billing", "--confidential"]).status.success());
    assert!(run(&["key", "rotate", "--now"]).status.success());
    let ok = run(&["audit", "verify"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("audit trail intact"));
    let list = run(&["audit", "list", "--json"]);
    let events: Vec<serde_json::Value> =
        String::from_utf8(list.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"client_created") && kinds.contains(&"key_rotated"), "{kinds:?}");
    assert!(!events.iter().any(|e| e.to_string().contains("client_secret")), "no secret in the trail");

    let mut c = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("data/tessera.db")).connect().await.unwrap();
    sqlx::query("update audit_events set detail = '{\"client_id\":\"someone-else\"}' where kind = 'client_created'")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let broken = run(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(4), "a check that found a problem");
    let err = String::from_utf8_lossy(&broken.stderr);
    assert!(err.contains("audit trail broken at event #") && err.contains("edited"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The database an audit attack runs on: a SQLite file in the directory, or a fresh Postgres
/// database; the CLI runs on it, and `tamper` writes to it as someone with write access would.
struct AuditDb {
    dir: std::path::PathBuf,
    url: Option<String>,
}

impl AuditDb {
    async fn new(postgres: bool) -> Self {
        let url = if postgres { Some(tessera_storage::testing::create_database().await.unwrap()) } else { None };
        Self { dir: temp_dir(), url }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = tessera(&self.dir);
        c.env_remove("DATABASE_URL");
        if let Some(url) = &self.url {
            c.env("DATABASE_URL", url);
        }
        c.args(args).output().unwrap()
    }

    async fn tamper(&self, sql: &str) {
        use sqlx::{ConnectOptions, Connection};
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.url {
            Some(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            None => {
                let mut c = sqlx::sqlite::SqliteConnectOptions::new().filename(self.dir.join("data/tessera.db")).connect().await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }

    /// Five events, sealed, and the head `tessera audit head` prints for them.
    fn five_events_and_their_head(&self) -> String {
        for id in ["alpha", "beta", "gamma", "delta"] {
            assert!(self.run(&["client", "create", "--client-id", id]).status.success());
        }
        assert!(self.run(&["key", "rotate", "--now"]).status.success());
        let head = self.run(&["audit", "head"]);
        assert!(head.status.success(), "{}", String::from_utf8_lossy(&head.stderr));
        let head = String::from_utf8(head.stdout).unwrap().trim().to_owned();
        assert!(head.starts_with("audit-head.v1.5.5."), "{head}");
        let json = &json_lines(&self.run(&["audit", "head", "--json"]))[0];
        assert_eq!((json["seq"].as_i64(), json["count"].as_u64(), json["head"].as_str()), (Some(5), Some(5), Some(head.as_str())));
        self.intact_against(&head);
        head
    }

    fn intact(&self) {
        let ok = self.run(&["audit", "verify"]);
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    }

    fn intact_against(&self, head: &str) {
        let ok = self.run(&["audit", "verify", "--head", head]);
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        assert!(String::from_utf8_lossy(&ok.stdout).contains("holds the kept head (event #5)"));
    }

    /// `audit verify --head` fails with exit 4, saying `what`.
    fn caught_against(&self, head: &str, what: &str) {
        let out = self.run(&["audit", "verify", "--head", head]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(err.contains("audit trail broken at event #") && err.contains(what), "{what}: {err}");
    }

    fn seal_columns(&self) -> &'static str {
        "seq = null, prev_hash = null, hash = null"
    }
}

/// Issue 21, item 11: the attacks that shortened or re-sealed the audit chain unnoticed, each
/// replayed by hand in the database (SQLite and Postgres) and caught by `tessera audit verify
/// --head` with the head `tessera audit head` printed before. Without a kept head the database
/// alone cannot show them, and plain `audit verify` still says intact (see the README).
#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_against_a_kept_head_catches_truncation_resealing_and_a_middle_deletion() {
    for postgres in [false, true] {
        // the newest events deleted
        let db = AuditDb::new(postgres).await;
        let head = db.five_events_and_their_head();
        db.tamper("delete from audit_events where seq >= 4").await;
        db.intact();
        db.caught_against(&head, "the chain ends before the kept head");

        // an event edited and the tail from it un-sealed, so that the sealer chains it again
        let db = AuditDb::new(postgres).await;
        let head = db.five_events_and_their_head();
        db.tamper(&format!("update audit_events set detail = '{{\"client_id\":\"mallory\"}}', {} where seq >= 3", db.seal_columns())).await;
        // against the kept head nothing is sealed: the chain now ends before it
        db.caught_against(&head, "the chain ends before the kept head");
        // a plain verify seals the tail again, and the chain verifies by itself...
        db.intact();
        // ...but no longer holds the kept head
        db.caught_against(&head, "sealed again");
        let err = String::from_utf8_lossy(&db.run(&["audit", "verify", "--head", &head]).stderr).into_owned();
        assert!(err.contains("event #5 (row id 5)"), "{err}");

        // an event in the middle deleted and the events after it sealed again
        let db = AuditDb::new(postgres).await;
        let head = db.five_events_and_their_head();
        db.tamper(&format!("delete from audit_events where seq = 3; update audit_events set {} where seq > 3", db.seal_columns())).await;
        db.intact();
        db.caught_against(&head, "the chain ends before the kept head");
        // one more event brings the chain back to five: still not the kept one
        assert!(db.run(&["client", "create", "--client-id", "epsilon"]).status.success());
        db.intact();
        db.caught_against(&head, "sealed again");

        // an edited head, and one that is no head at all
        let forged = head.replacen("audit-head.v1.5.5.", "audit-head.v1.4.4.", 1);
        let out = db.run(&["audit", "verify", "--head", &forged]);
        assert_eq!(out.status.code(), Some(4));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not genuine"), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(db.run(&["audit", "verify", "--head", "latest"]).status.code(), Some(2));
        std::fs::remove_dir_all(&db.dir).ok();
    }
}

/// The running server logs the audit chain's keyed head (at its first sealing, then every five
/// minutes), and the logged head is one `tessera audit verify --head` checks the trail against.
#[test]
fn the_server_logs_the_audit_head_and_the_logged_head_verifies() {
    let dir = temp_dir();
    let run = |args: &[&str]| tessera(&dir).env_remove("DATABASE_URL").args(args).output().unwrap();
    assert!(run(&["client", "create", "--client-id", "billing"]).status.success());
    assert!(run(&["key", "rotate", "--now"]).status.success());
    let mut child = tessera(&dir)
        .env_remove("DATABASE_URL")
        .args(["serve"])
        .env("TESSERA__SERVER__PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut logged, mut listening) = (None, false);
    while (logged.is_none() || !listening) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            listening |= line.contains("address=http://127.0.0.1:");
            if line.contains("audit head") {
                logged = Some(line);
            }
        }
    }
    assert!(sigterm(&mut child).success());
    let line = logged.expect("the server logs the audit head");
    assert!(line.contains("INFO") && line.contains("seq=") && line.contains("count="), "{line}");
    let head = line.split("head=").nth(1).and_then(|h| h.split_whitespace().next()).unwrap();
    assert!(head.starts_with("audit-head.v1."), "{line}");
    let ok = run(&["audit", "verify", "--head", head]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("holds the kept head"));
    std::fs::remove_dir_all(&dir).ok();
}

/// `GET /v1/me` with a bearer token: the raw response.
fn me_at(port: u16, access: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /v1/me HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {access}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Polls `still` until it turns false or `seconds` pass: a running server hears of another
/// process's change within its poll or cache time.
fn wait_while(seconds: u64, mut still: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while still() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The body of a raw HTTP/1.0 response.
fn body_of(response: &str) -> serde_json::Value {
    serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap_or(serde_json::Value::Null)
}

#[test]
fn an_operator_lists_a_users_sessions_as_json_and_ends_one_that_the_running_server_then_refuses() {
    let dir = temp_dir();
    let (mut child, port, _) = serve(&dir, "");
    let registered = http_post(port, "/v1/users", "application/json", r#"{"email":"ann@example.com","password":"correct horse battery"}"#);
    assert!(registered.contains(" 201 "), "{registered}");
    let form = "grant_type=password&username=ann%40example.com&password=correct+horse+battery";
    let laptop = body_of(&http_post_with(port, "/oauth/token", "application/x-www-form-urlencoded", "User-Agent: Laptop/1.0\r\n", form));
    let phone = body_of(&http_post_with(port, "/oauth/token", "application/x-www-form-urlencoded", "User-Agent: Phone/2.0\r\n", form));
    let me = |access: &str| me_at(port, access);
    let laptop_access = laptop["access_token"].as_str().unwrap();
    assert!(me(laptop_access).contains(" 200 "));

    let run = |args: &[&str]| tessera(&dir).env_remove("DATABASE_URL").args(args).output().unwrap();
    let list = run(&["session", "list", "--email", "ann@example.com", "--json"]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let sessions: Vec<serde_json::Value> =
        String::from_utf8(list.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions[0]["user_agent"], "Phone/2.0", "newest first");
    assert_eq!((sessions[1]["user_agent"].as_str(), sessions[1]["api"].as_str()), (Some("Laptop/1.0"), Some("native")));
    let laptop_id = sessions[1]["id"].as_str().unwrap();

    let revoked = run(&["session", "revoke", "--id", laptop_id]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    // the running server hears of it within its revocation poll (a second on SQLite)
    wait_while(10, || me(laptop_access).contains(" 200 "));
    assert!(me(laptop_access).contains(" 401 "), "the ended session's access token is refused");
    let refresh = format!("grant_type=refresh_token&refresh_token={}", laptop["refresh_token"].as_str().unwrap());
    assert!(http_post(port, "/oauth/token", "application/x-www-form-urlencoded", &refresh).contains(" 400 "));
    assert!(me(phone["access_token"].as_str().unwrap()).contains(" 200 "), "the other session goes on");

    // an ended or unknown session and an unknown user are "not found" (exit 3); a bad id is a
    // usage error (2)
    let again = run(&["session", "revoke", "--id", laptop_id]);
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no live session"));
    assert_eq!(run(&["session", "revoke", "--id", "not-a-uuid"]).status.code(), Some(2));
    let nobody = run(&["session", "list", "--email", "nobody@example.com"]);
    assert_eq!(nobody.status.code(), Some(3));
    let after = run(&["session", "list", "--email", "ann@example.com"]);
    assert_eq!(String::from_utf8(after.stdout).unwrap().lines().count(), 1);
    assert!(sigterm(&mut child).success());
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `tessera` with `input` on standard input.
fn run_with_input(dir: &std::path::Path, args: &[&str], input: &str) -> std::process::Output {
    let mut child = tessera(dir)
        .env_remove("DATABASE_URL")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn password_grant(port: u16, email: &str, password: &str) -> String {
    let form = format!("grant_type=password&username={}&password={}", email.replace('@', "%40"), password.replace(' ', "+"));
    http_post(port, "/oauth/token", "application/x-www-form-urlencoded", &form)
}

/// Every user task from the CLI, as a script would run it: JSON out, the password piped in (no
/// prompt), and exit codes that tell "not found" (3) from "refused" (2) from "exists" (5).
#[test]
fn an_operator_manages_users_from_the_cli_with_json() {
    let dir = temp_dir();
    let created = run_with_input(&dir, &["user", "create", "--email", "ann@example.com", "--json"], "correct horse battery\n");
    let ann = &json_lines(&created)[0];
    assert_eq!((ann["email"].as_str(), ann["status"].as_str()), (Some("ann@example.com"), Some("active")));
    assert!(!String::from_utf8_lossy(&created.stderr).contains("password:"), "no prompt when the password is piped");
    let again = run_with_input(&dir, &["user", "create", "--email", "ann@example.com"], "correct horse battery\n");
    assert_eq!(again.status.code(), Some(5), "{}", String::from_utf8_lossy(&again.stderr));
    let weak = run_with_input(&dir, &["user", "create", "--email", "bob@example.com"], "short\n");
    assert_eq!(weak.status.code(), Some(2), "{}", String::from_utf8_lossy(&weak.stderr));
    json_lines(&run_with_input(&dir, &["user", "create", "--email", "bob@example.com", "--json"], "bob's long password\n"));

    let run = |args: &[&str]| tessera(&dir).env_remove("DATABASE_URL").args(args).output().unwrap();
    let users = json_lines(&run(&["user", "list", "--json"]));
    let emails: Vec<&str> = users.iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["ann@example.com", "bob@example.com"]);
    let page = json_lines(&run(&["user", "list", "--json", "--after", &users[0]["id"].to_string()]));
    assert_eq!(page.len(), 1);
    let shown = &json_lines(&run(&["user", "show", "--email", "ann@example.com", "--json"]))[0];
    assert_eq!((shown["id"].clone(), shown["live_sessions"].clone()), (ann["id"].clone(), serde_json::json!(0)));
    assert_eq!(run(&["user", "show", "--email", "nobody@example.com"]).status.code(), Some(3));

    let (mut child, port, _) = serve(&dir, "");
    let before = body_of(&password_grant(port, "ann@example.com", "correct horse battery"));
    let access = before["access_token"].as_str().unwrap().to_owned();
    let me = |access: &str| me_at(port, access);
    assert!(me(&access).contains(" 200 "));

    // set-password: the old password stops working and every session ends
    let set = run_with_input(&dir, &["user", "set-password", "--email", "ann@example.com", "--json"], "a brand new password\n");
    assert_eq!(json_lines(&set)[0]["sessions_ended"], 1);
    assert!(password_grant(port, "ann@example.com", "correct horse battery").contains(" 400 "));
    assert!(password_grant(port, "ann@example.com", "a brand new password").contains(" 200 "));
    wait_while(10, || me(&access).contains(" 200 "));
    assert!(me(&access).contains(" 401 "), "the sessions from before the new password ended");

    // delete: refused without --yes; then the user is gone and the address is free again
    let unconfirmed = run(&["user", "delete", "--email", "bob@example.com"]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    let bob_tokens = body_of(&password_grant(port, "bob@example.com", "bob's long password"));
    let deleted = &json_lines(&run(&["user", "delete", "--email", "bob@example.com", "--yes", "--json"]))[0];
    assert_eq!((deleted["deleted"].as_bool(), deleted["sessions_ended"].as_u64()), (Some(true), Some(1)));
    assert!(password_grant(port, "bob@example.com", "bob's long password").contains(" 400 "));
    wait_while(10, || me(bob_tokens["access_token"].as_str().unwrap()).contains(" 200 "));
    assert!(me(bob_tokens["access_token"].as_str().unwrap()).contains(" 401 "));
    assert_eq!(run(&["user", "show", "--email", "bob@example.com"]).status.code(), Some(3));
    let users = json_lines(&run(&["user", "list", "--json"]));
    assert!(!users.iter().any(|u| u.to_string().contains("bob")), "nothing of bob is left: {users:?}");
    let back = http_post(port, "/v1/users", "application/json", r#"{"email":"bob@example.com","password":"bob's long password"}"#);
    assert!(back.contains(" 201 "), "{back}");
    assert!(body_of(&back)["id"].as_i64().unwrap() > deleted["id"].as_i64().unwrap(), "a deleted user's id is never given out again");
    assert!(sigterm(&mut child).success());
    std::fs::remove_dir_all(&dir).ok();
}

/// A client for the client_credentials grant, made from the command line: what it may ask for is
/// shown, its token is served by the running server, and what cannot work is refused with a
/// usage error naming the flag.
#[test]
fn an_operator_creates_a_client_for_the_client_credentials_grant() {
    let dir = temp_dir();
    let run = |args: &[&str]| tessera(&dir).env_remove("DATABASE_URL").args(args).output().unwrap();
    let create = ["client", "create", "--client-id", "reports", "--confidential", "--scope", "reports:read", "--scope", "reports:write"];
    let created = &json_lines(&run(&[&create[..], &["--audience", "reports-api", "--exchange", "access_token", "--json"]].concat()))[0];
    assert_eq!((&created["exchange_types"], &created["require_dpop"]), (&serde_json::json!(["access_token"]), &serde_json::json!(false)));
    let bound = &json_lines(&run(&["client", "create", "--client-id", "mobile", "--require-dpop", "--json"]))[0];
    assert_eq!(bound["require_dpop"], true);
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        (&created["scopes"], &created["audiences"]),
        (&serde_json::json!(["reports:read", "reports:write"]), &serde_json::json!(["reports-api"]))
    );
    let shown = String::from_utf8(run(&["client", "show", "--client-id", "reports"]).stdout).unwrap();
    assert!(shown.ends_with("scopes reports:read reports:write\naudiences reports-api\n"), "{shown}");

    for (args, flag) in [
        (&["client", "create", "--client-id", "p", "--audience", "api"][..], "--audience"),
        (&["client", "create", "--client-id", "42", "--confidential", "--audience", "api"][..], "--audience"),
        (&["client", "create", "--client-id", "s", "--confidential", "--scope", "read"][..], "--scope"),
        (&["client", "create", "--client-id", "q", "--confidential", "--audience", "api", "--scope", "a\"b"][..], "--scope"),
        (&["client", "create", "--client-id", "w", "--confidential", "--audience", "two words"][..], "--audience"),
        (&["client", "create", "--client-id", "x", "--confidential", "--exchange", "access_token"][..], "--exchange"),
        (&["client", "create", "--client-id", "y", "--confidential", "--audience", "api", "--exchange", "id_token"][..], "--exchange"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(flag), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    let (mut child, port, _) = serve(&dir, "");
    let form = format!("grant_type=client_credentials&client_id=reports&client_secret={secret}&scope=reports%3Aread");
    let answer = http_post(port, "/oauth/token", "application/x-www-form-urlencoded", &form);
    assert!(answer.contains(" 200 "), "{answer}");
    let body = body_of(&answer);
    assert_eq!((body["scope"].as_str(), body.get("refresh_token")), (Some("reports:read"), None));
    assert!(sigterm(&mut child).success());
    std::fs::remove_dir_all(&dir).ok();
}

/// Every client task from the CLI: a rotated secret replaces the old one on the running
/// server, a new profile changes new sessions' lifetimes, a deleted client's sessions end.
#[test]
fn an_operator_manages_oauth_clients_from_the_cli_with_json() {
    let dir = temp_dir();
    let run = |args: &[&str]| tessera(&dir).env_remove("DATABASE_URL").args(args).output().unwrap();
    let created = &json_lines(&run(&["client", "create", "--client-id", "billing", "--confidential", "--json"]))[0];
    let first_secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!((created["confidential"].as_bool(), created["profile"].as_str()), (Some(true), Some("standard")));
    assert_eq!(run(&["client", "create", "--client-id", "billing"]).status.code(), Some(5));
    assert_eq!(run(&["client", "create", "--client-id", "x", "--profile", "nope"]).status.code(), Some(2));
    let ids: Vec<String> =
        json_lines(&run(&["client", "list", "--json"])).iter().map(|c| c["client_id"].as_str().unwrap().to_owned()).collect();
    assert!(ids.contains(&"billing".to_owned()), "{ids:?}");
    let shown = &json_lines(&run(&["client", "show", "--client-id", "billing", "--json"]))[0];
    assert!(shown.get("client_secret").is_none() && !shown.to_string().contains(&first_secret), "a secret is shown only once");
    assert_eq!(run(&["client", "show", "--client-id", "nope"]).status.code(), Some(3));

    run_with_input(&dir, &["user", "create", "--email", "ann@example.com"], "correct horse battery\n");
    // this test logs in often, waiting for the server's client cache
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/default.toml"), "[password]\nattempts_per_address_per_minute = 1000\n").unwrap();
    let (mut child, port, _) = serve(&dir, "");
    let grant = |secret: &str| {
        let form = format!(
            "grant_type=password&username=ann%40example.com&password=correct+horse+battery&client_id=billing&client_secret={secret}"
        );
        http_post(port, "/oauth/token", "application/x-www-form-urlencoded", &form)
    };
    let first = grant(&first_secret);
    assert!(first.contains(" 200 "), "{first}");
    assert_eq!(body_of(&first)["expires_in"], 300, "the standard profile");

    let rotated = &json_lines(&run(&["client", "rotate-secret", "--client-id", "billing", "--json"]))[0];
    let second_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(second_secret, first_secret);
    // the running server reads clients again within oauth's client cache (10 s)
    wait_while(15, || grant(&first_secret).contains(" 200 "));
    let old = grant(&first_secret);
    assert!(old.contains(" 401 "), "the old secret stopped working: {old}");
    assert!(grant(&second_secret).contains(" 200 "));

    let changed = &json_lines(&run(&["client", "set-profile", "--client-id", "billing", "--profile", "extended", "--json"]))[0];
    assert_eq!(changed["profile"], "extended");
    wait_while(15, || body_of(&grant(&second_secret))["expires_in"] == 300);
    let extended = body_of(&grant(&second_secret));
    assert_eq!(extended["expires_in"], 7200, "new sessions get the extended profile: {extended}");

    let live = json_lines(&run(&["session", "list", "--email", "ann@example.com", "--json"]));
    assert!(live.iter().any(|s| s["client_id"] == "billing"));
    assert_eq!(run(&["client", "delete", "--client-id", "billing"]).status.code(), Some(2), "needs --yes");
    let deleted = &json_lines(&run(&["client", "delete", "--client-id", "billing", "--yes", "--json"]))[0];
    assert!(deleted["sessions_ended"].as_u64().unwrap() >= 3, "{deleted}");
    let live = json_lines(&run(&["session", "list", "--email", "ann@example.com", "--json"]));
    assert!(!live.iter().any(|s| s["client_id"] == "billing"), "{live:?}");
    assert_eq!(run(&["client", "show", "--client-id", "billing"]).status.code(), Some(3));
    let kinds: Vec<String> =
        json_lines(&run(&["audit", "list", "--limit", "1000", "--json"])).iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    for kind in ["client_created", "client_secret_rotated", "client_changed", "client_deleted"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    assert!(sigterm(&mut child).success());
    std::fs::remove_dir_all(&dir).ok();
}

/// `tessera doctor` says what is wrong in plain words, and exits 4 when something is.
#[test]
fn doctor_names_what_is_wrong() {
    let dir = temp_dir();
    let run = |args: &[&str]| tessera(&dir).env_remove("DATABASE_URL").args(args).output().unwrap();
    let fresh = run(&["doctor"]);
    let text = String::from_utf8_lossy(&fresh.stdout).into_owned();
    assert!(fresh.status.success(), "a fresh checkout has nothing wrong, only notes: {text}");
    assert!(text.contains("no SQLite file") && text.contains("master key"), "{text}");

    let (mut child, _, _) = serve(&dir, "");
    assert!(sigterm(&mut child).success());
    let findings = json_lines(&run(&["doctor", "--json"]));
    let checks: Vec<(&str, &str)> = findings.iter().map(|f| (f["check"].as_str().unwrap(), f["status"].as_str().unwrap())).collect();
    for check in ["configuration", "apis", "master key", "database", "migrations", "signing keys", "port"] {
        assert!(checks.contains(&(check, "ok")), "{check} is ok after a start: {checks:?}");
    }

    let bad = tessera(&dir).env_remove("DATABASE_URL").env("TESSERA__TOKENS__ALGORITHM", "none").arg("doctor").output().unwrap();
    assert_eq!(bad.status.code(), Some(4));
    let said = String::from_utf8_lossy(&bad.stdout).into_owned();
    assert!(said.contains("tokens.algorithm"), "{said}");
    // the value came from the environment, and the finding says so, not the file
    assert!(said.contains("PROBLEM configuration  environment variable TESSERA__TOKENS__ALGORITHM:"), "{said}");

    // a port held by another program stops the next start: a problem, exit 4
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port().to_string();
    let held = tessera(&dir).env_remove("DATABASE_URL").env("TESSERA__SERVER__PORT", &port).arg("doctor").output().unwrap();
    let said = String::from_utf8_lossy(&held.stdout).into_owned();
    assert_eq!(held.status.code(), Some(4), "{said}");
    assert!(said.contains(&format!("PROBLEM port           cannot listen on 127.0.0.1:{port}")) && said.contains("not Tessera"), "{said}");
    drop(other);
    // held by a running Tessera (doctor beside a live server): that is fine
    let (mut child, port, _) = serve(&dir, "");
    let beside = tessera(&dir).env_remove("DATABASE_URL").env("TESSERA__SERVER__PORT", port.to_string()).arg("doctor").output().unwrap();
    let said = String::from_utf8_lossy(&beside.stdout).into_owned();
    assert!(beside.status.success(), "{said}");
    assert!(said.contains("in use by a running Tessera"), "{said}");
    assert!(sigterm(&mut child).success());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.join("data/master.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = run(&["doctor"]);
        assert_eq!(open.status.code(), Some(4));
        assert!(String::from_utf8_lossy(&open.stdout).contains("chmod 600"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    let other = tessera(&dir).env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none").arg("doctor").output().unwrap();
    assert_eq!(other.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&other.stdout).contains("cannot reach PostgreSQL at postgres://nobody@127.0.0.1:1/none"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A convert-token provider without `audience` would accept the ID tokens it minted for any other
/// application: the start refuses it, naming the key, and `tessera doctor` says why.
#[test]
fn a_convert_token_provider_without_an_audience_stops_the_start_and_doctor_says_why() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let provider = "[dialects.drf_social_oauth2.providers.google]\nissuer = \"https://accounts.google.com\"\n\
                    jwks_url = \"https://www.googleapis.com/oauth2/v3/certs\"\n";
    std::fs::write(dir.join("config/default.toml"), provider).unwrap();
    let key = "dialects.drf_social_oauth2.providers.google.audience";

    let mut child = tessera(&dir).env_remove("DATABASE_URL").arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = child.try_wait().unwrap().is_none();
    if started {
        child.kill().ok();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!started && !out.status.success(), "the server started: {err}");
    assert!(err.contains(key) && err.contains("any other application"), "{err}");
    assert!(!dir.join("data").exists(), "nothing was started or generated");

    let doctor = tessera(&dir).env_remove("DATABASE_URL").args(["doctor", "--json"]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(4));
    let findings: Vec<serde_json::Value> =
        String::from_utf8_lossy(&doctor.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let config = findings.iter().find(|f| f["check"] == "configuration").unwrap();
    assert_eq!(config["status"], "problem");
    let detail = config["detail"].as_str().unwrap();
    assert!(detail.contains(key) && detail.contains("any other application"), "{detail}");

    // with the audience (the client id the provider issued to this application) all is well
    std::fs::write(dir.join("config/default.toml"), format!("{provider}audience = \"1234.apps.example\"\n")).unwrap();
    let fixed = json_lines(&tessera(&dir).env_remove("DATABASE_URL").args(["doctor", "--json"]).output().unwrap());
    assert_eq!(fixed.iter().find(|f| f["check"] == "configuration").unwrap()["status"], "ok", "{fixed:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `tessera conformance` against a running Tessera, as a team migrating from simplejwt would run
/// it: every captured case reported, none failed; the expired-token cases need the signing
/// secret, so they are skipped here (the e2e suite runs them with it).
#[test]
fn the_conformance_kit_reports_every_simplejwt_case_against_a_running_tessera() {
    let dir = temp_dir();
    let (mut child, port, _) = serve(&dir, "");
    let created = http_post(port, "/v1/users", "application/json", r#"{"email":"ann@example.com","password":"correct horse battery"}"#);
    assert!(created.contains(" 201 "), "{created}");
    let base = format!("http://127.0.0.1:{port}");
    // a default Tessera, with only --base-url and --user: simplejwt's default keeps the refresh
    // token, where the captured Django app rotated it, and logs in by e-mail, where it took a
    // username. The kit finds both, says which setting differs, and fails nothing.
    let args = ["conformance", "--dialect", "simplejwt", "--base-url", &base, "--user", "ann@example.com"];
    let out = run_with_input(&dir, &args, "correct horse battery\n");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("PASS  login_ok\n") && report.contains("PASS  login_missing_fields\n"), "{report}");
    assert!(report.contains("SKIP  refresh_ok: the deployment keeps refresh tokens"), "{report}");
    assert!(report.contains("NOTE  refresh rotation differs") && report.contains("refresh_policy = \"rotate\""), "{report}");
    assert!(
        report.contains("NOTE  the login form names the user `email`") && report.contains("dialects.simplejwt.username_field"),
        "{report}"
    );
    assert!(report.lines().last().unwrap().starts_with("26 passed, 0 failed, 8 skipped"), "{report}");
    assert!(sigterm(&mut child).success());

    // configured as the captured app was: every case passes
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/default.toml"), "[dialects.simplejwt]\nrefresh_policy = \"rotate\"\n").unwrap();
    let (mut child, port, _) = serve(&dir, "");
    let base = format!("http://127.0.0.1:{port}");
    let args = ["conformance", "--dialect", "simplejwt", "--base-url", &base, "--user", "ann@example.com", "--username-field", "email"];
    let out = run_with_input(&dir, &args, "correct horse battery\n");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary = report.lines().last().unwrap();
    assert!(summary.starts_with("30 passed, 0 failed, 4 skipped"), "{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("PASS") || l.starts_with("SKIP")).count(), 34, "every captured case");

    // a wrong password is not a conformance failure of the deployment: the kit says it cannot log in
    let wrong = run_with_input(&dir, &args, "not the password\n");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("logging in as ann@example.com"));
    assert!(sigterm(&mut child).success());
    std::fs::remove_dir_all(&dir).ok();
}

/// Ctrl-C (SIGINT) stops the server as gracefully as SIGTERM does, and the log says so.
#[test]
fn ctrl_c_stops_gracefully() {
    let dir = temp_dir();
    let mut child = tessera(&dir)
        .env_remove("DATABASE_URL")
        .arg("serve")
        .env("TESSERA__SERVER__PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    assert!(lines.by_ref().any(|l| l.contains("Tessera is listening")), "the server started");
    let sent = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(sent.success());
    let rest: Vec<String> = lines.collect();
    assert!(child.wait().unwrap().success());
    let log = rest.join("\n");
    assert!(log.contains("stopping gracefully") && log.contains("SIGINT"), "{log}");
    assert!(!log.to_lowercase().contains("forced"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The conformance kit against the original service itself, from PyPI, configured as the
/// captured app was (`tests/peers/django`), in both eras: Django 5.2 with simplejwt 5.5.1 and
/// djoser 2.3.5 (`--era current`), Django 4.2 with simplejwt 5.3.1 and djoser 2.2.3 (`--era
/// legacy`). Every captured case passes, the expired ones made with the peer's own secret; only
/// the HTML 404 is skipped. The kit compares like with like, whichever side it is pointed at.
#[test]
fn the_conformance_kit_passes_against_the_original_django_service() {
    the_kit_against_the_django_peer("current", &[]);
    the_kit_against_the_django_peer("legacy", &["django-legacy"]);
}

/// The secret every peer signs with.
const PEER_SECRET: &str = "the-original-services-secret-key-0123456789abcdef";

/// The venv's python (`scripts/test-venv.sh` with `venv_args`), a fresh directory holding the
/// peer's secret, and a free port.
fn peer_setup(venv_args: &[&str]) -> (String, std::path::PathBuf, u16) {
    let venv = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-venv.sh")).args(venv_args).output().unwrap();
    assert!(venv.status.success(), "{}", String::from_utf8_lossy(&venv.stderr));
    let dir = temp_dir();
    std::fs::write(dir.join("secret"), PEER_SECRET).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    (String::from_utf8(venv.stdout).unwrap().trim().to_owned(), dir, port)
}

/// Waits for the peer on `port`, runs `tessera conformance` against it as the captured app's
/// user, stops the peer, and returns the report; the kit must have passed.
fn kit_against_peer(mut peer: std::process::Child, port: u16, dir: &std::path::Path, dialect: &str, era: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline && peer.try_wait().unwrap().is_none(), "the {dialect} peer did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let base = format!("http://127.0.0.1:{port}");
    let secret_file = dir.join("secret");
    let args = [
        "conformance",
        "--dialect",
        dialect,
        "--era",
        era,
        "--routes",
        "captured",
        "--base-url",
        &base,
        "--user",
        "user0001",
        "--hs256-secret-file",
        secret_file.to_str().unwrap(),
    ];
    let out = run_with_input(dir, &args, "pw-user0001\n");
    let _ = peer.kill();
    let _ = peer.wait();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{dialect} {era}: {report}\n{}", String::from_utf8_lossy(&out.stderr));
    report
}

fn the_kit_against_the_django_peer(era: &str, venv_args: &[&str]) {
    let (python, dir, port) = peer_setup(venv_args);
    let django = |args: &[&str]| {
        let mut c = Command::new(&python);
        c.args(args)
            .current_dir(&dir)
            .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/peers/django"))
            .env("DJANGO_SETTINGS_MODULE", "peer.settings")
            .env("PEER_DB", dir.join("peer.sqlite3"))
            .env("PEER_SECRET", PEER_SECRET);
        c
    };
    let migrated = django(&["-m", "django", "migrate", "-v", "0"]).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let code = "import django; django.setup(); from django.contrib.auth.models import User; User.objects.create_user('user0001', 'user0001@example.com', 'pw-user0001')";
    assert!(django(&["-c", code]).status().unwrap().success());
    let peer = django(&["-m", "django", "runserver", &format!("127.0.0.1:{port}"), "--noreload"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let report = kit_against_peer(peer, port, &dir, "simplejwt", era);
    assert!(report.lines().last().unwrap().starts_with("33 passed, 0 failed, 1 skipped"), "{era}: {report}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The conformance kit against the original flask-jwt-extended service, from PyPI, as the
/// captured apps were (`tests/peers/flask`): Flask 3.1 with flask-jwt-extended 4.7.4 (`--era
/// current`) and Flask 1.1 with 3.25.1 (`--era legacy`, a venv of its own). Every case passes;
/// only Werkzeug's HTML pages (GET /login, the 404) are skipped.
#[test]
fn the_conformance_kit_passes_against_the_original_flask_service() {
    the_kit_against_the_flask_peer("current", &[], "app.py");
    the_kit_against_the_flask_peer("legacy", &["flask-legacy"], "app_legacy.py");
}

fn the_kit_against_the_flask_peer(era: &str, venv_args: &[&str], app: &str) {
    let (python, dir, port) = peer_setup(venv_args);
    let peer = Command::new(&python)
        .args(["-m", "flask", "run", "-p", &port.to_string()])
        .current_dir(&dir)
        .env("FLASK_APP", format!("{}/../../tests/peers/flask/{app}", env!("CARGO_MANIFEST_DIR")))
        .env("PEER_SECRET", PEER_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let report = kit_against_peer(peer, port, &dir, "flask", era);
    assert!(report.lines().last().unwrap().starts_with("26 passed, 0 failed, 2 skipped"), "{era}: {report}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue 24 item 5: the help says the exit code the command gives, and a malformed session id is
/// refused in words (it was serde's "invalid length: found 3").
#[test]
fn help_and_argument_errors_say_what_the_command_does() {
    let dir = temp_dir();
    let help = tessera(&dir).args(["conformance", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("exits 4 when one fails"), "{help}");
    let out = tessera(&dir).args(["session", "revoke", "--id", "123"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("\"123\" is not a session id"), "{err}");
    assert!(!err.contains("invalid length"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// Issue 24 item 5: "migrations applied" was logged (and said by `migrate`) even when none were.
#[test]
fn migrate_says_how_many_migrations_it_applied() {
    // on its own SQLite file, whatever DATABASE_URL the suite runs with (a shared database may
    // have been migrated already)
    let dir = temp_dir();
    let first = tessera(&dir).env_remove("DATABASE_URL").args(["migrate"]).output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&first.stdout), String::from_utf8_lossy(&first.stderr));
    assert!(first.status.success(), "{err}");
    let n: usize = out.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{out}"));
    assert!(n > 10 && out.contains("migrations applied"), "{out}");
    let again = tessera(&dir).env_remove("DATABASE_URL").args(["--json", "migrate"]).output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&again.stdout), String::from_utf8_lossy(&again.stderr));
    assert!(again.status.success(), "{err}");
    let said: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(said["applied"], 0, "{out}");
    assert!(!err.contains("migrations applied"), "nothing was applied: {err}");
    let listed = tessera(&dir).env_remove("DATABASE_URL").args(["user", "list"]).output().unwrap();
    let err = String::from_utf8_lossy(&listed.stderr);
    assert!(listed.status.success(), "{err}");
    assert!(!err.contains("migrations applied"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
