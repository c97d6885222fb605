//! `tessera doctor`: what an operator checks before and after a start, in plain words. It reads
//! and changes nothing: no migration is applied, no key or database is created.

use std::path::Path;

use serde::Serialize;
use tessera_domain::ports::{Health, KeyRepository};
use tessera_domain::{KeyState, SigningKey};
use tessera_storage::{PgStore, SqliteStore};

use tessera_server::config::Settings;
use tessera_server::secrets::ServerSecrets;
use tessera_server::startup::redact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Not wrong, but worth knowing (something the next start will create).
    Note,
    Problem,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

struct Report(Vec<Finding>);

impl Report {
    fn add(&mut self, check: &'static str, status: Status, detail: impl Into<String>) {
        self.0.push(Finding { check, status, detail: detail.into() });
    }
}

/// Runs every check and prints the findings; a problem makes the command fail (exit 4).
pub async fn run(config: Option<&Path>, database_url: Option<&str>, json: bool) -> anyhow::Result<()> {
    let findings = check(config, database_url).await;
    for f in &findings {
        if json {
            crate::output::outln!("{}", serde_json::to_string(f)?)?;
        } else {
            let mark = match f.status {
                Status::Ok => "ok     ",
                Status::Note => "note   ",
                Status::Problem => "PROBLEM",
            };
            crate::output::outln!("{mark} {:<14} {}", f.check, f.detail)?;
        }
    }
    let problems = findings.iter().filter(|f| f.status == Status::Problem).count();
    if problems > 0 {
        return Err(crate::output::Failure::CheckFailed(format!("{problems} problem(s) found")).into());
    }
    Ok(())
}

/// Every finding, in the order an operator would fix them.
pub async fn check(config: Option<&Path>, database_url: Option<&str>) -> Vec<Finding> {
    let mut r = Report(Vec::new());
    let file = config.map(Path::to_path_buf).unwrap_or_else(|| "config/default.toml".into());
    let mut settings = match Settings::load(config) {
        Ok(s) => s,
        Err(e) => {
            r.add("configuration", Status::Problem, format!("{}: {e}", e.origin(&file)));
            return r.0;
        }
    };
    if let Some(url) = database_url {
        settings.database.url = url.to_owned();
    }
    let source = if file.exists() { file.display().to_string() } else { "built-in defaults (no config/default.toml)".into() };
    let checked = match settings.check() {
        Ok(c) => {
            r.add("configuration", Status::Ok, format!("{source}, environment {:?}", settings.environment));
            c
        }
        Err(e) => {
            let origin = if database_url.is_some() && e.key == "database.url" { "--database-url".to_owned() } else { e.origin(&file) };
            r.add("configuration", Status::Problem, format!("{origin}: {e}"));
            return r.0;
        }
    };

    // the APIs this configuration mounts
    match tessera_server::startup::build_faces(&settings, &checked) {
        Ok(faces) => {
            let names: Vec<String> = faces.iter().map(|f| format!("{} (audience {})", f.name, f.audience)).collect();
            // e.g. "6 mounted: native (audience native), medods (audience medods), …"
            r.add("apis", Status::Ok, format!("{} mounted: {}", names.len(), names.join(", ")));
        }
        Err(e) => r.add("apis", Status::Problem, format!("the dialects' settings do not make a working API: {e:#}")),
    }
    if settings.dialects.medods.enabled && settings.dialects.medods.open_to_anyone {
        r.add("apis", Status::Note, "Medods' /generate and /deleteall are open to anyone (dialects.medods.open_to_anyone = true)");
    }

    // HTTPS on the listener
    if settings.server.tls.enabled() {
        match tessera_server::tls::server_config(&settings.server.tls) {
            Ok(_) => r.add("tls", Status::Ok, format!("HTTPS with {}", settings.server.tls.certificate_file)),
            Err(e) => r.add("tls", Status::Problem, format!("{e:#}")),
        }
    }

    // the master key
    let master = master_key(&settings, &mut r);

    // the database
    let url = settings.database_url();
    let store: Option<std::sync::Arc<dyn tessera_domain::ports::Store>> = if url.starts_with("sqlite:") {
        let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        if !url.contains(":memory:") && !Path::new(path).exists() {
            r.add(
                "database",
                Status::Note,
                format!("no SQLite file at {path} yet: `tessera serve` (make run) or `tessera migrate` creates it"),
            );
            None
        } else {
            match SqliteStore::connect(&url).await {
                Ok(s) => {
                    r.add("database", Status::Ok, format!("opened {url}"));
                    migrations(&mut r, &settings, s.pending_migrations().await);
                    Some(std::sync::Arc::new(s))
                }
                Err(e) => {
                    r.add("database", Status::Problem, format!("cannot open the SQLite database {url}: {e}"));
                    None
                }
            }
        }
    } else {
        match PgStore::connect_lazy(&url, 2) {
            Err(e) => {
                r.add("database", Status::Problem, format!("database.url is not a database URL: {e}"));
                None
            }
            Ok(s) => match s.ping().await {
                Err(e) => {
                    let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_else(|| e.to_string());
                    r.add("database", Status::Problem, format!("cannot reach PostgreSQL at {}: {cause}", redact(&url)));
                    None
                }
                Ok(()) => {
                    r.add("database", Status::Ok, format!("reached {}", redact(&url)));
                    migrations(&mut r, &settings, s.pending_migrations().await);
                    Some(std::sync::Arc::new(s))
                }
            },
        }
    };
    if let Some(store) = &store {
        signing_keys(&mut r, &**store, master.as_deref(), &tessera_server::startup::signing_algorithms(&settings, &checked)).await;
    }

    // the port: free, or already Tessera's (doctor run beside a live server); anything else
    // stops the next start
    let (host, port) = (settings.server.host.as_str(), settings.server.port);
    let bound = std::net::TcpListener::bind((host, port)).map(drop);
    let tessera = bound.is_err() && answers_liveness(host, port, settings.server.tls.enabled()).await;
    match bound {
        Ok(()) => r.add("port", Status::Ok, format!("{host}:{port} is free")),
        Err(e) if tessera => r.add(
            "port",
            Status::Ok,
            format!("{host}:{port} is in use by a running Tessera (it answers /health/live): a second one needs another server.port ({e})"),
        ),
        Err(e) => r.add(
            "port",
            Status::Problem,
            format!("cannot listen on {host}:{port} ({e}), and what listens there is not Tessera: stop it, or set server.port"),
        ),
    }
    r.0
}

/// Whether what listens at `host:port` answers Tessera's liveness probe (over HTTPS when
/// `server.tls` is set; its certificate is not judged here, only who answers).
async fn answers_liveness(host: &str, port: u16, tls: bool) -> bool {
    let host = if host == "0.0.0.0" || host == "::" { "127.0.0.1" } else { host };
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let scheme = if tls { "https" } else { "http" };
    let Ok(http) = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).danger_accept_invalid_certs(true).build() else {
        return false;
    };
    match http.get(format!("{scheme}://{host}:{port}/health/live")).send().await {
        Ok(res) if res.status() == reqwest::StatusCode::OK => res.text().await.is_ok_and(|b| b == r#"{"status":"ok"}"#),
        _ => false,
    }
}

fn migrations(r: &mut Report, settings: &Settings, pending: Result<Vec<String>, sqlx::Error>) {
    match pending {
        Ok(p) if p.is_empty() => r.add("migrations", Status::Ok, "the schema is up to date"),
        Ok(p) if settings.database.migrate_on_start => {
            r.add("migrations", Status::Note, format!("{} pending ({}); the next start applies them", p.len(), p.join(", ")))
        }
        Ok(p) => r.add(
            "migrations",
            Status::Problem,
            format!("{} pending ({}) and database.migrate_on_start = false: run `tessera migrate`", p.len(), p.join(", ")),
        ),
        Err(e) => r.add("migrations", Status::Problem, format!("cannot read the applied migrations: {e}")),
    }
}

/// The master key's bytes, when there is one to check the signing keys with.
fn master_key(settings: &Settings, r: &mut Report) -> Option<Vec<u8>> {
    if settings.secrets.master_key.as_deref().is_some_and(|k| !k.trim().is_empty()) {
        return match tessera_server::secrets::load_master_key(settings) {
            Ok(k) => {
                r.add("master key", Status::Ok, "from secrets.master_key");
                Some(k)
            }
            Err(e) => {
                r.add("master key", Status::Problem, format!("{e:#}"));
                None
            }
        };
    }
    let path = settings.secrets.master_key_file();
    if !path.exists() {
        let status = if settings.environment == tessera_server::config::Environment::Production { Status::Problem } else { Status::Note };
        r.add(
            "master key",
            status,
            format!(
                "none yet: development generates {} at the first start; production needs secrets.master_key (TESSERA__SECRETS__MASTER_KEY)",
                path.display()
            ),
        );
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            r.add(
                "master key",
                Status::Problem,
                format!("{} can be read by other users (mode {:o}): chmod 600 it", path.display(), meta.permissions().mode() & 0o777),
            );
        }
    }
    match tessera_server::secrets::load_master_key(settings) {
        Ok(k) => {
            r.add("master key", Status::Ok, format!("from {}", path.display()));
            Some(k)
        }
        Err(e) => {
            r.add("master key", Status::Problem, format!("{e:#}"));
            None
        }
    }
}

async fn signing_keys(r: &mut Report, store: &dyn KeyRepository, master: Option<&[u8]>, algs: &[tessera_domain::Algorithm]) {
    let keys = match store.signing_keys().await {
        Ok(k) => k,
        Err(e) => {
            r.add("signing keys", Status::Problem, format!("cannot read them: {e}"));
            return;
        }
    };
    if let Some(master) = master {
        let sealer = ServerSecrets::from_master(master).sealer;
        let unreadable: Vec<&str> = keys.iter().filter(|k| SigningKey::unseal(k, &sealer).is_err()).map(|k| k.kid.as_str()).collect();
        if !unreadable.is_empty() {
            r.add(
                "signing keys",
                Status::Problem,
                format!(
                    "{} do not open with this master key: was secrets.master_key changed? ({})",
                    unreadable.len(),
                    unreadable.join(", ")
                ),
            );
        }
    }
    for &alg in algs {
        let active = keys.iter().filter(|k| k.alg == alg.as_str() && k.state == KeyState::Active).count();
        match active {
            0 => r.add("signing keys", Status::Note, format!("no active {} key yet: the next start creates one", alg.as_str())),
            _ => r.add("signing keys", Status::Ok, format!("{} signs with an active key ({} stored in all)", alg.as_str(), keys.len())),
        }
    }
}
