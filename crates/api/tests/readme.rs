//! Every example in README.md, run or checked as the suite runs:
//!
//! - the ```bash blocks run in order, in one bash session (`set -euo pipefail`), against a
//!   `tessera serve` started in a fresh directory; `$BASE` and `http://127.0.0.1:8080` point at
//!   it, `tessera` and `./target/debug/tessera` are the binary under test. Every `curl` must
//!   answer below 400, or with the status a comment right after it shows (`# 401 …`,
//!   `# HTTP/1.1 429 …`);
//! - the ```python block runs in the test venv (PyJWT), with the walkthrough's access token;
//! - every ```toml block must load as Tessera's configuration (unknown keys are refused).
//!
//! A block preceded by `<!-- not run: reason -->` is skipped, and must say why.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Block {
    lang: String,
    line: usize,
    code: String,
    skip: Option<String>,
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

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
            out.push(Block { lang: lang.trim().to_owned(), line: start + 1, code, skip });
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
    let all = blocks(&readme());
    for b in all.iter().filter(|b| b.skip.is_some()) {
        assert!(!b.skip.as_deref().unwrap_or("").is_empty(), "README line {}: a block not run must say why", b.line);
    }

    // the configuration examples load
    let dir = std::env::temp_dir().join(format!("tessera-readme-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("target/debug")).unwrap();
    let tomls: Vec<&Block> = all.iter().filter(|b| b.lang == "toml" && b.skip.is_none()).collect();
    assert!(tomls.len() >= 3, "the README's configuration examples");
    for b in &tomls {
        let path = dir.join(format!("example-{}.toml", b.line));
        std::fs::write(&path, &b.code).unwrap();
        if let Err(e) = tessera_api::Settings::load(Some(&path)) {
            panic!("README line {}: the configuration example does not load: {e}", b.line);
        }
    }

    // a server in a fresh directory, as `make run` starts it (simplejwt rotating, as the captured
    // app did, for the conformance kit's example)
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
        .env("TESSERA__DIALECTS__SIMPLEJWT__REFRESH_POLICY", "rotate")
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
                script.push_str(&format!("echo '>>> README line {}' >&2\n", b.line));
                script.push_str(&with_expectations(&code));
                ran += 1;
            }
            "python" => {
                // with the walkthrough's access token; the block's last name is printed
                script.push_str(&format!(
                    "echo '>>> README line {}' >&2\nREADME_ACCESS=$ACCESS \"$PYTHON\" - <<'PYTHON_EXAMPLE'\nimport os\naccess_token = os.environ['README_ACCESS']\n{code}print(claims['sub'], claims['aud'])\nPYTHON_EXAMPLE\n",
                    b.line
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
    assert!(out.status.success(), "a README example failed:\n--- stderr\n{stderr}\n--- stdout\n{stdout}");
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
