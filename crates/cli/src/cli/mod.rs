//! The command line: `serve`, `migrate`, `openapi` and the admin commands.

use std::io::{BufRead, Write};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_domain::{ClientId, Email, OAuthClient, OffsetDateTime, UserStatus};

pub use crate::output::{Failure, StdoutClosed, exit_code};
use crate::output::{outln, write_out};
use tessera_server::config::Settings;
use tessera_server::startup::{Application, Core, connect_store};

mod args;
pub use args::*;

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Failure::Usage(msg.into()).into()
}

/// A broken audit chain, as `audit verify` and `audit head` report it (exit 4).
fn broken_chain(b: &tessera_domain::audit::BrokenLink) -> anyhow::Error {
    let row = b.id.map(|id| format!(" (row id {id})")).unwrap_or_default();
    Failure::CheckFailed(format!("audit trail broken at event #{}{row}: {}", b.seq, b.reason)).into()
}

fn not_found(msg: impl Into<String>) -> anyhow::Error {
    Failure::NotFound(msg.into()).into()
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(url) = &cli.database_url {
        settings.database.url = url.clone();
    }
    Ok(settings)
}

/// A time as the commands print it: RFC 3339, UTC, to the second.
fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Prints a result: the JSON object with --json, the sentence otherwise.
fn say(json: bool, value: serde_json::Value, text: impl std::fmt::Display) -> anyhow::Result<()> {
    if json { outln!("{value}") } else { outln!("{text}") }
}

fn user_json(u: &tessera_domain::User) -> serde_json::Value {
    serde_json::json!({"id": u.id.0, "email": u.email.to_string(), "status": u.status.as_str(),
        "created_at": rfc3339(u.created_at), "password_changed_at": u.password_changed_at.map(rfc3339),
        "has_password": u.password_hash.is_some()})
}

fn client_json(c: &OAuthClient) -> serde_json::Value {
    serde_json::json!({"client_id": c.client_id.as_str(), "name": c.name, "confidential": c.is_confidential(),
        "profile": c.profile, "created_at": rfc3339(c.created_at), "scopes": c.scopes, "audiences": c.audiences,
        "require_dpop": c.require_dpop, "exchange_types": c.exchange_types})
}

/// The subject token types `client create --exchange` names, checked: only a confidential
/// client that names an audience may exchange tokens.
fn exchange_types(confidential: bool, audiences: &[String], mut types: Vec<String>) -> anyhow::Result<Vec<String>> {
    if let Some(bad) = types.iter().find(|t| !matches!(t.as_str(), "access_token" | "refresh_token")) {
        return Err(usage(format!("--exchange: {bad:?} is not a token type it can exchange: access_token or refresh_token")));
    }
    if !types.is_empty() && (!confidential || audiences.is_empty()) {
        return Err(usage("--exchange: only a confidential client that names an --audience may exchange tokens"));
    }
    types.sort();
    types.dedup();
    Ok(types)
}

/// The client_credentials grant's settings of `client create`, checked.
fn client_grants(
    id: &ClientId,
    confidential: bool,
    scopes: Vec<String>,
    audiences: Vec<String>,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    if let Some(bad) = scopes.iter().find(|s| !tessera_domain::identity::is_scope_token(s)) {
        return Err(usage(format!("--scope: {bad:?} is not a scope: 1-128 printable ASCII characters, no space, quote or backslash")));
    }
    if let Some(bad) = audiences.iter().find(|a| !tessera_domain::identity::is_audience(a)) {
        return Err(usage(format!("--audience: {bad:?} is not an audience: 1-256 printable ASCII characters, no space")));
    }
    if !audiences.is_empty() && !confidential {
        return Err(usage("--audience: only a confidential client may use the client_credentials grant; add --confidential"));
    }
    if !audiences.is_empty() && id.could_be_a_user() {
        return Err(usage(
            "--audience: a client using the client_credentials grant needs an id that is not only digits (its tokens' `sub`; a user's is a number)",
        ));
    }
    if !scopes.is_empty() && audiences.is_empty() {
        return Err(usage("--scope: scopes are for the client_credentials grant; name the --audience it may ask for too"));
    }
    let dedup = |mut v: Vec<String>| {
        let mut seen = std::collections::BTreeSet::new();
        v.retain(|x| seen.insert(x.clone()));
        v
    };
    Ok((dedup(scopes), dedup(audiences)))
}

fn domain(e: tessera_domain::DomainError) -> anyhow::Error {
    match e {
        tessera_domain::DomainError::NotFound(what) => not_found(format!("no such {what}")),
        e @ tessera_domain::DomainError::Invalid { .. } => usage(e.to_string()),
        other => anyhow::anyhow!("{other}"),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    if let Command::Openapi = cli.command {
        write_out(format_args!("{}", tessera_server::openapi::spec_json()?))?;
        return Ok(());
    }
    if let Command::Conformance(args) = cli.command {
        return conformance(args, json).await;
    }
    if let Command::Doctor = cli.command {
        return crate::doctor::run(cli.config.as_deref(), cli.database_url.as_deref(), json).await;
    }
    let settings = load_settings(&cli)?;
    if matches!(cli.command, Command::Serve) {
        tessera_server::telemetry::init(&settings.log);
    } else {
        // an admin command's answer is its output: its log says only what went wrong (warnings
        // and errors), unless RUST_LOG asks for more
        let mut log = settings.log.clone();
        if log.level == tessera_server::config::LogSettings::default().level {
            log.level = "warn".into();
        }
        tessera_server::telemetry::init(&log);
    }
    match cli.command {
        Command::Openapi | Command::Conformance(_) | Command::Doctor => Ok(()),
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await.context("the server failed")
        }
        Command::Migrate => {
            settings.check()?;
            let (_, applied) = connect_store(&settings, true, false).await?;
            let said = if applied == 0 { "the database schema is up to date".to_owned() } else { format!("{applied} migrations applied") };
            say(json, serde_json::json!({"migrated": true, "applied": applied}), said)?;
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
                    let user = service.register(&email, password, now).await.map_err(|e| match e {
                        tessera_domain::DomainError::EmailTaken => {
                            Failure::Conflict(format!("--email: a user {email} exists already")).into()
                        }
                        e @ tessera_domain::DomainError::Invalid { .. } => usage(e.to_string()),
                        other => anyhow::anyhow!("{other}"),
                    })?;
                    say(json, user_json(&user), format_args!("created user {} <{}>", user.id, user.email))?;
                }
                UserCommand::List { after, limit } => {
                    for u in core.store.list_users(after, limit).await? {
                        say(
                            json,
                            user_json(&u),
                            format_args!("{:>8}  {:<8} {}  {}", u.id, u.status.as_str(), rfc3339(u.created_at), u.email),
                        )?;
                    }
                }
                UserCommand::Show { email } => {
                    let user = find(&core, &email).await?;
                    let sessions = core.store.sessions_of_user(user.id, now, 1000).await?.len();
                    let mut v = user_json(&user);
                    v["live_sessions"] = serde_json::json!(sessions);
                    let changed = user.password_changed_at.map(rfc3339).unwrap_or_else(|| "-".into());
                    say(
                        json,
                        v,
                        format_args!(
                            "id {}\ne-mail {}\nstatus {}\ncreated {}\npassword changed {changed}\nlive sessions {sessions}",
                            user.id,
                            user.email,
                            user.status.as_str(),
                            rfc3339(user.created_at)
                        ),
                    )?;
                }
                UserCommand::Block { email } => {
                    let user = find_user(&core, &email).await?;
                    service.set_user_status(user, UserStatus::Blocked, now).await.map_err(domain)?;
                    say(
                        json,
                        serde_json::json!({"id": user.0, "status": "blocked"}),
                        format_args!("blocked user {user}; every session revoked"),
                    )?;
                }
                UserCommand::Unblock { email } => {
                    let user = find_user(&core, &email).await?;
                    service.set_user_status(user, UserStatus::Active, now).await.map_err(domain)?;
                    say(json, serde_json::json!({"id": user.0, "status": "active"}), format_args!("unblocked user {user}"))?;
                }
                UserCommand::SetPassword { email, password } => {
                    let user = find_user(&core, &email).await?;
                    let password = match password {
                        Some(p) => p,
                        None => read_password()?,
                    };
                    let ended = service.set_password(user, password, now).await.map_err(|e| match e {
                        e @ tessera_domain::DomainError::Invalid { .. } => usage(e.to_string()),
                        other => domain(other),
                    })?;
                    say(
                        json,
                        serde_json::json!({"id": user.0, "sessions_ended": ended}),
                        format_args!("password set for user {user}; {ended} session(s) ended"),
                    )?;
                }
                UserCommand::Delete { email, yes } => {
                    if !yes {
                        return Err(usage(format!("deleting {email} cannot be undone: add --yes")));
                    }
                    let user = find_user(&core, &email).await?;
                    let ended = service.delete_user(user, now).await.map_err(domain)?;
                    say(
                        json,
                        serde_json::json!({"id": user.0, "deleted": true, "sessions_ended": ended}),
                        format_args!("deleted user {user}; {ended} session(s) ended"),
                    )?;
                }
            }
            Ok(())
        }
        Command::Session(cmd) => {
            let core = Core::build(settings, true, false).await?;
            let now = OffsetDateTime::now_utc();
            match cmd {
                SessionCommand::List { email } => {
                    let user = find_user(&core, &email).await?;
                    for s in core.store.sessions_of_user(user, now, 1000).await? {
                        let last = s.last_refresh_at.unwrap_or(s.created_at);
                        let line = serde_json::json!({"id": s.id.0, "user_id": user.0, "api": s.face, "client_id": s.client_id,
                            "created_at": rfc3339(s.created_at), "last_used_at": rfc3339(last), "expires_at": rfc3339(s.expires_at),
                            "ip": s.ip, "user_agent": s.user_agent});
                        let text = format!(
                            "{}  {:<10} {:<12} created {}  last used {}  {}  {}",
                            s.id.0,
                            s.face,
                            s.client_id.as_deref().unwrap_or("-"),
                            rfc3339(s.created_at),
                            rfc3339(last),
                            s.ip.as_deref().unwrap_or("-"),
                            s.user_agent.as_deref().unwrap_or("-")
                        );
                        say(json, line, text)?;
                    }
                }
                SessionCommand::Revoke { id } => {
                    let id = tessera_domain::SessionId(id);
                    match core.store.session(id, None).await? {
                        Some(s) if !s.is_revoked() => {
                            core.state.service.revoke_session(id, s.user_id, "revoked_by_admin", now).await.map_err(domain)?;
                            say(json, serde_json::json!({"id": id.0, "revoked": true}), format_args!("session {} ended", id.0))?;
                        }
                        _ => return Err(not_found(format!("--id: no live session {}", id.0))),
                    }
                }
            }
            Ok(())
        }
        Command::Key(cmd) => {
            let core = Core::build(settings, true, false).await?;
            let now = OffsetDateTime::now_utc();
            match cmd {
                KeyCommand::List => {
                    for k in core.keys.list().await? {
                        let line = serde_json::json!({"kid": k.kid, "alg": k.alg, "state": k.state.as_str(),
                            "created_at": rfc3339(k.created_at), "activated_at": k.activated_at.map(rfc3339), "retired_at": k.retired_at.map(rfc3339)});
                        let when = |t: Option<OffsetDateTime>| t.map(rfc3339).unwrap_or_else(|| "-".into());
                        let text = format!(
                            "{}  {:<6} {:<8} created {}  activated {}  retired {}",
                            k.kid,
                            k.alg,
                            k.state.as_str(),
                            rfc3339(k.created_at),
                            when(k.activated_at),
                            when(k.retired_at)
                        );
                        say(json, line, text)?;
                    }
                }
                KeyCommand::Rotate { alg, now: at_once } => {
                    let name = alg.unwrap_or_else(|| core.settings.tokens.algorithm.clone());
                    let alg = tessera_domain::Algorithm::parse(&name).ok_or_else(|| usage(format!("--alg: unknown algorithm {name:?}")))?;
                    let kid = core.keys.rotate(alg, at_once, now).await?;
                    let v = serde_json::json!({"kid": kid, "alg": alg.as_str(), "state": if at_once { "active" } else { "next" }});
                    if at_once {
                        say(json, v, format_args!("key {kid} ({}) signs from now on", alg.as_str()))?;
                    } else {
                        say(
                            json,
                            v,
                            format_args!(
                                "key {kid} ({}) is published; the schedule activates it after tokens.jwks_max_age_seconds",
                                alg.as_str()
                            ),
                        )?;
                    }
                }
                KeyCommand::Retire { kid } => {
                    if !core.keys.retire(&kid, now).await? {
                        return Err(not_found(format!("no key {kid:?}")));
                    }
                    say(json, serde_json::json!({"kid": kid, "state": "retired"}), format_args!("key {kid} retired"))?;
                }
                KeyCommand::Revoke { kid } => {
                    if !core.keys.revoke(&kid, now).await? {
                        return Err(not_found(format!("no key {kid:?}")));
                    }
                    say(
                        json,
                        serde_json::json!({"kid": kid, "state": "revoked"}),
                        format_args!("key {kid} revoked: its tokens are refused"),
                    )?;
                }
            }
            Ok(())
        }
        Command::Audit(cmd) => {
            let core = Core::build(settings, true, false).await?;
            let service = &core.state.service;
            match cmd {
                AuditCommand::List { user, since, limit } => {
                    let user = match user {
                        Some(u) => Some(match u.parse::<i64>() {
                            Ok(id) => tessera_domain::UserId(id),
                            Err(_) => find_user(&core, &u).await?,
                        }),
                        None => None,
                    };
                    let since = since.as_deref().map(parse_since).transpose()?;
                    service.seal_audit().await.map_err(domain)?;
                    for e in service.audit_events(user, since, limit).await.map_err(domain)? {
                        let user = e.user_id.map(|u| u.to_string()).unwrap_or_else(|| "-".into());
                        let session = e.session_id.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
                        let text = format!("{}  {:<16} user {user:<6} session {session}  {}", rfc3339(e.at), e.kind, e.detail);
                        say(json, serde_json::to_value(&e)?, text)?;
                    }
                    Ok(())
                }
                AuditCommand::Verify { head } => {
                    let kept = match head.as_deref().map(|h| service.open_audit_head(h)).transpose() {
                        Ok(kept) => kept,
                        Err(e @ tessera_domain::audit::HeadError::Malformed) => return Err(usage(format!("--head: {e}"))),
                        Err(e) => return Err(Failure::CheckFailed(format!("--head: {e}")).into()),
                    };
                    let verdict = service.verify_audit_against(kept.as_ref()).await.map_err(domain)?;
                    let text = match &kept {
                        Some(k) => {
                            format!("audit trail intact: {} events checked; it holds the kept head (event #{})", verdict.checked, k.seq)
                        }
                        None => format!("audit trail intact: {} events checked", verdict.checked),
                    };
                    match &verdict.broken {
                        None => {
                            say(json, serde_json::to_value(&verdict)?, text)?;
                            Ok(())
                        }
                        Some(b) => {
                            if json {
                                outln!("{}", serde_json::to_string(&verdict)?)?;
                            }
                            Err(broken_chain(b))
                        }
                    }
                }
                AuditCommand::Head => match service.audit_head().await.map_err(domain)? {
                    Ok(head) => {
                        say(json, head.json(), &head)?;
                        Ok(())
                    }
                    Err(b) => Err(broken_chain(&b)),
                },
            }
        }
        Command::Import(ImportCommand::Django { from, face, on_conflict }) => {
            let core = Core::build(settings, true, false).await?;
            let summary = crate::import::django(&core, &from, &face, on_conflict, OffsetDateTime::now_utc()).await?;
            say(json, serde_json::to_value(&summary)?, &summary)?;
            Ok(())
        }
        Command::Import(ImportCommand::Flask { from, on_conflict }) => {
            let core = Core::build(settings, true, false).await?;
            let summary = crate::import::flask(&core, &from, on_conflict, OffsetDateTime::now_utc()).await?;
            say(json, serde_json::to_value(&summary)?, &summary)?;
            Ok(())
        }
        Command::Client(cmd) => {
            let core = Core::build(settings, true, false).await?;
            let now = OffsetDateTime::now_utc();
            let check_profile = |profile: &str| {
                if core.state.profile(profile).is_none() {
                    return Err(usage(format!("--profile: no profile named {profile:?} (standard, extended or one under [profiles])")));
                }
                Ok(())
            };
            match cmd {
                ClientCommand::Create { client_id, name, confidential, profile, scopes, audiences, require_dpop, exchange } => {
                    check_profile(&profile)?;
                    let id = ClientId::parse(&client_id).map_err(|e| usage(format!("--client-id: {e}")))?;
                    let (scopes, audiences) = client_grants(&id, confidential, scopes, audiences)?;
                    let exchange_types = exchange_types(confidential, &audiences, exchange)?;
                    let secret = if confidential { Some(new_secret()?) } else { None };
                    let client = OAuthClient {
                        client_id: id,
                        name: if name.is_empty() { client_id.clone() } else { name },
                        secret_hash: secret.as_ref().map(|s| core.state.service.secret_hash(s.as_bytes())),
                        profile,
                        created_at: now,
                        scopes,
                        audiences,
                        require_dpop,
                        exchange_types,
                    };
                    core.store.create_client(&client).await.map_err(|e| match e {
                        tessera_domain::RepoError::Conflict(_) => {
                            Failure::Conflict(format!("--client-id: a client {client_id:?} exists already")).into()
                        }
                        other => anyhow::Error::from(other),
                    })?;
                    let detail = serde_json::json!({"client_id": client_id, "confidential": confidential, "profile": client.profile,
                        "scopes": client.scopes, "audiences": client.audiences});
                    core.state.service.audit("client_created", None, detail, now).await;
                    print_client_secret(json, &client, secret.as_deref())?;
                }
                ClientCommand::List => {
                    for c in core.store.list_clients().await? {
                        let kind = if c.is_confidential() { "confidential" } else { "public" };
                        say(
                            json,
                            client_json(&c),
                            format_args!("{:<24} {kind:<12} {:<10} {}  {}", c.client_id.as_str(), c.profile, rfc3339(c.created_at), c.name),
                        )?;
                    }
                }
                ClientCommand::Show { client_id } => {
                    let c = find_client(&core, &client_id).await?;
                    let kind = if c.is_confidential() { "confidential" } else { "public" };
                    say(
                        json,
                        client_json(&c),
                        format_args!(
                            "client_id {}\nname {}\nkind {kind}\nprofile {}\ncreated {}{}",
                            c.client_id.as_str(),
                            c.name,
                            c.profile,
                            rfc3339(c.created_at),
                            // the client_credentials grant's, when it may use it
                            if c.audiences.is_empty() {
                                String::new()
                            } else {
                                format!("\nscopes {}\naudiences {}", c.scopes.join(" "), c.audiences.join(" "))
                            }
                        ),
                    )?;
                }
                ClientCommand::RotateSecret { client_id } => {
                    let mut c = find_client(&core, &client_id).await?;
                    let secret = new_secret()?;
                    c.secret_hash = Some(core.state.service.secret_hash(secret.as_bytes()));
                    if !core.store.update_client(&c).await? {
                        return Err(not_found(format!("--client-id: no client {client_id:?}")));
                    }
                    core.state.service.audit("client_secret_rotated", None, serde_json::json!({"client_id": client_id}), now).await;
                    print_client_secret(json, &c, Some(&secret))?;
                }
                ClientCommand::SetProfile { client_id, profile } => {
                    check_profile(&profile)?;
                    let mut c = find_client(&core, &client_id).await?;
                    c.profile = profile;
                    if !core.store.update_client(&c).await? {
                        return Err(not_found(format!("--client-id: no client {client_id:?}")));
                    }
                    core.state
                        .service
                        .audit("client_changed", None, serde_json::json!({"client_id": client_id, "profile": c.profile}), now)
                        .await;
                    say(json, client_json(&c), format_args!("client {client_id}: new sessions get the {} profile", c.profile))?;
                }
                ClientCommand::Delete { client_id, yes } => {
                    if !yes {
                        return Err(usage(format!("deleting client {client_id} cannot be undone: add --yes")));
                    }
                    let ended = core.state.service.delete_client(&client_id, now).await.map_err(domain)?;
                    say(
                        json,
                        serde_json::json!({"client_id": client_id, "deleted": true, "sessions_ended": ended}),
                        format_args!("deleted client {client_id}; {ended} session(s) ended"),
                    )?;
                }
            }
            Ok(())
        }
    }
}

fn new_secret() -> anyhow::Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(tessera_domain::secret::random_bytes::<32>()?))
}

/// The secret is the command's output, shown once.
fn print_client_secret(json: bool, client: &OAuthClient, secret: Option<&str>) -> anyhow::Result<()> {
    if json {
        let mut v = client_json(client);
        v["client_secret"] = serde_json::json!(secret);
        return outln!("{v}");
    }
    outln!("client_id: {}", client.client_id.as_str())?;
    if let Some(s) = secret {
        outln!("client_secret: {s}")?;
        outln!("(shown once: Tessera stores only its hash)")?;
    }
    Ok(())
}

async fn conformance(args: ConformanceArgs, json: bool) -> anyhow::Result<()> {
    let password = match args.password {
        Some(p) => p,
        None => read_password()?,
    };
    let hs256_secret = match &args.hs256_secret_file {
        Some(path) => {
            let raw = std::fs::read(path).with_context(|| format!("--hs256-secret-file: reading {}", path.display()))?;
            Some(raw.strip_suffix(b"\n").map(<[u8]>::to_vec).unwrap_or(raw))
        }
        None => None,
    };
    let opts = crate::conformance::Options {
        dialect: args.dialect,
        era: args.era,
        routes: args.routes,
        base_url: args.base_url,
        user: args.user,
        password,
        username_field: args.username_field,
        hs256_secret,
    };
    let report = crate::conformance::run(&opts).await?;
    if json {
        for r in &report.results {
            outln!("{}", serde_json::to_string(r)?)?;
        }
        for n in &report.notes {
            outln!("{}", serde_json::json!({"note": n}))?;
        }
    } else {
        write_out(format_args!("{}", crate::conformance::render(&report)))?;
    }
    let (_, failed, _) = crate::conformance::tally(&report.results);
    if failed > 0 {
        return Err(Failure::CheckFailed(format!("{failed} case(s) differ from the original")).into());
    }
    Ok(())
}

async fn find(core: &Core, email: &str) -> anyhow::Result<tessera_domain::User> {
    let email = Email::parse(email).map_err(|e| usage(format!("--email: {e}")))?;
    core.store.user_by_email(&email).await?.ok_or_else(|| not_found(format!("--email: no user {email}")))
}

async fn find_user(core: &Core, email: &str) -> anyhow::Result<tessera_domain::UserId> {
    Ok(find(core, email).await?.id)
}

async fn find_client(core: &Core, client_id: &str) -> anyhow::Result<OAuthClient> {
    core.store.client_by_id(client_id).await?.ok_or_else(|| not_found(format!("--client-id: no client {client_id:?}")))
}

/// `--since`: an RFC 3339 time, or an age such as `24h` or `7d`.
fn parse_since(raw: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let age =
        humantime::parse_duration(raw).map_err(|_| usage(format!("--since: {raw:?} is neither an RFC 3339 time nor an age like 24h")))?;
    Ok(OffsetDateTime::now_utc() - age)
}

/// The first line of standard input; the prompt only when a person types it.
fn read_password() -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("password: ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
