//! The command line: `serve`, `migrate`, `openapi` and the admin commands.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, Subcommand};
use tessera_domain::{ClientId, Email, OAuthClient, OffsetDateTime, UserStatus};

use crate::config::Settings;
use crate::startup::{Application, Core, connect_store};

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "Tessera: a token service (JWT access / refresh pairs)")]
pub struct Cli {
    /// Configuration file (default: config/default.toml, if present).
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Overrides database.url.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP service (applies migrations first unless database.migrate_on_start = false).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// List and end users' sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Carry users and revoked tokens over from the deployment Tessera replaces.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Read and check the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Events, newest first: time, kind, user, session and detail.
    List {
        /// Only this user's events (e-mail or id).
        #[arg(long)]
        user: Option<String>,
        /// Only events at or after this time: RFC 3339 (2026-12-01T00:00:00Z) or an age (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per event, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Seals new events, then checks the whole chain; exits 1 naming the first edited, inserted
    /// or deleted event.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// From a Django deployment's database: its users (`auth_user`, ids kept, password hashes
    /// kept and re-hashed to Argon2id at each user's next login) and simplejwt's blacklist
    /// (`token_blacklist_*`, which needs the face's `legacy_secret`). Safe to run again.
    Django {
        /// The Django database: `postgres://…` or `sqlite:path/to/db.sqlite3` (read only).
        #[arg(long = "from")]
        from: String,
        /// The face whose legacy tokens the blacklist holds.
        #[arg(long, default_value = "simplejwt")]
        face: String,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the signing keys: kid, algorithm, state, when created, activated and retired.
    List {
        /// One JSON object per key, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Publish a next key now; with --now it also signs at once and the active key retires.
    /// Without --now the schedule activates it once it has been published for a JWKS max-age.
    Rotate {
        /// The algorithm (default: tokens.algorithm, the native face's).
        #[arg(long)]
        alg: Option<String>,
        #[arg(long)]
        now: bool,
    },
    /// Retire a key: it stops signing; its tokens verify until they expire.
    Retire { kid: String },
    /// Revoke a compromised key: every token it signed is refused at once; a new key signs.
    Revoke { kid: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from the first line of standard input unless given.
    Create {
        #[arg(long)]
        email: String,
        /// Visible to other local users in the process list: prefer standard input.
        #[arg(long)]
        password: Option<String>,
    },
    /// Block a user: every session ends at once and every face refuses the user.
    Block {
        #[arg(long)]
        email: String,
    },
    /// Unblock a user.
    Unblock {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// A user's live sessions, newest first: id, API, client, created, last used, address and
    /// User-Agent.
    List {
        #[arg(long)]
        email: String,
        /// One JSON object per session, one per line.
        #[arg(long)]
        json: bool,
    },
    /// End a session: its refresh token stops working and its access tokens are refused.
    /// Exits 1 when no live session has this id.
    Revoke {
        #[arg(long)]
        id: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an OAuth client; a confidential client's secret is printed once and stored hashed.
    Create {
        #[arg(long)]
        client_id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Give the client a secret it must present.
        #[arg(long)]
        confidential: bool,
        /// The token profile of its sessions (standard, extended or a configured one).
        #[arg(long, default_value = "standard")]
        profile: String,
    },
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(url) = &cli.database_url {
        settings.database.url = url.clone();
    }
    Ok(settings)
}

#[expect(clippy::print_stdout, reason = "the admin commands' output is for the operator")]
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        print!("{}", crate::openapi::spec_json()?);
        return Ok(());
    }
    let settings = load_settings(&cli)?;
    crate::telemetry::init(&settings.log);
    match cli.command {
        Command::Openapi => Ok(()),
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await.context("the server failed")
        }
        Command::Migrate => {
            settings.check()?;
            connect_store(&settings, true).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(cmd) => {
            let core = Core::build(settings, true, false).await?;
            let service = &core.state.service;
            let now = OffsetDateTime::now_utc();
            match cmd {
                UserCommand::Create { email, password } => {
                    let password = match password {
                        Some(p) => p,
                        None => read_password()?,
                    };
                    let user = service.register(&email, password, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    println!("created user {} <{}>", user.id, user.email);
                }
                UserCommand::Block { email } => {
                    let user = find_user(&core, &email).await?;
                    service.set_user_status(user, UserStatus::Blocked, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    println!("blocked user {user}; every session revoked");
                }
                UserCommand::Unblock { email } => {
                    let user = find_user(&core, &email).await?;
                    service.set_user_status(user, UserStatus::Active, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    println!("unblocked user {user}");
                }
            }
            Ok(())
        }
        Command::Session(cmd) => {
            let core = Core::build(settings, true, false).await?;
            let now = OffsetDateTime::now_utc();
            match cmd {
                SessionCommand::List { email, json } => {
                    let user = find_user(&core, &email).await?;
                    let rfc3339 = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
                    for s in core.store.sessions_of_user(user, now, 1000).await? {
                        let last = s.last_refresh_at.unwrap_or(s.created_at);
                        if json {
                            let line = serde_json::json!({"id": s.id.0, "user_id": user.0, "face": s.face, "client_id": s.client_id,
                                "created_at": rfc3339(s.created_at), "last_used_at": rfc3339(last), "expires_at": rfc3339(s.expires_at),
                                "ip": s.ip, "user_agent": s.user_agent});
                            println!("{line}");
                        } else {
                            println!(
                                "{}  {:<10} last used {}  {}  {}",
                                s.id.0,
                                s.face,
                                rfc3339(last),
                                s.ip.as_deref().unwrap_or("-"),
                                s.user_agent.as_deref().unwrap_or("-")
                            );
                        }
                    }
                }
                SessionCommand::Revoke { id } => {
                    let id = tessera_domain::SessionId(id);
                    match core.store.session(id).await? {
                        Some(s) if !s.is_revoked() => {
                            core.state.service.revoke_session(id, "revoked_by_admin", now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                            println!("session {} ended", id.0);
                        }
                        _ => bail!("--id: no live session {}", id.0),
                    }
                }
            }
            Ok(())
        }
        Command::Key(cmd) => {
            let core = Core::build(settings, true, false).await?;
            let now = OffsetDateTime::now_utc();
            match cmd {
                KeyCommand::List { json } => {
                    for k in core.keys.list().await? {
                        let when = |t: Option<OffsetDateTime>| t.map(|t| t.unix_timestamp());
                        if json {
                            let line = serde_json::json!({"kid": k.kid, "alg": k.alg, "state": k.state.as_str(),
                                "created_at": k.created_at.unix_timestamp(), "activated_at": when(k.activated_at), "retired_at": when(k.retired_at)});
                            println!("{line}");
                        } else {
                            println!("{}  {:<6} {:<8} created {}", k.kid, k.alg, k.state.as_str(), k.created_at);
                        }
                    }
                }
                KeyCommand::Rotate { alg, now: at_once } => {
                    let name = alg.unwrap_or_else(|| core.state.settings.tokens.algorithm.clone());
                    let alg = tessera_domain::Algorithm::parse(&name).with_context(|| format!("--alg: unknown algorithm {name:?}"))?;
                    let kid = core.keys.rotate(alg, at_once, now).await?;
                    if at_once {
                        println!("key {kid} ({}) signs from now on", alg.as_str());
                    } else {
                        println!("key {kid} ({}) is published; the schedule activates it after tokens.jwks_max_age_seconds", alg.as_str());
                    }
                }
                KeyCommand::Retire { kid } => {
                    if !core.keys.retire(&kid, now).await? {
                        bail!("no key {kid:?}");
                    }
                    println!("key {kid} retired");
                }
                KeyCommand::Revoke { kid } => {
                    if !core.keys.revoke(&kid, now).await? {
                        bail!("no key {kid:?}");
                    }
                    println!("key {kid} revoked: its tokens are refused");
                }
            }
            Ok(())
        }
        Command::Audit(cmd) => {
            let core = Core::build(settings, true, false).await?;
            let service = &core.state.service;
            match cmd {
                AuditCommand::List { user, since, limit, json } => {
                    let user = match user {
                        Some(u) => Some(match u.parse::<i64>() {
                            Ok(id) => tessera_domain::UserId(id),
                            Err(_) => find_user(&core, &u).await?,
                        }),
                        None => None,
                    };
                    let since = since.as_deref().map(parse_since).transpose()?;
                    service.seal_audit().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    for e in service.audit_events(user, since, limit).await.map_err(|e| anyhow::anyhow!("{e}"))? {
                        if json {
                            println!("{}", serde_json::to_string(&e)?);
                        } else {
                            let at = e.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
                            let user = e.user_id.map(|u| u.to_string()).unwrap_or_else(|| "-".into());
                            let session = e.session_id.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
                            println!("{at}  {:<16} user {user:<6} session {session}  {}", e.kind, e.detail);
                        }
                    }
                    Ok(())
                }
                AuditCommand::Verify { json } => {
                    let verdict = service.verify_audit().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    if json {
                        println!("{}", serde_json::to_string(&verdict)?);
                    }
                    match &verdict.broken {
                        None => {
                            if !json {
                                println!("audit trail intact: {} events checked", verdict.checked);
                            }
                            Ok(())
                        }
                        Some(b) => bail!("audit trail broken at event #{} (row id {:?}): {}", b.seq, b.id, b.reason),
                    }
                }
            }
        }
        Command::Import(ImportCommand::Django { from, face, json }) => {
            let core = Core::build(settings, true, false).await?;
            let summary = crate::import::django(&core, &from, &face, OffsetDateTime::now_utc()).await?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!("{summary}");
            }
            Ok(())
        }
        Command::Client(ClientCommand::Create { client_id, name, confidential, profile }) => {
            let core = Core::build(settings, true, false).await?;
            if core.state.profile(&profile).is_none() {
                bail!("--profile: no profile named {profile:?}");
            }
            let id = ClientId::parse(&client_id).map_err(|e| anyhow::anyhow!("--client-id: {e}"))?;
            let secret = if confidential { Some(URL_SAFE_NO_PAD.encode(tessera_domain::secret::random_bytes::<32>()?)) } else { None };
            let client = OAuthClient {
                client_id: id,
                name: if name.is_empty() { client_id.clone() } else { name },
                secret_hash: secret.as_ref().map(|s| core.state.service.secret_hash(s.as_bytes())),
                profile,
                created_at: OffsetDateTime::now_utc(),
            };
            core.store.create_client(&client).await.map_err(|e| match e {
                tessera_domain::RepoError::Conflict(_) => anyhow::anyhow!("--client-id: a client {client_id:?} exists already"),
                other => anyhow::Error::from(other),
            })?;
            let detail = serde_json::json!({"client_id": client_id, "confidential": confidential, "profile": client.profile});
            core.state.service.audit("client_created", None, detail, OffsetDateTime::now_utc()).await;
            println!("client_id: {client_id}");
            if let Some(s) = secret {
                println!("client_secret: {s}");
                println!("(shown once: Tessera stores only its hash)");
            }
            Ok(())
        }
    }
}

async fn find_user(core: &Core, email: &str) -> anyhow::Result<tessera_domain::UserId> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    match core.store.user_by_email(&email).await? {
        Some(u) => Ok(u.id),
        None => bail!("--email: no user {email}"),
    }
}

/// `--since`: an RFC 3339 time, or an age such as `24h` or `7d`.
fn parse_since(raw: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let age =
        humantime::parse_duration(raw).with_context(|| format!("--since: {raw:?} is neither an RFC 3339 time nor an age like 24h"))?;
    Ok(OffsetDateTime::now_utc() - age)
}

fn read_password() -> anyhow::Result<String> {
    eprint!("password: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
