//! Typed configuration: `config/default.toml` (optional), then `TESSERA__SECTION__KEY`
//! environment variables, checked once at start. A bad value stops the start with a message that
//! names its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
pub use tessera_dialects::config::{
    DialectSettings, DrfSocialSettings, FlaskSettings, MedodsSettings, ProviderSettings, SimpleJwtSettings,
};
use tessera_domain::password::Argon2Params;
use tessera_domain::{Algorithm, Duration, RefreshPolicy, RiskRule, TokenProfile};

/// The store when no database is configured: a SQLite file beside the working directory.
pub const DEFAULT_SQLITE_URL: &str = "sqlite:data/tessera.db";

/// Where the settings came from is irrelevant after loading; only this struct is passed on.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `development` (the default) or `production`: production refuses generated secrets.
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub secrets: SecretSettings,
    pub tokens: TokenSettings,
    pub password: PasswordSettings,
    /// Custom token profiles, by name, beside the presets `standard` and `extended`.
    pub profiles: BTreeMap<String, ProfileSettings>,
    pub oauth: OAuthSettings,
    /// The five client contracts served beside the native API.
    pub dialects: DialectSettings,
    pub email: EmailSettings,
    pub log: LogSettings,
    /// `/metrics`, on a listener of its own.
    pub metrics: MetricsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            secrets: SecretSettings::default(),
            tokens: TokenSettings::default(),
            password: PasswordSettings::default(),
            profiles: BTreeMap::new(),
            oauth: OAuthSettings::default(),
            dialects: DialectSettings::default(),
            email: EmailSettings::default(),
            log: LogSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Seconds requests in flight get to finish after SIGTERM.
    pub shutdown_timeout_seconds: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The URL clients reach Tessera at (`https://auth.example.com`), for the metadata's
    /// endpoint URLs. Empty: taken from each request.
    pub public_url: String,
    /// Proxies (CIDRs) whose `X-Forwarded-For` / `Forwarded` are believed; nobody else's are.
    pub trusted_proxies: Vec<String>,
    /// Seconds a request's body may take to arrive, from the end of its headers; a slower one
    /// is answered 408 and its connection closed.
    pub body_timeout_seconds: u64,
    /// Seconds an idle keep-alive connection is kept open; 0: no keep-alive.
    pub keep_alive_seconds: u64,
    /// Open connections, across workers. 0: as many as the descriptor limit allows, with
    /// headroom for the database pool and files; more than that is lowered to it.
    pub max_connections: usize,
    /// HTTPS on the API's listener itself (rustls); unset: plain HTTP, for a TLS-terminating
    /// proxy in front or for local use.
    pub tls: TlsSettings,
}

/// `server.tls`: a PEM certificate chain and its private key. Both or neither.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// The certificate chain, leaf first (e.g. Let's Encrypt's `fullchain.pem`).
    pub certificate_file: String,
    /// Its private key (PKCS#8, PKCS#1 or SEC1 PEM).
    pub private_key_file: String,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        !self.certificate_file.trim().is_empty() || !self.private_key_file.trim().is_empty()
    }
}

impl ServerSettings {
    /// The HTTP workers `serve` runs: `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            n => n,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: 0,
            shutdown_timeout_seconds: 30,
            max_body_bytes: 64 * 1024,
            public_url: String::new(),
            trusted_proxies: vec![],
            body_timeout_seconds: 10,
            keep_alive_seconds: 5,
            max_connections: 0,
            tls: TlsSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Empty (the default): SQLite in `data/tessera.db`. Otherwise `sqlite:PATH`,
    /// `sqlite::memory:` (a throwaway run) or a `postgres://` URL. `DATABASE_URL` is used when
    /// this is not set in the file or by `TESSERA__DATABASE__URL`.
    pub url: String,
    /// Postgres connections in all. `serve` gives each HTTP worker a pool of its own, an even
    /// share counting the shared pool (background tasks) as one more; the admin commands use
    /// one pool of them all.
    pub max_connections: u32,
    /// Apply pending migrations when `tessera serve` starts.
    pub migrate_on_start: bool,
    /// Postgres: create the database named in the URL if it does not exist.
    pub create_if_missing: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 16, migrate_on_start: true, create_if_missing: true }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecretSettings {
    /// Base64 of at least 32 random bytes. Every server secret (refresh-token hashing key,
    /// the key sealing signing keys) is derived from it. Required in production.
    pub master_key: Option<String>,
    /// Development only: where a generated master key is kept between starts.
    pub master_key_file: Option<PathBuf>,
}

impl SecretSettings {
    pub fn master_key_file(&self) -> PathBuf {
        self.master_key_file.clone().unwrap_or_else(|| PathBuf::from("data/master.key"))
    }
}

/// The issuer of native tokens when neither `tokens.issuer` nor `server.public_url` is set, and
/// the only one before the issuer came from them.
pub const LEGACY_ISSUER: &str = "tessera";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// `iss` of native access tokens and the metadata's `issuer` (RFC 8414 §2: an https URL).
    /// Empty: `server.public_url`, or `tessera` when that is not set either (see
    /// [`Settings::issuer`]).
    pub issuer: String,
    /// Issuers whose tokens are still accepted until they expire: the one before a change.
    /// `tessera`, the issuer before it came from `server.public_url`, by default.
    pub accepted_issuers: Vec<String>,
    /// The native face's signing algorithm: ES256 (the default), EdDSA, RS256, or an HMAC one
    /// (HS256, HS384, HS512: no one but Tessera can then verify).
    pub algorithm: String,
    /// Seconds of clock skew tolerated on `exp`; 0: a token whose `exp` is now is expired.
    pub leeway_seconds: u32,
    /// Seconds after a rotation during which the parent refresh token gets the same child.
    pub refresh_grace_seconds: u32,
    /// No session outlives this (humantime, e.g. `365d`), however often it is refreshed.
    pub max_session_lifetime: String,
    /// `aud` of native tokens; faces of one audience accept each other's tokens.
    pub audience: String,
    /// `rotate` (single-use refresh tokens) or `reuse`.
    pub refresh_policy: RefreshPolicy,
    /// Refresh-time risk rules of the native face.
    pub risk: Vec<RiskRule>,
    /// `Cache-Control: max-age` of the JWKS document, in seconds.
    pub jwks_max_age_seconds: u32,
    /// How long a signing key signs before the schedule replaces it; 0: never automatically.
    pub key_rotation_days: u32,
    /// How often each instance runs the key schedule (and reloads the keys), in seconds.
    pub key_check_seconds: u32,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            accepted_issuers: vec![LEGACY_ISSUER.into()],
            algorithm: "ES256".into(),
            leeway_seconds: 0,
            refresh_grace_seconds: 5,
            max_session_lifetime: "365d".into(),
            audience: "native".into(),
            refresh_policy: RefreshPolicy::Rotate,
            risk: vec![],
            jwks_max_age_seconds: 900,
            key_rotation_days: 30,
            key_check_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSettings {
    pub argon2: Argon2Params,
    /// Argon2 runs at most this many at once (0: one per core); the rest queue.
    pub max_concurrent_hashes: usize,
    /// Minimum length of a new password, in characters.
    pub min_length: usize,
    /// Hashes that may wait for a turn; one more is answered 503 with `Retry-After` at once.
    pub max_queued_hashes: usize,
    /// How the hashing threads share the CPU with the threads that serve requests.
    pub hash_priority: HashPriority,
    /// Password attempts per client address per minute, on every face (0: unlimited).
    pub attempts_per_address_per_minute: u32,
    /// The per-address rate and lockout count an IPv4 address under its first this many bits...
    pub ipv4_prefix: u8,
    /// ... and an IPv6 address under its first this many (64: one subscriber's /64).
    pub ipv6_prefix: u8,
    /// When failed logins lock an account out, and for how long.
    pub lockout: tessera_domain::LockoutPolicy,
    /// Failed logins from one address network are audited once per this many seconds: the first
    /// in full, the rest as one `login_failures` event (0: each on its own).
    pub failed_login_window_seconds: u32,
    /// Days the record of each address's logins (failures, lockouts, known devices) is kept.
    pub attempts_retention_days: u32,
}

/// The scheduling of the hashing threads (Linux; elsewhere both are the platform's low priority).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HashPriority {
    /// `SCHED_IDLE`: hashing runs on CPU time no request wants. Refresh and verify never wait
    /// for a hash; on a machine saturated by other requests, logins wait instead, and beyond
    /// the queue they are answered 503.
    Idle,
    /// Nice 9: requests first, but hashing keeps about a tenth of a contended core.
    Low,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            argon2: Argon2Params::default(),
            max_concurrent_hashes: 0,
            min_length: 8,
            max_queued_hashes: 32,
            hash_priority: HashPriority::Idle,
            attempts_per_address_per_minute: 30,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            lockout: tessera_domain::LockoutPolicy::default(),
            failed_login_window_seconds: 60,
            attempts_retention_days: 90,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    /// Access-token lifetime (humantime: `15m`, `2h`).
    pub access: String,
    /// Refresh-token lifetime (humantime: `7d`).
    pub refresh: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthSettings {
    /// A public client that exists on every install, so examples work without creating one.
    pub default_client_enabled: bool,
    pub default_client_id: String,
    /// The profile of the default client's sessions.
    pub default_profile: String,
    /// Every token request must carry a DPoP proof (RFC 9449): every token is bound to a key.
    /// A client can require it alone (`tessera client create --require-dpop`).
    pub require_dpop: bool,
    /// DPoP proofs must carry the server's nonce (`DPoP-Nonce`, RFC 9449 §8): a proof made in
    /// advance by a thief of the key is of no use. Costs clients one more round trip now and then.
    pub dpop_nonce: bool,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            default_client_enabled: true,
            default_client_id: "tessera".into(),
            default_profile: TokenProfile::STANDARD.into(),
            require_dpop: false,
            dpop_nonce: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: String,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: "pretty".into(), level: "info".into() }
    }
}

/// Prometheus metrics: served on a listener of their own, never on the API's port, so the public
/// routes do not expose them (loopback by default, as exporters are).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// false: no metrics listener at all.
    pub enabled: bool,
    /// The address the metrics listener binds: loopback unless Prometheus scrapes from elsewhere.
    pub host: String,
    /// 0: any free port (named in the start-up log).
    pub port: u16,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { enabled: true, host: "127.0.0.1".into(), port: 9464 }
    }
}

/// A configuration error naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }

    /// Where the offending value came from: the environment variable that set the key when one
    /// did (the environment wins over the file), else `file` when it exists, else the defaults.
    pub fn origin(&self, file: &Path) -> String {
        let var = format!("TESSERA__{}", self.key.replace('.', "__").to_uppercase());
        if std::env::var_os(&var).is_some() {
            return format!("environment variable {var}");
        }
        if self.key == "database.url" && std::env::var_os("DATABASE_URL").is_some() {
            return "environment variable DATABASE_URL".into();
        }
        if file.exists() { file.display().to_string() } else { "built-in defaults".into() }
    }
}

/// Settings after checking: typed values the rest of the program uses.
#[derive(Debug, Clone)]
pub struct Checked {
    pub algorithm: Algorithm,
    pub profiles: BTreeMap<String, TokenProfile>,
    pub max_session_lifetime: Duration,
}

impl Settings {
    /// Loads `file` (if it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let path = file.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("config/default.toml"));
        let mut builder = config::Config::builder();
        if path.exists() {
            builder = builder.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
        } else if file.is_some() {
            return Err(ConfigError::new("--config", format!("{} does not exist", path.display())));
        }
        let env_has_db_url = std::env::var_os("TESSERA__DATABASE__URL").is_some();
        builder = builder.add_source(config::Environment::with_prefix("TESSERA").prefix_separator("__").separator("__"));
        if !env_has_db_url && let Ok(url) = std::env::var("DATABASE_URL") {
            builder = builder.set_override("database.url", url).map_err(|e| ConfigError::new("database.url", e.to_string()))?;
        }
        let cfg = builder.build().map_err(from_config_error)?;
        cfg.try_deserialize().map_err(from_config_error)
    }

    /// Checks every rule a value must follow; the error names the key.
    pub fn check(&self) -> Result<Checked, ConfigError> {
        let algorithm = tessera_domain::Algorithm::parse(&self.tokens.algorithm).ok_or_else(|| {
            ConfigError::new(
                "tokens.algorithm",
                format!("{:?} is not one of ES256, EdDSA, RS256, HS256, HS384, HS512", self.tokens.algorithm),
            )
        })?;
        if self.password.ipv4_prefix > 32 {
            return Err(ConfigError::new("password.ipv4_prefix", "must be 0-32"));
        }
        if self.password.ipv6_prefix > 128 {
            return Err(ConfigError::new("password.ipv6_prefix", "must be 0-128"));
        }
        // both faces read the tokens of one Django deployment ("django" users): two secrets would
        // be two deployments, and one's token could speak for the other's user of the same id
        let (sj, dj) = (&self.dialects.simplejwt.legacy_secret, &self.dialects.djoser.legacy_secret);
        if let (Some(a), Some(b)) = (sj, dj)
            && a != b
        {
            return Err(ConfigError::new(
                "dialects.djoser.legacy_secret",
                "differs from dialects.simplejwt.legacy_secret: both read one Django deployment's tokens (its users are \
                 imported as one deployment), so they must be the same secret",
            ));
        }
        if self.tokens.issuer != self.tokens.issuer.trim() {
            return Err(ConfigError::new("tokens.issuer", "may not begin or end with a space"));
        }
        let max_session_lifetime = parse_duration("tokens.max_session_lifetime", &self.tokens.max_session_lifetime)?;
        for cidr in &self.server.trusted_proxies {
            if cidr.parse::<ipnet::IpNet>().is_err() && cidr.parse::<std::net::IpAddr>().is_err() {
                return Err(ConfigError::new("server.trusted_proxies", format!("{cidr:?} is not a CIDR such as 10.0.0.0/8")));
            }
        }
        if self.tokens.key_check_seconds == 0 {
            return Err(ConfigError::new("tokens.key_check_seconds", "must be at least 1"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(ConfigError::new("server.max_body_bytes", "must be at least 1024"));
        }
        if self.server.tls.enabled() {
            for (key, path) in [
                ("server.tls.certificate_file", &self.server.tls.certificate_file),
                ("server.tls.private_key_file", &self.server.tls.private_key_file),
            ] {
                if path.trim().is_empty() {
                    return Err(ConfigError::new(key, "must be set too: server.tls needs a certificate and its key"));
                }
            }
        }
        if self.server.body_timeout_seconds == 0 {
            return Err(ConfigError::new("server.body_timeout_seconds", "must be at least 1"));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::new("database.max_connections", "must be at least 1"));
        }
        let url = self.database_url();
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") && !url.starts_with("sqlite:") {
            return Err(ConfigError::new(
                "database.url",
                "must be empty (SQLite in data/), sqlite:PATH, sqlite::memory: or a postgres:// URL",
            ));
        }
        tessera_domain::password::Argon2Hasher::new(self.password.argon2)
            .map_err(|e| ConfigError::new("password.argon2", e.to_string()))?;
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return Err(ConfigError::new("log.format", "must be `pretty` or `json`"));
        }
        let mut profiles = BTreeMap::new();
        profiles.insert(TokenProfile::STANDARD.to_owned(), TokenProfile::standard());
        profiles.insert(TokenProfile::EXTENDED.to_owned(), TokenProfile::extended());
        for (name, p) in &self.profiles {
            let key = format!("profiles.{name}");
            if profiles.contains_key(name) {
                return Err(ConfigError::new(key, "redefines a preset"));
            }
            let access = parse_duration(&format!("{key}.access"), &p.access)?;
            let refresh = parse_duration(&format!("{key}.refresh"), &p.refresh)?;
            let profile = TokenProfile::new(name.clone(), access, refresh).map_err(|e| ConfigError::new(key.clone(), e.to_string()))?;
            profiles.insert(name.clone(), profile);
        }
        if !profiles.contains_key(&self.oauth.default_profile) {
            return Err(ConfigError::new("oauth.default_profile", format!("no profile named {:?}", self.oauth.default_profile)));
        }
        if self.oauth.default_client_enabled {
            tessera_domain::ClientId::parse(&self.oauth.default_client_id)
                .map_err(|e| ConfigError::new("oauth.default_client_id", e.to_string()))?;
        }
        for (key, d) in [("dialects.simplejwt", &self.dialects.simplejwt), ("dialects.djoser", &self.dialects.djoser)] {
            if !matches!(d.era.as_str(), "5.4" | "5.5") {
                return Err(ConfigError::new(format!("{key}.era"), "must be 5.4 or 5.5"));
            }
            if !matches!(d.username_field.as_str(), "email" | "username") {
                return Err(ConfigError::new(format!("{key}.username_field"), "must be email or username"));
            }
            check_prefix(&format!("{key}.prefix"), &d.prefix)?;
            if !profiles.contains_key(&d.profile) {
                return Err(ConfigError::new(format!("{key}.profile"), format!("no profile named {:?}", d.profile)));
            }
        }
        let m = &self.dialects.medods;
        check_prefix("dialects.medods.prefix", &m.prefix)?;
        if !profiles.contains_key(&m.profile) {
            return Err(ConfigError::new("dialects.medods.profile", format!("no profile named {:?}", m.profile)));
        }
        if let Some(url) = m.new_ip_webhook.as_deref().filter(|u| !u.is_empty())
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::new("dialects.medods.new_ip_webhook", "must be an http:// or https:// URL"));
        }
        if m.caller_key.as_deref().is_some_and(|k| k.len() < 16) {
            return Err(ConfigError::new("dialects.medods.caller_key", "must be at least 16 characters"));
        }
        let d = &self.dialects.drf_social_oauth2;
        check_prefix("dialects.drf_social_oauth2.prefix", &d.prefix)?;
        if d.access_token_expire_seconds == 0 || d.refresh_token_expire_seconds <= d.access_token_expire_seconds {
            return Err(ConfigError::new(
                "dialects.drf_social_oauth2.refresh_token_expire_seconds",
                "must be longer than the access token's, which is positive",
            ));
        }
        for (name, p) in &d.providers {
            let key = format!("dialects.drf_social_oauth2.providers.{name}");
            match (&p.jwks_url, &p.jwks) {
                (Some(_), None) => {}
                (None, Some(doc)) => {
                    serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(doc)
                        .map_err(|e| ConfigError::new(format!("{key}.jwks"), format!("not a JWKS document: {e}")))?;
                }
                _ => return Err(ConfigError::new(key, "set exactly one of jwks_url and jwks")),
            }
            if p.audience.as_deref().is_none_or(|a| a.trim().is_empty()) {
                return Err(ConfigError::new(
                    format!("{key}.audience"),
                    "must be set to the client id this provider issued to this application: without it, convert-token \
                     would accept the ID tokens the provider mints for any other application",
                ));
            }
        }
        let f = &self.dialects.flask;
        if !matches!(f.era.as_str(), "3" | "4") {
            return Err(ConfigError::new("dialects.flask.era", "must be 3 or 4"));
        }
        // "seed" is the former name of "application", still accepted
        if !matches!(f.envelope.as_str(), "application" | "seed" | "library") {
            return Err(ConfigError::new("dialects.flask.envelope", "must be application or library"));
        }
        check_prefix("dialects.flask.prefix", &f.prefix)?;
        if !profiles.contains_key(&f.profile) {
            return Err(ConfigError::new("dialects.flask.profile", format!("no profile named {:?}", f.profile)));
        }
        let d = &self.dialects;
        for (key, alg) in [
            ("dialects.drf_social_oauth2.algorithm", &d.drf_social_oauth2.algorithm),
            ("dialects.simplejwt.algorithm", &d.simplejwt.algorithm),
            ("dialects.djoser.algorithm", &d.djoser.algorithm),
            ("dialects.flask.algorithm", &d.flask.algorithm),
        ] {
            if Algorithm::parse(alg).is_none() {
                return Err(ConfigError::new(key, format!("{alg:?} is not one of HS256, HS384, HS512, ES256, EdDSA, RS256")));
            }
        }
        for (key, prefixes, audience) in [
            ("dialects.medods", &d.medods.prefixes, &d.medods.audience),
            ("dialects.drf_social_oauth2", &d.drf_social_oauth2.prefixes, &d.drf_social_oauth2.audience),
            ("dialects.simplejwt", &d.simplejwt.prefixes, &d.simplejwt.audience),
            ("dialects.djoser", &d.djoser.prefixes, &d.djoser.audience),
            ("dialects.flask", &d.flask.prefixes, &d.flask.audience),
            ("tokens", &vec![], &self.tokens.audience),
        ] {
            for p in prefixes {
                check_prefix(&format!("{key}.prefixes"), p)?;
            }
            if audience.trim().is_empty() || audience.len() > 128 {
                return Err(ConfigError::new(format!("{key}.audience"), "must be 1-128 characters"));
            }
        }
        if self.environment == Environment::Production && self.secrets.master_key.as_deref().is_none_or(|k| k.trim().is_empty()) {
            return Err(ConfigError::new(
                "secrets.master_key",
                "production refuses generated secrets: set TESSERA__SECRETS__MASTER_KEY to base64 of 32 random bytes",
            ));
        }
        if self.environment == Environment::Production
            && self.dialects.medods.enabled
            && !self.dialects.medods.open_to_anyone
            && self.dialects.medods.caller_key.as_deref().is_none_or(str::is_empty)
        {
            return Err(ConfigError::new(
                "dialects.medods.caller_key",
                "production refuses to generate the trusted callers' key: set TESSERA__DIALECTS__MEDODS__CALLER_KEY, \
                 disable the dialect, or serve /generate to anyone with dialects.medods.open_to_anyone = true",
            ));
        }
        if self.environment == Environment::Production && !self.issuer().starts_with("https://") {
            return Err(ConfigError::new(
                "tokens.issuer",
                "production needs an https URL as the issuer (RFC 8414): set server.public_url, or tokens.issuer",
            ));
        }
        self.email.smtp()?;
        Ok(Checked { algorithm, profiles, max_session_lifetime })
    }

    /// The issuer of native tokens: `tokens.issuer`, else `server.public_url` (without a trailing
    /// slash), else `tessera` (a development install with neither).
    pub fn issuer(&self) -> String {
        if !self.tokens.issuer.is_empty() {
            self.tokens.issuer.clone()
        } else if !self.server.public_url.trim().is_empty() {
            self.server.public_url.trim().trim_end_matches('/').to_owned()
        } else {
            LEGACY_ISSUER.to_owned()
        }
    }

    /// The database to use: `database.url`, or the default SQLite file.
    pub fn database_url(&self) -> String {
        if self.database.url.trim().is_empty() { DEFAULT_SQLITE_URL.to_owned() } else { self.database.url.trim().to_owned() }
    }

    /// The longest access-token lifetime any profile has: how long a revocation must be
    /// remembered in memory.
    pub fn max_access_ttl(checked: &Checked) -> Duration {
        checked.profiles.values().map(TokenProfile::access_ttl).max().unwrap_or(Duration::hours(2))
    }
}

fn check_prefix(key: &str, prefix: &str) -> Result<(), ConfigError> {
    if !prefix.is_empty() && (!prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains(char::is_whitespace)) {
        return Err(ConfigError::new(key, "a prefix is empty or starts with / and does not end with /"));
    }
    Ok(())
}

fn parse_duration(key: &str, raw: &str) -> Result<Duration, ConfigError> {
    let d =
        humantime::parse_duration(raw).map_err(|e| ConfigError::new(key, format!("{raw:?} is not a duration like `15m` or `7d`: {e}")))?;
    let secs = i64::try_from(d.as_secs()).map_err(|_| ConfigError::new(key, "is too long"))?;
    Ok(Duration::seconds(secs))
}

fn from_config_error(e: config::ConfigError) -> ConfigError {
    // config's messages already name the key ("invalid type: ... for key `server.port`").
    let text = e.to_string();
    let key = text.split('`').nth(1).unwrap_or("configuration").to_owned();
    ConfigError::new(key, text)
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..s + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// `server.trusted_proxies` as networks (a bare address is a /32 or /128); checked at start.
pub fn trusted_proxies(server: &ServerSettings) -> tessera_http::request::TrustedProxies {
    tessera_http::request::TrustedProxies(
        server
            .trusted_proxies
            .iter()
            .filter_map(|c| c.parse::<ipnet::IpNet>().ok().or_else(|| c.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from)))
            .collect(),
    )
}

mod email;
pub use email::EmailSettings;

#[cfg(test)]
mod tests;
