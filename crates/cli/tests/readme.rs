//! Every example in README.md and in the book (`docs/`, the chapters `docs/SUMMARY.md` lists, in
//! its order), run or checked as the suite runs:
//!
//! - the ```bash blocks run in order, README first, in one bash session (`set -euo pipefail`),
//!   against a `tessera serve` started in a fresh directory; `$BASE` and `http://127.0.0.1:8080` point at
//!   it, `tessera` and `./target/debug/tessera` are the binary under test. Every `curl` must
//!   answer below 400, or with the status a comment right after it shows (`# 401 …`,
//!   `# HTTP/1.1 429 …`);
//! - the ```python block runs in the test venv (PyJWT), with the walkthrough's access token;
//! - every ```toml block must load as Tessera's configuration (unknown keys are refused).
//!
//! A block preceded by `<!-- not run: reason -->` is skipped, and must say why.
//!
//! The production chapter (`docs/production.md`) runs on its own, from an empty install directory
//! to a server answering over HTTPS: `the_production_chapter_runs_as_written`.
//!
//! And no word of the project's internal jargon reaches a user: not in the README, the book, the
//! OpenAPI document (Swagger UI), the CLI's help or the default configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Block {
    lang: String,
    /// `file:line` of the opening fence.
    at: String,
    line: usize,
    code: String,
    skip: Option<String>,
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// README.md, then every chapter of the book in `docs/SUMMARY.md`'s order: (path, text).
fn documents() -> Vec<(String, String)> {
    let read = |path: &str| std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"));
    let summary = read("docs/SUMMARY.md");
    let mut docs = vec![("README.md".to_owned(), read("README.md"))];
    for chapter in summary.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
        let path = format!("docs/{chapter}");
        docs.push((path.clone(), read(&path)));
    }
    assert!(docs.len() >= 10, "the book's chapters: {:?}", docs.iter().map(|d| &d.0).collect::<Vec<_>>());
    docs
}

const PRODUCTION: &str = "docs/production.md";

/// The fenced blocks at the start of a line (indented ones belong to a list item's prose).
fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        if let Some(lang) = lines[i].strip_prefix("```") {
            let start = i;
            let mut code = String::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                code.push_str(lines[i]);
                code.push('\n');
                i += 1;
            }
            let before = lines[..start].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
            let skip = before.trim().strip_prefix("<!-- not run:").and_then(|r| r.strip_suffix("-->")).map(|r| r.trim().to_owned());
            out.push(Block { lang: lang.trim().to_owned(), at: format!("line {}", start + 1), line: start + 1, code, skip });
        }
        i += 1;
    }
    out
}

/// The status a comment right after a command shows: `# 401 {…}`, `# HTTP/1.1 429 …`.
fn shown_status(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix('#')?.trim_start();
    let rest = rest.strip_prefix("HTTP/1.1 ").unwrap_or(rest);
    let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (code.len() == 3 && rest[3..].chars().next().is_none_or(|c| !c.is_ascii_alphanumeric())).then(|| code.parse().ok()).flatten()
}

/// The block with `EXPECT=<status>` before each `curl` whose answer a comment shows.
fn with_expectations(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let mut line = (*line).to_owned();
        if !line.trim_start().starts_with('#') && line.contains("curl ") {
            // the comment after the command (its continuation lines and a loop's `done` aside)
            let mut j = i;
            while j < lines.len() && lines[j].trim_end().ends_with('\\') {
                j += 1;
            }
            let after = lines[j + 1..].iter().find(|l| l.trim() != "done").copied().unwrap_or("");
            if let Some(status) = shown_status(after) {
                line = line.replacen("curl ", &format!("EXPECT={status} curl "), 1);
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

const PRELUDE: &str = r#"set -euo pipefail
curl() {
  local out code
  out=$(command curl "$@" -w '\n%{http_code}') || { echo "README example: curl failed: curl $*" >&2; return 1; }
  code=${out##*$'\n'}
  printf '%s\n' "${out%$'\n'*}"
  if [ -n "${EXPECT:-}" ]; then
    [ "$code" = "$EXPECT" ] || { echo "README example: expected HTTP $EXPECT, got $code: curl $*" >&2; return 1; }
  elif [ "$code" = 000 ] || [ "$code" -ge 400 ]; then
    echo "README example: HTTP $code from: curl $*" >&2; return 1
  fi
}
tessera() { "$TESSERA_BIN" "$@"; }
"#;

fn test_python() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-venv.sh");
    let out = Command::new(script).output().expect("scripts/test-venv.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn every_readme_example_runs_or_is_checked() {
    let mut all = vec![];
    for (path, text) in documents() {
        for mut b in blocks(&text) {
            b.at = format!("{path} line {}", b.line);
            // the production chapter runs on its own; its configuration examples load here too
            if path != PRODUCTION || b.lang == "toml" {
                all.push(b);
            }
        }
    }
    for b in all.iter().filter(|b| b.skip.is_some()) {
        assert!(!b.skip.as_deref().unwrap_or("").is_empty(), "{}: a block not run must say why", b.at);
    }

    // the configuration examples load
    let dir = std::env::temp_dir().join(format!("tessera-readme-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("target/debug")).unwrap();
    let tomls: Vec<&Block> = all.iter().filter(|b| b.lang == "toml" && b.skip.is_none()).collect();
    assert!(tomls.len() >= 3, "the README's configuration examples");
    for b in &tomls {
        let path = dir.join(format!("example-{}.toml", b.at.replace(['/', ' ', '.'], "-")));
        std::fs::write(&path, &b.code).unwrap();
        if let Err(e) = tessera_server::Settings::load(Some(&path)) {
            panic!("{}: the configuration example does not load: {e}", b.at);
        }
    }

    // a server in a fresh directory, as `make run` starts it
    let bin = env!("CARGO_BIN_EXE_tessera");
    std::os::unix::fs::symlink(bin, dir.join("target/debug/tessera")).unwrap();
    let mut cmd = Command::new(bin);
    cmd.current_dir(&dir).env_remove("DATABASE_URL").env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA") {
            cmd.env_remove(k);
        }
    }
    let mut server = cmd
        .arg("serve")
        .env("TESSERA__SERVER__PORT", "0")
        // the metrics listener on a free port, which stands in for the README's 9464
        .env("TESSERA__METRICS__PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(server.stderr.take().unwrap()).lines().map_while(Result::ok);
    let mut metrics_port: Option<u16> = None;
    let port: u16 = log
        .by_ref()
        .find_map(|l| {
            if let Some(p) = l.split("metrics=http://127.0.0.1:").nth(1).and_then(|p| p.split('/').next()?.parse().ok()) {
                metrics_port = Some(p);
            }
            l.split("address=http://127.0.0.1:").nth(1).and_then(|p| p.trim().parse().ok())
        })
        .expect("the server reports its address");
    let metrics_port = metrics_port.expect("the server reports its metrics listener before its address");
    std::thread::spawn(move || log.for_each(drop));
    let base = format!("http://127.0.0.1:{port}");

    let mut script = String::from(PRELUDE);
    let mut ran = 0;
    for b in all.iter().filter(|b| b.skip.is_none()) {
        let code =
            b.code.replace("http://127.0.0.1:8080", &base).replace("http://127.0.0.1:9464", &format!("http://127.0.0.1:{metrics_port}"));
        match b.lang.as_str() {
            "bash" => {
                script.push_str(&format!("echo '>>> {}' >&2\n", b.at));
                script.push_str(&with_expectations(&code));
                ran += 1;
            }
            "python" => {
                // with the walkthrough's access token; the block's last name is printed
                script.push_str(&format!(
                    "echo '>>> {}' >&2\nREADME_ACCESS=$ACCESS \"$PYTHON\" - <<'PYTHON_EXAMPLE'\nimport os\naccess_token = os.environ['README_ACCESS']\n{code}print(claims['sub'], claims['aud'])\nPYTHON_EXAMPLE\n",
                    b.at
                ));
                ran += 1;
            }
            _ => {}
        }
    }
    assert!(ran >= 15, "the README's runnable examples: {ran}");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .env("TESSERA_BIN", bin)
        .env("PYTHON", test_python())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "an example of the README or the book failed:\n--- stderr\n{stderr}\n--- stdout\n{stdout}");
    // what the examples show came back
    assert!(stdout.contains(r#""email":"ann@example.com""#), "{stdout}");
    assert!(stdout.contains("token_revoked"), "the walkthrough's revoked token is refused: {stdout}");
    assert!(stdout.contains(r#""active":true"#), "introspection: {stdout}");
    assert!(stdout.contains("0 failed"), "the conformance example: {stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_status_shown_after_a_command_is_what_it_must_answer() {
    let code = "curl -s $BASE/v1/me\n# 401 {\"code\":\"token_revoked\"}\ncurl -s $BASE/x\ncurl -si $BASE/y \\\n  -d a=b\n# HTTP/1.1 429 Too Many\nfor i in 1; do\n  curl -s $BASE/z\ndone\n# 400 400\ncurl $BASE/w\n# 4. Refresh\n";
    let got = with_expectations(code);
    assert!(got.contains("EXPECT=401 curl -s $BASE/v1/me"), "{got}");
    assert!(got.contains("\ncurl -s $BASE/x"), "{got}");
    assert!(got.contains("EXPECT=429 curl -si $BASE/y"), "{got}");
    assert!(got.contains("EXPECT=400 curl -s $BASE/z"), "{got}");
    assert!(got.contains("\ncurl $BASE/w"), "a numbered step is not a status: {got}");
}

/// What a test may stand in for when it follows the production chapter: the commands that would
/// change the machine itself. `systemctl enable --now NAME` does what systemd would for the
/// unit's `[Service]`: reads its `EnvironmentFile`, enters its `WorkingDirectory` and starts its
/// `ExecStart`, with the output kept beside the unit and the pid in `$UNITS/NAME.pid`.
const PRODUCTION_PRELUDE: &str = r#"set -euo pipefail
sudo() { "$@"; }
useradd() { echo "(test) useradd $*" >&2; }
chown() { echo "(test) chown $*" >&2; }
systemctl() {
  case "$1" in
    daemon-reload) ;;
    enable)
      [ "$2" = --now ] || { echo "(test) systemctl: only enable --now" >&2; return 1; }
      local unit="$UNITS/$3.service" wd envf cmd
      wd=$(sed -n 's/^WorkingDirectory=//p' "$unit")
      envf=$(sed -n 's/^EnvironmentFile=//p' "$unit")
      cmd=$(sed -n 's/^ExecStart=//p' "$unit")
      [ -n "$wd" ] && [ -n "$envf" ] && [ -n "$cmd" ] || { echo "(test) $unit: no WorkingDirectory, EnvironmentFile or ExecStart" >&2; return 1; }
      ( cd "$wd" && set -a && . "$envf" && set +a && exec $cmd ) > "$UNITS/$3.log" 2>&1 &
      echo $! > "$UNITS/$3.pid" ;;
    *) echo "(test) systemctl $*: not stood in for" >&2; return 1 ;;
  esac
}
"#;

/// The production chapter, word for word, from an empty install directory to a server answering
/// over HTTPS: the release build in this checkout, the install, the settings and secrets, a
/// certificate, the unit, and the checks. Only what a test cannot own changes: the install and
/// unit directories, the port, the database URL, and the stand-ins above.
#[test]
fn the_production_chapter_runs_as_written() {
    let text = std::fs::read_to_string(format!("{ROOT}/{PRODUCTION}")).unwrap();
    let bash: Vec<Block> = blocks(&text).into_iter().filter(|b| b.lang == "bash").collect();
    assert!(bash.len() >= 6, "the production steps");
    assert!(bash.iter().all(|b| b.skip.is_none()), "every production step runs");

    let dir = std::env::temp_dir().join(format!("tessera-production-{}", std::process::id()));
    let (opt, units) = (dir.join("opt/tessera"), dir.join("systemd"));
    std::fs::create_dir_all(&units).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // a database of its own, on the suite's Postgres (make test provides one)
    let admin = std::env::var("DATABASE_URL").expect("DATABASE_URL: a Postgres server (make test provides one)");
    assert!(admin.starts_with("postgres"), "the production chapter runs on Postgres: {admin}");
    let name = format!("tessera_production_{}", std::process::id());
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
    let database = format!("{base}/{name}");

    let mut script = String::from(PRODUCTION_PRELUDE);
    for b in &bash {
        let code = b
            .code
            .replace("/opt/tessera", &opt.display().to_string())
            .replace("/etc/systemd/system", &units.display().to_string())
            .replace("8443", &port.to_string())
            .replace("postgres://tessera:change-me@127.0.0.1:5432/tessera", &database);
        script.push_str(&format!("echo '>>> {PRODUCTION} line {}' >&2\n{code}", b.line));
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).current_dir(ROOT).env("UNITS", &units);
    for (k, _) in
        std::env::vars().filter(|(k, _)| k.starts_with("TESSERA") || k == "DATABASE_URL" || k == "RUST_LOG" || k == "CARGO_TARGET_DIR")
    {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap();
    let log = std::fs::read_to_string(units.join("tessera.log")).unwrap_or_default();
    if let Ok(pid) = std::fs::read_to_string(units.join("tessera.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    let _ = Command::new("psql").arg(&admin).args(["-qc", &format!("drop database if exists {name} with (force)")]).output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a production step failed:\n--- stderr\n{stderr}\n--- stdout\n{stdout}\n--- server log\n{log}");
    // what the chapter shows came back, over HTTPS, from the service the unit started
    assert!(stdout.contains(r#"{"status":"ok"}"#), "{stdout}");
    assert!(stdout.contains(&format!("https://auth.example.com:{port}/oauth/token")), "{stdout}");
    assert!(log.contains(&format!("address=https://0.0.0.0:{port}")), "listening beyond loopback, over TLS: {log}");
    // doctor, beside it, finds nothing wrong
    assert!(stdout.contains("ok      master key     from secrets.master_key"), "{stdout}");
    assert!(stdout.contains("ok      tls") && stdout.contains("in use by a running Tessera"), "{stdout}");
    assert!(!stdout.contains("PROBLEM"), "{stdout}");
    // the secrets file is for root alone; the private key for root and the service's group
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(opt.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("etc/tessera.env"), 0o600);
    assert_eq!(mode("etc/tls/privkey.pem"), 0o640);
    std::fs::remove_dir_all(&dir).ok();
}

/// The project's internal words, which mean nothing to a user: the original API documents were
/// "seeds", and an API (native or compatible) a "face".
fn jargon(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut found: Vec<String> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| matches!(*w, "seed" | "seeds" | "face" | "faces"))
        .map(str::to_owned)
        .collect();
    for phrase in ["zonesmart-style", "token service task", "the task's"] {
        if lower.contains(phrase) {
            found.push(phrase.to_owned());
        }
    }
    found
}

#[test]
fn no_internal_jargon_where_a_user_reads() {
    let mut places: Vec<(String, String)> = documents();
    places.push(("config/default.toml".into(), std::fs::read_to_string(format!("{ROOT}/config/default.toml")).unwrap()));
    let bin = env!("CARGO_BIN_EXE_tessera");
    let openapi = Command::new(bin).arg("openapi").env_remove("DATABASE_URL").output().unwrap();
    assert!(openapi.status.success());
    places.push(("the OpenAPI document (Swagger UI)".into(), String::from_utf8(openapi.stdout).unwrap()));
    // every command's help, all the way down
    let mut pending = vec![vec![]];
    while let Some(path) = pending.pop() {
        let help = Command::new(bin).args(&path).arg("--help").output().unwrap();
        let text = String::from_utf8(help.stdout).unwrap();
        let mut in_commands = false;
        for line in text.lines() {
            if line.starts_with("Commands:") {
                in_commands = true;
            } else if in_commands && line.starts_with("  ") {
                let name = line.split_whitespace().next().unwrap_or("");
                if name != "help" {
                    pending.push(path.iter().cloned().chain([name.to_owned()]).collect());
                }
            } else {
                in_commands = false;
            }
        }
        places.push((format!("tessera {} --help", path.join(" ")), text));
    }
    assert!(places.len() > 40, "README, the book, the OpenAPI document and every command's help: {}", places.len());
    let found: Vec<String> =
        places.iter().filter_map(|(place, text)| Some(jargon(text)).filter(|j| !j.is_empty()).map(|j| format!("{place}: {j:?}"))).collect();
    assert!(found.is_empty(), "internal words where a user reads them:\n{}", found.join("\n"));
}

#[test]
fn jargon_is_found_as_words_only() {
    assert_eq!(jargon("The seed's API; faces, Face."), ["seed", "faces", "face"]);
    assert!(jargon("an interface, a surface, seeded").is_empty());
    assert_eq!(jargon("Zonesmart-style clients"), ["zonesmart-style"]);
}
