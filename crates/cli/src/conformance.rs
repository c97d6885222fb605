//! The conformance kit: `tessera conformance` replays the exchanges captured from the original
//! Python libraries (`tests/fixtures/`, compiled into the binary) against any deployment, Tessera
//! or the original service, and reports each case as passed, failed (with a diff) or skipped.
//!
//! The captured tokens have expired, so the kit makes tokens of the same kind on the target
//! (a login with `--user`/`--password`, tampered, rotated, reused) and sends them where the
//! capture sent the original. It compares the status, the headers a client reads and the JSON
//! body exactly: key order included, JWTs by their claims' names and JSON types. The signed-in
//! user's own data (`me_ok`, `protected_ok`) is compared by shape. Expired tokens can only be
//! made with the target's HS256 signing secret; without it those cases are skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use include_dir::{Dir, include_dir};
use serde::Serialize;
use serde_json::{Value, json};

static FIXTURES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../tests/fixtures");

/// The APIs the kit has captures of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// djangorestframework-simplejwt (`/api/token/…`) and djoser's `/users/me/`.
    Simplejwt,
    /// flask-jwt-extended (login, protected, refresh, logout).
    Flask,
}

/// Which version of the original library the expected answers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Era {
    /// The versions the original APIs were documented against (simplejwt 5.3, flask-jwt-extended 3).
    Legacy,
    /// Today's versions (simplejwt 5.5, flask-jwt-extended 4).
    Current,
}

/// Where the target serves each endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Routes {
    /// The paths and schemes the original APIs document, as Tessera serves them (flask under `/api/v1`,
    /// djoser's `JWT` scheme).
    Documented,
    /// The captured app's own paths and schemes (flask at `/login`, `/refresh`; `Bearer` on
    /// djoser's `/users/me/`): to run the kit against the original services.
    Captured,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub dialect: Dialect,
    pub era: Era,
    pub routes: Routes,
    /// The target's root URL, without a trailing slash.
    pub base_url: String,
    pub user: String,
    pub password: String,
    /// The field the login form names the user by (simplejwt's `USERNAME_FIELD`); `None`: asked
    /// of the deployment (the field its refusal of an empty login names).
    pub username_field: Option<String>,
    /// The target's HS256 signing secret, to make expired tokens; `None` skips those cases.
    pub hs256_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Outcome {
    Passed,
    /// What differs, one line each.
    Failed(Vec<String>),
    Skipped(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub description: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Every case of the dialect, in replay order.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let folder = match (opts.dialect, opts.era) {
        (Dialect::Simplejwt, Era::Current) => "django",
        (Dialect::Simplejwt, Era::Legacy) => "django-legacy",
        (Dialect::Flask, Era::Current) => "flask",
        (Dialect::Flask, Era::Legacy) => "flask-legacy",
    };
    let fixtures = load(folder)?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")?;
    let username_field = opts.username_field.clone().unwrap_or_else(|| "username".into());
    let mut kit = Kit { opts, http, fixtures, results: Vec::new(), notes: Vec::new(), username_field };
    match opts.dialect {
        Dialect::Simplejwt => kit.simplejwt().await?,
        Dialect::Flask => kit.flask().await?,
    }
    Ok(Report { results: kit.results, notes: kit.notes })
}

/// `passed, failed, skipped`.
pub fn tally(results: &[CaseResult]) -> (usize, usize, usize) {
    results.iter().fold((0, 0, 0), |(p, f, s), r| match r.outcome {
        Outcome::Passed => (p + 1, f, s),
        Outcome::Failed(_) => (p, f + 1, s),
        Outcome::Skipped(_) => (p, f, s + 1),
    })
}

fn load(folder: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    let dir = FIXTURES.get_dir(folder).with_context(|| format!("no captured exchanges for {folder}"))?;
    let mut out = BTreeMap::new();
    for file in dir.files() {
        let v: Value = serde_json::from_slice(file.contents()).with_context(|| format!("{}", file.path().display()))?;
        let case = v["case"].as_str().with_context(|| format!("{}: no case", file.path().display()))?.to_owned();
        out.insert(case, v);
    }
    Ok(out)
}

/// What a replayed request carries.
enum Body<'a> {
    Json(Value),
    Raw(&'a str, &'a str),
    Empty,
}

/// How a case's response body is compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compare {
    Exact,
    /// The same keys, in the same order, with values of the same JSON types: the user's own data.
    Shape,
}

/// What a run found: every case, and the deployment's settings that differ from the captured
/// app's (each case they make incomparable is skipped, naming the setting).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub results: Vec<CaseResult>,
    pub notes: Vec<String>,
}

struct Kit<'a> {
    opts: &'a Options,
    http: reqwest::Client,
    fixtures: BTreeMap<String, Value>,
    results: Vec<CaseResult>,
    notes: Vec<String>,
    username_field: String,
}

struct Tokens {
    access: String,
    refresh: String,
}

impl Kit<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.opts.base_url.trim_end_matches('/'))
    }

    fn record(&mut self, case: &str, outcome: Outcome) {
        let description = self.fixtures.get(case).and_then(|f| f["description"].as_str()).unwrap_or_default().to_owned();
        self.results.push(CaseResult { case: case.to_owned(), description, outcome });
    }

    /// Sends the case's request and compares the answer with the captured one.
    async fn replay(&mut self, case: &str, path: &str, auth: Option<String>, body: Body<'_>, headers: &[&str], compare: Compare) {
        let outcome = match self.exchange(case, path, auth, body, headers, compare).await {
            Ok(diffs) if diffs.is_empty() => Outcome::Passed,
            Ok(diffs) => Outcome::Failed(diffs),
            Err(e) => Outcome::Failed(vec![format!("{e:#}")]),
        };
        self.record(case, outcome);
    }

    async fn exchange(
        &self,
        case: &str,
        path: &str,
        auth: Option<String>,
        body: Body<'_>,
        headers: &[&str],
        compare: Compare,
    ) -> anyhow::Result<Vec<String>> {
        let fixture = self.fixtures.get(case).with_context(|| format!("no captured exchange {case}"))?;
        let method = fixture["request"]["method"].as_str().unwrap_or("GET");
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut r = self.http.request(method, self.url(path));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r = match body {
            Body::Json(b) => r.header("content-type", "application/json").body(b.to_string()),
            Body::Raw(ct, raw) => r.header("content-type", ct).body(raw.to_owned()),
            Body::Empty => r,
        };
        let res = r.send().await.with_context(|| format!("sending {path}"))?;
        let expected = &fixture["response"];
        let mut diffs = Vec::new();
        let status = res.status().as_u16();
        if Some(u64::from(status)) != expected["status"].as_u64() {
            diffs.push(format!("status: expected {}, got {status}", expected["status"]));
        }
        for h in headers {
            let want = expected["headers"].get(*h).and_then(Value::as_str);
            let got = res.headers().get(*h).and_then(|v| v.to_str().ok()).map(str::to_owned);
            if got.as_deref() != want {
                diffs.push(format!("header {h}: expected {want:?}, got {got:?}"));
            }
        }
        let text = res.text().await.context("reading the body")?;
        let raw_expected = expected["body_raw"].as_str().unwrap_or_default();
        if text.ends_with('\n') != raw_expected.ends_with('\n') {
            diffs.push(format!("body: trailing newline expected {}, got {}", raw_expected.ends_with('\n'), text.ends_with('\n')));
        }
        // the login form's errors name its user field (djoser's /users/me/ has its own setting)
        let want =
            if case.starts_with("login_") { rename_username(&expected["body"], &self.username_field) } else { expected["body"].clone() };
        match serde_json::from_str::<Value>(&text) {
            Ok(actual) => compare_bodies("body", &want, &actual, compare, &mut diffs),
            Err(_) => diffs.push(format!("body: expected JSON {want}, got {text:?}")),
        }
        Ok(diffs)
    }

    fn login_body(&self, user: &str, password: &str) -> Value {
        let mut m = serde_json::Map::new();
        m.insert(self.username_field.clone(), json!(user));
        m.insert("password".into(), json!(password));
        Value::Object(m)
    }

    async fn login(&self, path: &str, access: &str, refresh: &str) -> anyhow::Result<Tokens> {
        let body = self.login_body(&self.opts.user, &self.opts.password);
        let res = self.http.post(self.url(path)).json(&body).send().await.with_context(|| format!("logging in at {path}"))?;
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        match (v[access].as_str(), v[refresh].as_str()) {
            (Some(a), Some(r)) => Ok(Tokens { access: a.to_owned(), refresh: r.to_owned() }),
            _ => bail!("logging in as {} at {path} failed ({status}): {v}", self.opts.user),
        }
    }

    /// The new refresh token a refresh answers, or `None` when it answers none (the deployment
    /// does not rotate); an error when the refresh is refused.
    async fn refresh_json(&self, path: &str, refresh: &str) -> anyhow::Result<Option<String>> {
        let res = self.http.post(self.url(path)).json(&json!({"refresh": refresh})).send().await?;
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() || v["access"].as_str().is_none() {
            bail!("refreshing at {path} failed ({status}): {v}");
        }
        Ok(v["refresh"].as_str().map(str::to_owned))
    }

    /// simplejwt's `USERNAME_FIELD`, as the deployment names it when refusing an empty login
    /// (`{"email": ["This field is required."], "password": [...]}`); `username` when it names none.
    async fn detect_username_field(&mut self, login: &str) {
        let Ok(res) = self.http.post(self.url(login)).json(&json!({})).send().await else { return };
        let v: Value = res.json().await.unwrap_or(Value::Null);
        let fields: Vec<&String> = v.as_object().map(|o| o.keys().filter(|k| *k != "password").collect()).unwrap_or_default();
        if let [field] = fields.as_slice()
            && *field != &self.username_field
        {
            self.notes.push(format!(
                "the login form names the user `{field}`, the captured app `{}` (USERNAME_FIELD; Tessera: \
                 dialects.simplejwt.username_field): the kit logs in with `{field}`",
                self.username_field
            ));
            self.username_field = (*field).clone();
        }
    }

    fn expired(&self, token: &str) -> Option<String> {
        let secret = self.opts.hs256_secret.as_ref()?;
        let header = decode_part(token, 0)?;
        let mut claims = decode_part(token, 1)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        claims["exp"] = json!(now - 3600);
        if claims.get("iat").is_some() {
            claims["iat"] = json!(now - 7200);
        }
        if claims.get("nbf").is_some() {
            claims["nbf"] = json!(now - 7200);
        }
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = header["kid"].as_str().map(str::to_owned);
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(secret)).ok()
    }

    fn skip_expired(&mut self, case: &str) {
        self.record(case, Outcome::Skipped("an expired token needs the target's HS256 secret (--hs256-secret-file)".into()));
    }

    async fn simplejwt(&mut self) -> anyhow::Result<()> {
        let (user, password) = (self.opts.user.clone(), self.opts.password.clone());
        let token_headers = ["content-type", "www-authenticate", "allow"];
        let (login, refresh, verify, me) = ("/api/token/", "/api/token/refresh/", "/api/token/verify/", "/users/me/");
        if self.opts.username_field.is_none() {
            self.detect_username_field(login).await;
        }
        for (case, body) in [
            ("login_ok", self.login_body(&user, &password)),
            ("login_ok_email", self.login_body(&user, &password)),
            ("login_bad_password", self.login_body(&user, "wrong")),
            ("login_unknown_user", self.login_body("nobody", "wrong")),
            ("login_blank_password", self.login_body(&user, "")),
            ("login_missing_fields", json!({})),
        ] {
            self.replay(case, login, None, Body::Json(body), &token_headers, Compare::Exact).await;
        }
        self.replay("login_malformed_json", login, None, Body::Raw("application/json", "{not json"), &token_headers, Compare::Exact).await;
        let form = format!("{}=a&password=b", self.username_field);
        self.replay(
            "login_form_encoded",
            login,
            None,
            Body::Raw("application/x-www-form-urlencoded", &form),
            &token_headers,
            Compare::Exact,
        )
        .await;
        self.replay("login_method_get", login, None, Body::Empty, &token_headers, Compare::Exact).await;

        let Tokens { access, refresh: refresh_token } = self.login(login, "access", "refresh").await?;
        let expired_access = self.expired(&access);
        for (case, token) in [
            ("verify_ok_access", Some(access.clone())),
            ("verify_ok_refresh", Some(refresh_token.clone())),
            ("verify_bad_signature", Some(tamper(&access))),
            ("verify_expired", expired_access.clone()),
            ("verify_invalid", Some("not-a-jwt".to_owned())),
        ] {
            match token {
                Some(t) => self.replay(case, verify, None, Body::Json(json!({"token": t})), &token_headers, Compare::Exact).await,
                None => self.skip_expired(case),
            }
        }
        self.replay("verify_missing_field", verify, None, Body::Json(json!({})), &token_headers, Compare::Exact).await;

        // djoser: the documented scheme is JWT; the captured app was configured with Bearer
        let scheme = if self.opts.routes == Routes::Documented { "JWT" } else { "Bearer" };
        let with = |t: &str| Some(format!("{scheme} {t}"));
        for (case, auth) in [
            ("me_ok", with(&access)),
            ("me_bad_signature", with(&tamper(&access))),
            ("me_expired_token", expired_access.as_deref().and_then(with)),
            ("me_invalid_token", with("not-a-jwt")),
            ("me_refresh_token", with(&refresh_token)),
            ("me_bearer_extra_part", Some(format!("{scheme} {access} extra"))),
            ("me_bearer_without_token", Some(scheme.to_owned())),
            ("me_missing_header", None),
            ("me_wrong_scheme", Some(format!("Token {access}"))),
        ] {
            if case == "me_expired_token" && auth.is_none() {
                self.skip_expired(case);
                continue;
            }
            let compare = if case == "me_ok" { Compare::Shape } else { Compare::Exact };
            self.replay(case, me, auth, Body::Empty, &["content-type"], compare).await;
        }

        let expired_refresh = self.expired(&refresh_token);
        for (case, token) in [
            ("refresh_bad_signature", Some(tamper(&refresh_token))),
            ("refresh_expired", expired_refresh),
            ("refresh_invalid", Some("not-a-jwt".to_owned())),
            ("refresh_with_access_token", Some(access.clone())),
        ] {
            match token {
                Some(t) => self.replay(case, refresh, None, Body::Json(json!({"refresh": t})), &token_headers, Compare::Exact).await,
                None => self.skip_expired(case),
            }
        }
        self.replay("refresh_missing_field", refresh, None, Body::Json(json!({})), &token_headers, Compare::Exact).await;
        // rotation: a used refresh token is refused, and then fails verification too
        let old = self.login(login, "access", "refresh").await?.refresh;
        let newer = match self.refresh_json(refresh, &old).await? {
            Some(t) => t,
            None => {
                // a setting, not the library: the captured app rotated, this deployment keeps them
                let why = "the deployment keeps refresh tokens, the captured app rotated them \
                           (ROTATE_REFRESH_TOKENS and BLACKLIST_AFTER_ROTATION on): to compare these, turn rotation on \
                           (Tessera: dialects.simplejwt.refresh_policy = \"rotate\")";
                self.notes.push(format!("refresh rotation differs: {why}"));
                for case in ["refresh_ok", "refresh_new_token_ok", "refresh_reused_after_rotation", "verify_blacklisted_refresh"] {
                    self.record(case, Outcome::Skipped(why.into()));
                }
                self.record("not_found", Outcome::Skipped("the original answers unknown paths with an HTML page".into()));
                return Ok(());
            }
        };
        let fresh = self.login(login, "access", "refresh").await?.refresh;
        self.replay("refresh_ok", refresh, None, Body::Json(json!({"refresh": fresh})), &token_headers, Compare::Exact).await;
        self.replay("refresh_new_token_ok", refresh, None, Body::Json(json!({"refresh": newer})), &token_headers, Compare::Exact).await;
        self.replay("refresh_reused_after_rotation", refresh, None, Body::Json(json!({"refresh": old})), &token_headers, Compare::Exact)
            .await;
        self.replay("verify_blacklisted_refresh", verify, None, Body::Json(json!({"token": old})), &token_headers, Compare::Exact).await;
        self.record("not_found", Outcome::Skipped("the original answers unknown paths with an HTML page".into()));
        Ok(())
    }

    async fn flask(&mut self) -> anyhow::Result<()> {
        let (user, password) = (self.opts.user.clone(), self.opts.password.clone());
        let (login, protected, refresh, logout) = match self.opts.routes {
            Routes::Documented => ("/api/v1/login", "/api/v1/protected", "/api/v1/refresh/token", "/api/v1/logout"),
            Routes::Captured => ("/login", "/protected", "/refresh", "/logout"),
        };
        let headers = ["content-type"];
        for (case, body) in [
            ("login_ok", self.login_body(&user, &password)),
            ("login_ok_email", self.login_body(&user, &password)),
            ("login_bad_password", self.login_body(&user, "wrong")),
            ("login_unknown_user", self.login_body("nobody", "wrong")),
            ("login_missing_fields", json!({})),
        ] {
            self.replay(case, login, None, Body::Json(body), &headers, Compare::Exact).await;
        }
        self.replay("login_malformed_json", login, None, Body::Raw("application/json", "{not json"), &headers, Compare::Exact).await;
        self.record("login_method_get", Outcome::Skipped("Werkzeug answers GET with an HTML page".into()));

        let Tokens { access, refresh: refresh_token } = self.login(login, "access_token", "refresh_token").await?;
        let bearer = |t: &str| Some(format!("Bearer {t}"));
        let expired_access = self.expired(&access);
        for (case, auth) in [
            ("protected_ok", bearer(&access)),
            ("protected_bad_signature", bearer(&tamper(&access))),
            ("protected_bearer_extra_part", Some(format!("Bearer {access} extra"))),
            ("protected_bearer_without_token", Some("Bearer".to_owned())),
            ("protected_expired_token", expired_access.as_deref().and_then(bearer)),
            ("protected_invalid_token", bearer("not-a-jwt")),
            ("protected_missing_header", None),
            ("protected_refresh_token", bearer(&refresh_token)),
            ("protected_wrong_scheme", Some(format!("Token {access}"))),
        ] {
            if case == "protected_expired_token" && auth.is_none() {
                self.skip_expired(case);
                continue;
            }
            let compare = if case == "protected_ok" { Compare::Shape } else { Compare::Exact };
            self.replay(case, protected, auth, Body::Empty, &headers, compare).await;
        }
        let expired_refresh = self.expired(&refresh_token);
        for (case, auth) in [
            ("refresh_bad_signature", bearer(&tamper(&refresh_token))),
            ("refresh_bearer_extra_part", Some(format!("Bearer {refresh_token} extra"))),
            ("refresh_expired", expired_refresh.as_deref().and_then(bearer)),
            ("refresh_invalid", bearer("not-a-jwt")),
            ("refresh_missing_header", None),
            ("refresh_with_access_token", bearer(&access)),
            ("refresh_wrong_scheme", Some("Basic x".to_owned())),
            ("refresh_ok", bearer(&refresh_token)),
            ("refresh_reused_no_rotation", bearer(&refresh_token)),
            ("logout_ok", bearer(&refresh_token)),
            ("refresh_revoked", bearer(&refresh_token)),
        ] {
            if case == "refresh_expired" && auth.is_none() {
                self.skip_expired(case);
                continue;
            }
            let path = if case == "logout_ok" { logout } else { refresh };
            self.replay(case, path, auth, Body::Empty, &headers, Compare::Exact).await;
        }
        self.record("not_found", Outcome::Skipped("the original answers unknown paths with an HTML page".into()));
        Ok(())
    }
}

/// The captured login body as the target's user field names it: Django's `USERNAME_FIELD` keys
/// the login form's errors (a body holding that field already just loses `username`).
fn rename_username(body: &Value, field: &str) -> Value {
    match body.as_object() {
        Some(o) if field != "username" && o.contains_key("username") => {
            let mut out = serde_json::Map::new();
            for (k, v) in o {
                match k.as_str() {
                    "username" if o.contains_key(field) => {}
                    "username" => {
                        out.insert(field.to_owned(), v.clone());
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(out)
        }
        _ => body.clone(),
    }
}

fn decode_part(jwt: &str, index: usize) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(index)?).ok()?).ok()
}

/// The same token with one character of its signature changed.
fn tamper(jwt: &str) -> String {
    match jwt.rsplit_once('.') {
        Some((head, sig)) if !sig.is_empty() => {
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            format!("{head}.{flipped}{}", &sig[1..])
        }
        _ => format!("{jwt}x"),
    }
}

fn is_jwt(s: &str) -> bool {
    s.split('.').count() == 3 && s.starts_with("eyJ")
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Claim names and JSON types, and the form of `jti` (32 hex digits or a UUID). Tessera's own
/// additions (`sid`, the face's `aud`, `email`) are left out.
fn claim_shape(claims: &Value) -> BTreeMap<String, String> {
    let Some(o) = claims.as_object() else { return BTreeMap::new() };
    o.iter()
        .filter(|(k, _)| *k != "sid" && *k != "aud" && *k != "email")
        .map(|(k, v)| {
            let mut t = json_type(v).to_owned();
            if k == "jti" {
                let s = v.as_str().unwrap_or_default();
                t = if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "hex32".into()
                } else if uuid::Uuid::parse_str(s).is_ok() {
                    "uuid".into()
                } else {
                    "other".into()
                };
            }
            (k.clone(), t)
        })
        .collect()
}

/// Appends a line per difference between the captured and the actual body.
fn compare_bodies(at: &str, expected: &Value, actual: &Value, compare: Compare, diffs: &mut Vec<String>) {
    match (expected, actual) {
        (Value::String(e), Value::String(a)) if is_jwt(e) => {
            if !is_jwt(a) {
                diffs.push(format!("{at}: expected a JWT, got {a:?}"));
                return;
            }
            let (want, got) = (decode_part(e, 1).map(|c| claim_shape(&c)), decode_part(a, 1).map(|c| claim_shape(&c)));
            if want != got {
                diffs.push(format!("{at}: claims (name: type) expected {want:?}, got {got:?}"));
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            let (ek, ak) = (e.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>());
            if ek != ak {
                diffs.push(format!("{at}: keys (in order) expected {ek:?}, got {ak:?}"));
            }
            for (k, v) in e {
                if let Some(w) = a.get(k) {
                    compare_bodies(&format!("{at}.{k}"), v, w, compare, diffs);
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                diffs.push(format!("{at}: expected {expected}, got {actual}"));
                return;
            }
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                compare_bodies(&format!("{at}[{i}]"), x, y, compare, diffs);
            }
        }
        _ if compare == Compare::Shape => {
            if json_type(expected) != json_type(actual) {
                diffs.push(format!("{at}: expected a {}, got {actual}", json_type(expected)));
            }
        }
        _ => {
            if expected != actual {
                diffs.push(format!("{at}: expected {expected}, got {actual}"));
            }
        }
    }
}

/// The report a person reads: one line per case, the differences under a failed one, then the
/// settings that differ from the captured app.
pub fn render(report: &Report) -> String {
    let results = &report.results;
    let mut out = String::new();
    for r in results {
        match &r.outcome {
            Outcome::Passed => {
                let _ = writeln!(out, "PASS  {}", r.case);
            }
            Outcome::Skipped(why) => {
                let _ = writeln!(out, "SKIP  {}: {why}", r.case);
            }
            Outcome::Failed(diffs) => {
                let _ = writeln!(out, "FAIL  {}  ({})", r.case, r.description);
                for d in diffs {
                    let _ = writeln!(out, "      {d}");
                }
            }
        }
    }
    for n in &report.notes {
        let _ = writeln!(out, "NOTE  {n}");
    }
    let (p, f, s) = tally(results);
    let _ = writeln!(out, "{p} passed, {f} failed, {s} skipped");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_and_era_has_its_captures_compiled_in() {
        for folder in ["django", "django-legacy", "flask", "flask-legacy"] {
            let f = load(folder).unwrap();
            assert!(f.contains_key("login_ok") && f.contains_key("refresh_ok"), "{folder}");
        }
    }

    #[test]
    fn the_user_field_is_renamed_in_place() {
        let errors = json!({"username": ["This field is required."], "password": ["This field is required."]});
        assert_eq!(
            serde_json::to_string(&rename_username(&errors, "email")).unwrap(),
            r#"{"email":["This field is required."],"password":["This field is required."]}"#
        );
        let me = json!({"email": "a@b", "id": 1, "username": "a"});
        assert_eq!(serde_json::to_string(&rename_username(&me, "email")).unwrap(), r#"{"email":"a@b","id":1}"#);
        assert_eq!(rename_username(&me, "username"), me);
    }

    #[test]
    fn a_body_that_differs_is_reported_where_it_differs() {
        let mut diffs = Vec::new();
        let want = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"});
        compare_bodies(
            "body",
            &want,
            &json!({"code": "token_not_valid", "detail": "Token is invalid or expired"}),
            Compare::Exact,
            &mut diffs,
        );
        assert_eq!(diffs.len(), 1, "key order: {diffs:?}");
        diffs.clear();
        compare_bodies("body", &want, &json!({"detail": "Token is invalid", "code": "token_not_valid"}), Compare::Exact, &mut diffs);
        assert_eq!(diffs, vec![r#"body.detail: expected "Token is invalid or expired", got "Token is invalid""#]);
        diffs.clear();
        compare_bodies("body", &json!({"id": 1, "email": "a@b"}), &json!({"id": 7, "email": "c@d"}), Compare::Shape, &mut diffs);
        assert!(diffs.is_empty(), "{diffs:?}");
        compare_bodies("body", &json!({"id": 1}), &json!({"id": "7"}), Compare::Shape, &mut diffs);
        assert_eq!(diffs.len(), 1);
    }
}
