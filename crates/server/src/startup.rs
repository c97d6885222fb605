//! The one place where everything is wired: configuration -> storage -> secrets -> keyring ->
//! use-cases -> HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, middleware, web};
use anyhow::Context;
use tessera_domain::password::{Argon2Hasher, PasswordPolicy};
use tessera_domain::ports::Store;
use tessera_domain::{
    ClientId, Duration, Face, Faces, NativeFormat, OAuthClient, OffsetDateTime, RepoError, ServiceParts, TokenProfile, TokenService,
};
use tessera_storage::{PgStore, SqliteStore};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::{Checked, Settings};
use crate::hasher::BlockingHasher;
use crate::notify::WebhookNotifier;
use crate::revocations::{RevocationCache, start_listener};
use crate::secrets::{ServerSecrets, load_keyring, load_master_key};
use tessera_native::problem::Problem;
use tessera_native::state::NativeState;

/// The configured store.
#[derive(Clone)]
pub enum Backend {
    /// Production, and several instances sharing one database.
    Postgres(PgStore),
    /// The default: one process, one file, nothing to install.
    Sqlite(SqliteStore),
}

impl Backend {
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Postgres(s) => Arc::new(s.clone()),
            Backend::Sqlite(s) => Arc::new(s.clone()),
        }
    }
}

/// Connects and (as configured) creates and migrates the database; with how many migrations it
/// applied.
/// `serving`: for `serve`, whose HTTP workers get pools of their own.
pub async fn connect_store(settings: &Settings, migrate: bool, serving: bool) -> anyhow::Result<(Backend, usize)> {
    let mut applied = 0;
    let url = settings.database_url();
    let backend = if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(&url).await.with_context(|| format!("database.url: cannot open the SQLite database {url}"))?;
        tracing::info!(database = %url, "using SQLite (set database.url to a postgres:// URL for production)");
        if migrate {
            applied = store.migrate().await.context("applying migrations")?;
        }
        Backend::Sqlite(store)
    } else {
        if settings.database.create_if_missing {
            PgStore::ensure_database(&url)
                .await
                .with_context(|| format!("database.url: cannot reach or create the database at {}", redact(&url)))?;
        }
        // serving, each HTTP worker has a pool of its own (see `tessera_storage::postgres::lanes`)
        let lanes = if serving { settings.server.worker_count() } else { 0 };
        let split = tessera_storage::postgres::Split::of(settings.database.max_connections, lanes);
        let store = PgStore::connect_lazy_split(&url, split).context("database.url: invalid URL")?;
        tracing::info!(database = %redact(&url), "using PostgreSQL");
        if migrate {
            applied = store.migrate().await.context("applying migrations")?;
        }
        Backend::Postgres(store)
    };
    if applied > 0 {
        tracing::info!(applied, "migrations applied");
    }
    Ok((backend, applied))
}

/// A database URL without its password, for messages (kept here for the paths that name it).
pub use crate::config::redact;

/// Everything but the HTTP server: what `serve` and the admin commands share.
pub struct Core {
    /// What the native handlers share (the use-cases, the native face, the profiles).
    pub state: web::Data<NativeState>,
    /// The whole configuration, checked.
    pub settings: Arc<Settings>,
    /// Password hashing: its queue is a metric.
    pub hasher: Arc<crate::hasher::BlockingHasher>,
    /// For the admin commands; the faces reach the store only through the use-cases.
    pub store: Arc<dyn Store>,
    pub revocations: Arc<RevocationCache>,
    listener: Option<tokio::task::JoinHandle<()>>,
    /// The signing keys: the schedule, reloads, the operators' commands.
    pub keys: Arc<crate::keys::KeyManager>,
    key_task: Option<tokio::task::JoinHandle<()>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Core {
    pub async fn build(mut settings: Settings, migrate: bool, listen_for_revocations: bool) -> anyhow::Result<Self> {
        let checked = settings.check()?;
        let (backend, _) = connect_store(&settings, migrate, listen_for_revocations).await?;
        let store = backend.store();
        renormalize_emails(&*store).await?;
        let master = load_master_key(&settings)?;
        if listen_for_revocations {
            // serving: the trusted-caller routes are mounted (admin commands mount nothing)
            crate::secrets::resolve_medods_caller_key(&mut settings)?;
        }
        let secrets = ServerSecrets::from_master(&master);
        let now = OffsetDateTime::now_utc();
        let algs = signing_algorithms(&settings, &checked);
        let keyring = load_keyring(&*store, &secrets.sealer, &algs, i64::from(settings.tokens.leeway_seconds), now).await?;

        let faces = build_faces(&settings, &checked)?;
        // A revocation is remembered for as long as any access token it refuses may live: the
        // longest access lifetime of any face or client profile, or of any session still open
        // under a profile the configuration has since shortened or removed.
        let configured = faces.longest_access_ttl().max(Settings::max_access_ttl(&checked));
        let horizon = revocation_horizon(&*store, configured, settings.tokens.leeway_seconds, now).await?;
        let revocations = Arc::new(RevocationCache::new(horizon));
        // Keys: a next one published a JWKS max-age ahead, a retired one kept until the last
        // token it signed has expired (the revocation horizon).
        // A retired key must verify every token it signed until the last one has expired: the
        // access tokens, and the refresh tokens that are JWTs (up to 90 days for djoser).
        let keep_retired =
            horizon.max(faces.longest_signed_ttl() + Duration::seconds(i64::from(settings.tokens.leeway_seconds)) + Duration::minutes(1));
        let schedule = (settings.tokens.key_rotation_days > 0).then(|| tessera_domain::key_schedule::KeySchedule {
            period: Duration::days(i64::from(settings.tokens.key_rotation_days)),
            publish_ahead: Duration::seconds(i64::from(settings.tokens.jwks_max_age_seconds)),
            keep_retired,
        });
        let keys = Arc::new(crate::keys::KeyManager::new(store.clone(), secrets.sealer.clone(), keyring.clone(), schedule, algs.clone()));
        let keys_changed = Arc::new(tokio::sync::Notify::new());
        // clients deleted or changed by another process, as the listener hears of them
        let (clients_changed, mut clients_heard) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        let listener = match (&backend, listen_for_revocations) {
            (Backend::Postgres(pg), true) => Some(
                start_listener(pg.clone(), revocations.clone(), keys_changed.clone(), clients_changed)
                    .await
                    .context("listening for revocations")?,
            ),
            (Backend::Sqlite(_), true) => {
                // Admin commands (`tessera user block`) are other processes on the same file:
                // poll for their revocations, as Postgres instances hear them through NOTIFY.
                revocations.reload(&*store).await.context("loading revocations")?;
                Some(crate::revocations::start_polling(store.clone(), revocations.clone()))
            }
            (_, false) => None,
        };

        let argon = Argon2Hasher::new(settings.password.argon2)?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let hasher = Arc::new(
            BlockingHasher::new(
                argon,
                settings.password.max_concurrent_hashes,
                settings.password.max_queued_hashes,
                settings.password.hash_priority,
            )
            .with_metrics(metrics.clone()),
        );
        let token_settings = tessera_domain::TokenSettings {
            max_session_lifetime: checked.max_session_lifetime,
            password_policy: PasswordPolicy { min_chars: settings.password.min_length },
            lockout: settings.password.lockout,
            address_prefixes: (settings.password.ipv4_prefix, settings.password.ipv6_prefix),
            failed_login_window: Duration::seconds(i64::from(settings.password.failed_login_window_seconds)),
            attempts_retention: Duration::days(i64::from(settings.password.attempts_retention_days)),
        };
        let webhooks: std::collections::BTreeMap<String, String> =
            [(tessera_dialects::medods::NAME.to_owned(), settings.dialects.medods.new_ip_webhook.clone().filter(|u| !u.is_empty()))]
                .into_iter()
                .filter_map(|(face, url)| url.map(|u| (face, u)))
                .collect();
        let service = TokenService::new(ServiceParts {
            store: store.clone(),
            hasher: hasher.clone(),
            revocations: revocations.clone(),
            notifier: Some(Arc::new(crate::notify::Channels::new(
                WebhookNotifier::new(webhooks)?,
                crate::mail::Mailer::from_settings(&settings.email)?,
                store.clone(),
                &settings.email,
            ))),
            keyring,
            refresh_hasher: secrets.refresh_hasher.clone(),
            sealer: secrets.sealer.clone(),
            settings: token_settings,
            faces,
            limiter: crate::throttle::AddressLimiter::per_minute(settings.password.attempts_per_address_per_minute)
                .map(|l| Arc::new(l) as Arc<dyn tessera_domain::AttemptLimiter>),
            events: Some(metrics.clone()),
            audit: tessera_domain::audit::AuditChain::new(secrets.audit.clone(), secrets.audit_head.clone()),
        });
        let native = service.face(NATIVE).context("the native face")?;
        // ends with the listener (the sender's owner)
        let forgetting = service.clone();
        tokio::spawn(async move {
            while let Some(client_id) = clients_heard.recv().await {
                forgetting.forget_client(client_id.as_deref());
            }
        });
        if listen_for_revocations {
            calibrate_password_floor(&service).await;
            let calibrating = service.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PASSWORD_FLOOR_EVERY);
                every.tick().await;
                loop {
                    every.tick().await;
                    calibrate_password_floor(&calibrating).await;
                }
            });
        }
        if settings.dialects.medods.enabled && settings.dialects.medods.open_to_anyone && listen_for_revocations {
            tracing::warn!("the Medods dialect's /generate and /deleteall are open to anyone (dialects.medods.open_to_anyone = true)");
        }
        if settings.oauth.default_client_enabled {
            ensure_default_client(&*store, &settings, now).await?;
        }
        let settings_key_check = settings.tokens.key_check_seconds;
        let native_settings = tessera_native::state::NativeSettings {
            max_body_bytes: settings.server.max_body_bytes,
            public_url: settings.server.public_url.clone(),
            issuer: settings.issuer(),
            jwks_max_age_seconds: settings.tokens.jwks_max_age_seconds,
            default_client_enabled: settings.oauth.default_client_enabled,
            default_client_id: settings.oauth.default_client_id.clone(),
            default_profile: settings.oauth.default_profile.clone(),
            require_dpop: settings.oauth.require_dpop,
            dpop_nonce: settings.oauth.dpop_nonce,
        };
        let state = web::Data::new(NativeState { native, service, settings: native_settings, profiles: checked.profiles });
        let settings = Arc::new(settings);
        let key_task = listen_for_revocations.then(|| {
            let every = std::time::Duration::from_secs(u64::from(settings_key_check));
            // SQLite has no NOTIFY: an operator's change (another process) is seen within a second
            let reload = if matches!(backend, Backend::Sqlite(_)) { std::time::Duration::from_secs(1) } else { every };
            crate::keys::spawn(keys.clone(), state.service.clone(), every, reload, keys_changed.clone())
        });
        Ok(Self { state, settings, hasher, store, revocations, listener, keys, key_task, metrics })
    }
}

/// How often a server measures again what its costliest stored password hash costs: the floor
/// a failed login is held to falls as imported users are re-hashed (and rises at once when a
/// costlier hash is verified).
const PASSWORD_FLOOR_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

async fn calibrate_password_floor(service: &TokenService) {
    match service.calibrate_password_floor().await {
        Ok(floor) => tracing::debug!(floor_ms = floor.as_millis(), "failed logins are answered no sooner than the costliest stored hash"),
        Err(e) => tracing::warn!(error = %e, "the costliest stored password hash could not be measured; the floor stays"),
    }
}

/// E-mails stored under an older comparison rule are normalized again (see
/// `Email::normalized`), before anything looks a user up.
async fn renormalize_emails(store: &dyn Store) -> anyhow::Result<()> {
    let normalize = |raw: &str| tessera_domain::Email::parse(raw).ok().map(|e| e.normalized());
    let (updated, kept) = store.renormalize_emails(tessera_domain::Email::NORMALIZATION, normalize).await?;
    if !updated.is_empty() {
        tracing::info!(count = updated.len(), "e-mail addresses normalized under the current comparison rule");
    }
    for id in kept {
        tracing::warn!(user_id = %id, "an e-mail address keeps its old comparison form: it is no longer valid, or another user's looks the same");
    }
    Ok(())
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(l) = self.listener.take() {
            l.abort();
        }
        if let Some(k) = self.key_task.take() {
            k.abort();
        }
    }
}

/// Every algorithm something signs with: the native API's first, then the dialects' others.
pub fn signing_algorithms(settings: &Settings, checked: &Checked) -> Vec<tessera_domain::Algorithm> {
    let mut algs = vec![checked.algorithm];
    algs.extend(tessera_dialects::algorithms(&settings.dialects).into_iter().filter(|a| *a != checked.algorithm));
    algs
}

/// The native face's name, recorded on the sessions it opens.
pub const NATIVE: &str = "native";

/// Every mounted face: the native API's, then each enabled dialect's.
pub fn build_faces(settings: &Settings, checked: &Checked) -> anyhow::Result<Faces> {
    let native = Face {
        name: NATIVE.into(),
        audience: settings.tokens.audience.clone(),
        profile: checked.profiles.get(&settings.oauth.default_profile).cloned().unwrap_or_else(TokenProfile::standard),
        refresh: settings.tokens.refresh_policy,
        grace: Duration::seconds(i64::from(settings.tokens.refresh_grace_seconds)),
        risk: settings.tokens.risk.clone(),
        format: Arc::new(NativeFormat {
            issuer: settings.issuer(),
            accepted_issuers: settings.tokens.accepted_issuers.clone(),
            alg: checked.algorithm,
        }),
    };
    let drf_format =
        NativeFormat { issuer: settings.issuer(), accepted_issuers: settings.tokens.accepted_issuers.clone(), alg: checked.algorithm };
    let mut all = vec![native];
    all.extend(tessera_dialects::faces(&settings.dialects, &checked.profiles, &drf_format)?);
    Ok(Faces::new(all)?)
}

async fn ensure_default_client(store: &dyn Store, settings: &Settings, now: OffsetDateTime) -> anyhow::Result<()> {
    let id = &settings.oauth.default_client_id;
    if store.client_by_id(id).await?.is_some() {
        return Ok(());
    }
    let client = OAuthClient {
        client_id: ClientId::parse(id)?,
        name: "Default public client".into(),
        secret_hash: None,
        profile: settings.oauth.default_profile.clone(),
        created_at: now,
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    match store.create_client(&client).await {
        Ok(()) => {
            tracing::info!(client_id = %id, "created the default public OAuth client");
            Ok(())
        }
        Err(RepoError::Conflict(_)) => Ok(()), // another instance created it first
        Err(e) => Err(e.into()),
    }
}

/// The running service.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics`, on a listener of its own (none when `metrics.enabled = false`).
    metrics: Option<(u16, Server)>,
    /// Seconds requests in flight get to finish after a stop signal.
    grace: u64,
    stop: StopSignal,
    _core: Arc<Core>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let migrate = settings.database.migrate_on_start;
        let core = Core::build(settings, migrate, true).await?;
        let server_settings = core.settings.server.clone();
        // before any listener: slow clients must exhaust neither descriptors nor connections
        let descriptors = crate::slow_clients::raise_descriptor_limit();
        let max_connections =
            crate::slow_clients::connection_cap(server_settings.max_connections, descriptors, core.settings.database.max_connections);
        let listener = TcpListener::bind((server_settings.host.as_str(), server_settings.port))
            .with_context(|| format!("server.port: cannot listen on {}:{}", server_settings.host, server_settings.port))?;
        let port = listener.local_addr()?.port();
        let metrics_settings = core.settings.metrics.clone();
        let metrics_listener = if metrics_settings.enabled {
            let l = TcpListener::bind((metrics_settings.host.as_str(), metrics_settings.port)).with_context(|| {
                format!(
                    "metrics.port: cannot listen on {}:{} (set metrics.port, 0 for any free port)",
                    metrics_settings.host, metrics_settings.port
                )
            })?;
            Some(l)
        } else {
            None
        };
        let tls = if server_settings.tls.enabled() { Some(crate::tls::server_config(&server_settings.tls)?) } else { None };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let core = Arc::new(core);
        let server = build_server(listener, core.clone(), max_connections, tls)?;
        let (body_timeout_seconds, keep_alive_seconds) = (server_settings.body_timeout_seconds, server_settings.keep_alive_seconds);
        match descriptors {
            Some(open_files_limit) => {
                tracing::info!(max_connections, open_files_limit, body_timeout_seconds, keep_alive_seconds, "connection limits");
            }
            None => tracing::info!(max_connections, body_timeout_seconds, keep_alive_seconds, "connection limits"),
        }
        let metrics = match metrics_listener {
            Some(l) => {
                let metrics_port = l.local_addr()?.port();
                let server = build_metrics_server(l, &core)?;
                tracing::info!(metrics = %format!("http://{}:{metrics_port}/metrics", metrics_settings.host), "Prometheus metrics on their own listener");
                Some((metrics_port, server))
            }
            None => None,
        };
        // before the address is announced: a signal from then on stops the server gracefully
        let stop = StopSignal::register().context("installing the SIGINT/SIGTERM handlers")?;
        tracing::info!(address = %format!("{scheme}://{}:{port}", server_settings.host), "Tessera is listening; API docs at /docs/");
        Ok(Self { port, server, metrics, grace: server_settings.shutdown_timeout_seconds, stop, _core: core })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when it is enabled.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Runs until SIGTERM or SIGINT (Ctrl-C), then stops gracefully: no new connections, and
    /// requests in flight get up to `server.shutdown_timeout_seconds` to finish. (actix-web's
    /// own handler would stop at once on SIGINT.)
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let (grace, stop) = (self.grace, self.stop);
        tokio::spawn(async move {
            let signal = stop.recv().await;
            tracing::info!(signal, grace_seconds = grace, "stopping gracefully: requests in flight may finish");
            handle.stop(true).await;
        });
        let served = self.server.await;
        if let Some(m) = metrics {
            m.stop(false).await;
        }
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// SIGINT and SIGTERM, caught from the moment it is registered.
struct StopSignal {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// The first of them to arrive.
    async fn recv(self) -> &'static str {
        #[cfg(unix)]
        {
            let Self { mut int, mut term } = self;
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let problem = match &err {
        JsonPayloadError::OverflowKnownLength { limit, .. } | JsonPayloadError::Overflow { limit } => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is larger than {limit} bytes"))
        }
        JsonPayloadError::ContentType => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "the body must be application/json")
        }
        JsonPayloadError::Deserialize(e) => Problem::bad_request("invalid_body", format!("invalid JSON body: {e}")),
        other => Problem::bad_request("invalid_body", format!("the body could not be read: {other}")),
    };
    problem.into()
}

async fn not_found() -> HttpResponse {
    use actix_web::ResponseError;
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route").error_response()
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
}

fn build_server(
    listener: TcpListener,
    core: Arc<Core>,
    max_connections: usize,
    tls: Option<rustls::ServerConfig>,
) -> anyhow::Result<Server> {
    let settings = core.settings.clone();
    let workers = settings.server.worker_count();
    // actix counts connections per worker
    let per_worker = (max_connections / workers).max(1);
    let keep_alive = match settings.server.keep_alive_seconds {
        0 => actix_web::http::KeepAlive::Disabled,
        s => actix_web::http::KeepAlive::Timeout(std::time::Duration::from_secs(s)),
    };
    let max_body = settings.server.max_body_bytes;
    let state = core.state.clone();
    let metrics = web::Data::from(core.metrics.http.clone());
    // Shared by every worker: its HTTP client and the identity providers' cached keys.
    let drf = if settings.dialects.drf_social_oauth2.enabled {
        let face = state.service.face(tessera_dialects::drf_social::NAME)?;
        let drf = &settings.dialects.drf_social_oauth2;
        let providers = drf.providers.iter().map(|(name, p)| {
            let provider = tessera_oidc::Provider {
                issuer: &p.issuer,
                audience: p.audience.as_deref(),
                jwks_url: p.jwks_url.as_deref(),
                jwks: p.jwks.as_deref(),
            };
            (name, provider)
        });
        let providers = tessera_oidc::providers(providers, std::time::Duration::from_secs(u64::from(drf.jwks_refetch_seconds)))
            .context("convert-token's identity providers: cannot build an HTTP client")?;
        Some(Arc::new(tessera_dialects::drf_social::DrfFace::new(drf, face, providers)))
    } else {
        None
    };
    // The served document follows this instance's configuration (which dialects, where). It is
    // serialised once and shared: each worker building and holding its own copy cost about 5 MiB
    // of RSS apiece (idle, 2 workers: 30.7 MiB before, 20.1 after), and each request serialised it
    // again.
    let spec = crate::openapi::spec_for(&settings);
    let doc = web::Bytes::from(serde_json::to_vec(&spec)?);
    // Swagger UI's documents: one per API, each with only its own ways to authorize
    let ui_docs: Vec<(&'static str, &'static str, web::Bytes)> = crate::openapi::ui_documents(&spec)?
        .into_iter()
        .map(|(name, path, part)| Ok((name, path, web::Bytes::from(serde_json::to_vec(&part)?))))
        .collect::<Result<_, serde_json::Error>>()?;
    drop(spec);
    let proxies = web::Data::new(crate::config::trusted_proxies(&settings.server));
    let body_timeout = web::Data::new(crate::slow_clients::BodyTimeout(settings.server.body_timeout_seconds));
    let app_settings = settings.clone();
    let faces = web::Data::new(tessera_dialects::FaceContext { service: state.service.clone(), max_body_bytes: max_body });
    // actix-web's access log renders its line for every request before the line's level is
    // checked (6,000 instructions a call, callgrind): where the level leaves it out, it is not
    // installed at all. The level is read once, at the start, as the filter is set once.
    let access_log = tracing::enabled!(target: "actix_web::middleware::logger", tracing::Level::INFO);
    let server = HttpServer::new(move || {
        let (app, _) = App::new()
            .into_utoipa_app()
            .map(|app| {
                // the last wrapped runs first: the access log outside the request id, so that the
                // response header it logs has been set (it logged `request_id=-` inside it)
                app.wrap(middleware::from_fn(crate::slow_clients::body_deadline))
                    .wrap(middleware::from_fn(crate::throttle::retry_after_header))
                    .wrap(middleware::from_fn(tessera_http::metrics::middleware))
                    .wrap(middleware::from_fn(tessera_http::request_id::middleware))
                    .wrap(middleware::Condition::new(
                        access_log,
                        middleware::Logger::new("%a \"%r\" %s %b %Dms request_id=%{x-request-id}o").exclude("/health/live"),
                    ))
            })
            .app_data(state.clone())
            .app_data(body_timeout.clone())
            .app_data(metrics.clone())
            .app_data(proxies.clone())
            .app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
            .configure(tessera_native::configure)
            .split_for_parts();
        app.app_data(faces.clone())
            .configure(|cfg| tessera_dialects::configure(cfg, &app_settings.dialects, &state.service, drf.clone()))
            .configure(tessera_native::method_fallbacks)
            .service({
                // the Authorize dialog's OAuth2 password flow comes with the default public client filled in
                let urls = ui_docs.iter().map(|(name, path, _)| utoipa_swagger_ui::Url::new(name, path));
                let ui = SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::new(urls));
                let oauth = &app_settings.oauth;
                if oauth.default_client_enabled {
                    ui.oauth(utoipa_swagger_ui::oauth::Config::new().client_id(&oauth.default_client_id))
                } else {
                    ui
                }
            })
            .route("/docs", web::get().to(docs_redirect))
            .configure(|cfg| {
                for (_, path, body) in &ui_docs {
                    let body = body.clone();
                    cfg.route(
                        path,
                        web::get().to(move || {
                            let body = body.clone();
                            async move { HttpResponse::Ok().content_type(ContentType::json()).body(body) }
                        }),
                    );
                }
            })
            .route("/openapi.json", {
                let doc = doc.clone();
                web::get().to(move || {
                    let body = doc.clone();
                    async move { HttpResponse::Ok().content_type(ContentType::json()).body(body) }
                })
            })
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .max_connections(per_worker)
    .keep_alive(keep_alive)
    // the request head: actix's default, said here beside the body's deadline
    .client_request_timeout(std::time::Duration::from_secs(5))
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_seconds);
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// The metrics listener: `GET /metrics` and nothing else, one worker.
fn build_metrics_server(listener: TcpListener, core: &Core) -> anyhow::Result<Server> {
    let state = core.state.clone();
    let metrics = web::Data::from(core.metrics.clone());
    let hasher = web::Data::from(core.hasher.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(metrics.clone())
            .app_data(hasher.clone())
            .service(scrape)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .max_connections(64)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

/// How long a revocation must be remembered: the longest lifetime an access token it may refuse
/// can have, that of today's configuration (`configured`) or of any session still open under an
/// older one, plus the leeway and a minute.
pub async fn revocation_horizon(
    store: &dyn tessera_domain::ports::Store,
    configured: Duration,
    leeway_seconds: u32,
    now: OffsetDateTime,
) -> anyhow::Result<Duration> {
    let stored = store.longest_live_access_ttl(now).await?.unwrap_or(Duration::ZERO);
    Ok(configured.max(stored) + Duration::seconds(i64::from(leeway_seconds)) + Duration::minutes(1))
}

/// Prometheus metrics (OpenMetrics text format), on the metrics listener.
#[actix_web::get("/metrics")]
async fn scrape(
    metrics: web::Data<crate::metrics::Metrics>,
    hasher: web::Data<crate::hasher::BlockingHasher>,
    state: web::Data<NativeState>,
) -> Result<HttpResponse, tessera_native::problem::Problem> {
    let text = metrics.render(hasher.load(), state.service.pool_stats()).map_err(|_| tessera_native::problem::Problem::internal())?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ))
        .body(text))
}
