//! `tessera import`: users and revoked tokens carried over from the deployment Tessera replaces.
//!
//! What an import guarantees, so that a legacy token never speaks for the wrong person:
//! - every user comes over with the id the old tokens carry, and is recorded as coming from
//!   that deployment (`users.origin`); a legacy token is honoured only for such a user;
//! - an id or e-mail that is taken here is a conflict, reported, never skipped silently:
//!   `--on-conflict stop` (the default) writes no user when there is one, `skip` imports the
//!   others and lists them;
//! - the id sequence moves past every id the old deployment gave out before the import reports
//!   success, so no later registration is handed an id an old token names;
//! - the deployment's legacy tokens are honoured only once an import of it has finished; one
//!   that stops part-way can be run again, and carries on where it stopped.

use std::collections::HashSet;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tessera_domain::{
    BlacklistImport, Email, ORIGIN_DJANGO, ORIGIN_FLASK, OffsetDateTime, PasswordHash, RepoError, User, UserId, UserStatus,
};

use crate::output::Failure;
use tessera_server::startup::Core;

/// What to do when a user of the old deployment collides with one here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflict {
    /// Import nothing, list the conflicts, exit 5.
    #[default]
    Stop,
    /// Import every other user and list the conflicts; their legacy tokens are refused.
    Skip,
}

/// What an import did; every count is of rows of the original deployment.
#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    /// The deployment (`django`, `flask`).
    pub origin: &'static str,
    pub users_imported: usize,
    /// Already here from this deployment: an import run again.
    pub users_present: usize,
    /// Users whose id or e-mail another user here has: not imported, their legacy tokens refused.
    pub conflicts: Vec<Skipped>,
    /// Not imported, with the reason (an e-mail Tessera refuses, a hash it cannot check).
    pub users_skipped: Vec<Skipped>,
    /// Users imported without a usable password (Django's `!…`): they log in another way.
    pub users_without_password: usize,
    /// Ids given out from now on are above this one.
    pub ids_reserved_up_to: i64,
    pub blacklisted_imported: usize,
    /// Expired already, or of a user who did not come over: nothing to carry over.
    pub blacklisted_dropped: usize,
    /// Blacklist rows that are not tokens of the configured legacy secret (one signed with an
    /// older secret, say): reported and skipped, since such a token is refused anyway.
    pub blacklisted_unreadable: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub id: i64,
    pub reason: String,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "users imported: {} (without a usable password: {})", self.users_imported, self.users_without_password)?;
        writeln!(f, "users already present: {}", self.users_present)?;
        writeln!(f, "conflicts (not imported, their old tokens refused): {}", self.conflicts.len())?;
        for s in &self.conflicts {
            writeln!(f, "  user {}: {}", s.id, s.reason)?;
        }
        writeln!(f, "users skipped: {}", self.users_skipped.len())?;
        for s in &self.users_skipped {
            writeln!(f, "  user {}: {}", s.id, s.reason)?;
        }
        write!(f, "new user ids start above: {}", self.ids_reserved_up_to)?;
        if self.origin == ORIGIN_FLASK {
            // flask-jwt-extended keeps no blacklist of its own to carry over
            return Ok(());
        }
        writeln!(f)?;
        writeln!(f, "blacklisted refresh tokens imported: {}", self.blacklisted_imported)?;
        writeln!(f, "blacklisted refresh tokens dropped (expired, or their user is not here): {}", self.blacklisted_dropped)?;
        write!(f, "blacklisted refresh tokens unreadable (skipped): {}", self.blacklisted_unreadable.len())?;
        for s in &self.blacklisted_unreadable {
            write!(f, "\n  row {}: {}", s.id, s.reason)?;
        }
        Ok(())
    }
}

/// A user of the old deployment, as an import carries it over.
struct Incoming {
    user: User,
    usable: bool,
}

/// Imports a Django deployment's users, ids and hashes kept, and simplejwt's blacklist as revoked
/// sessions of `face`. Safe to run again: a second run imports nothing new, and a run that
/// stopped part-way carries on.
pub async fn django(core: &Core, url: &str, face: &str, on_conflict: OnConflict, now: OffsetDateTime) -> anyhow::Result<ImportSummary> {
    let export = tessera_storage::django::read(url).await.context("reading the Django database")?;
    // the face is checked before anything is written
    let face =
        if export.blacklisted.is_empty() { None } else { Some(core.state.service.face(face).map_err(|e| anyhow::anyhow!("--api: {e}"))?) };
    let mut summary = ImportSummary { origin: ORIGIN_DJANGO, ..ImportSummary::default() };
    let mut incoming = vec![];
    for u in &export.users {
        // Django's `email` may be blank; the username is often the address then.
        let address = if u.email.trim().is_empty() { u.username.as_str() } else { u.email.as_str() };
        let Some(email) = Email::parse(address).ok().filter(|e| !e.is_reserved()) else {
            summary.users_skipped.push(Skipped { id: u.id, reason: format!("{address:?} is not an e-mail address Tessera accepts") });
            continue;
        };
        let usable = !u.password.is_empty() && !u.password.starts_with('!');
        let user = User {
            id: UserId(u.id),
            email,
            password_hash: usable.then(|| PasswordHash::from_phc(u.password.clone())),
            status: if u.is_active { UserStatus::Active } else { UserStatus::Blocked },
            created_at: u.date_joined,
            password_changed_at: None,
        };
        incoming.push(Incoming { user, usable });
    }
    import_users(core, ORIGIN_DJANGO, incoming, export.highest_id_given, on_conflict, &mut summary, now).await?;
    if let Some(face) = face {
        for (row, b) in export.blacklisted.iter().enumerate() {
            match core.state.service.import_blacklisted(&face, &b.token, b.blacklisted_at, now).await? {
                BlacklistImport::Imported => summary.blacklisted_imported += 1,
                BlacklistImport::Dropped => summary.blacklisted_dropped += 1,
                BlacklistImport::Unreadable(why) => {
                    tracing::warn!(row = row + 1, reason = why, "a blacklisted token of the Django deployment cannot be read; skipped");
                    summary.blacklisted_unreadable.push(Skipped { id: row as i64 + 1, reason: why.to_owned() });
                }
            }
        }
    }
    finish(core, &summary, now).await?;
    Ok(summary)
}

/// One line of a flask deployment's user file (JSON Lines): what `tessera import flask` reads.
/// A line `{"highest_id": N}` names the highest id the deployment ever gave out, when deleted
/// users' ids run above every listed one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlaskLine {
    /// The identity the deployment's tokens carry (`sub`, or `identity` before 4.0): an integer.
    id: i64,
    email: String,
    /// Werkzeug's `pbkdf2:sha256:…`/`scrypt:…`, a Django format, or an Argon2 PHC string;
    /// `null` for a user without a password.
    password_hash: Option<String>,
    #[serde(default = "active")]
    active: bool,
}

fn active() -> bool {
    true
}

/// Imports a flask-jwt-extended deployment's users from a JSON Lines file (see [`FlaskLine`]):
/// ids and hashes kept, so its users log in with their old passwords and its live tokens keep
/// working for them alone. Safe to run again.
pub async fn flask(core: &Core, path: &std::path::Path, on_conflict: OnConflict, now: OffsetDateTime) -> anyhow::Result<ImportSummary> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut summary = ImportSummary { origin: ORIGIN_FLASK, ..ImportSummary::default() };
    let (mut incoming, mut highest, mut seen) = (vec![], 0i64, HashSet::new());
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |why: String| Failure::Usage(format!("{} line {}: {why}", path.display(), n + 1));
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        if let Some(h) = v.get("highest_id").filter(|_| v.as_object().is_some_and(|o| o.len() == 1)) {
            highest = highest.max(h.as_i64().ok_or_else(|| bad("highest_id must be an integer".into()))?);
            continue;
        }
        let l: FlaskLine = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        if l.id < 1 {
            return Err(bad(format!("id {} must be a positive integer", l.id)).into());
        }
        if !seen.insert(l.id) {
            return Err(bad(format!("id {} appears twice", l.id)).into());
        }
        highest = highest.max(l.id);
        let Some(email) = Email::parse(&l.email).ok().filter(|e| !e.is_reserved()) else {
            summary.users_skipped.push(Skipped { id: l.id, reason: format!("{:?} is not an e-mail address Tessera accepts", l.email) });
            continue;
        };
        let hash = l.password_hash.filter(|h| !h.is_empty()).map(PasswordHash::from_phc);
        if hash.as_ref().is_some_and(|h| !h.is_verifiable()) {
            let reason = "its password hash is in no format Tessera checks (Werkzeug pbkdf2:sha256/scrypt, Django's, Argon2)";
            summary.users_skipped.push(Skipped { id: l.id, reason: reason.into() });
            continue;
        }
        let usable = hash.is_some();
        let user = User {
            id: UserId(l.id),
            email,
            password_hash: hash,
            status: if l.active { UserStatus::Active } else { UserStatus::Blocked },
            created_at: now,
            password_changed_at: None,
        };
        incoming.push(Incoming { user, usable });
    }
    import_users(core, ORIGIN_FLASK, incoming, highest, on_conflict, &mut summary, now).await?;
    finish(core, &summary, now).await?;
    Ok(summary)
}

/// The users of one deployment: conflicts found first (with `stop`, none is written when there
/// is one), then each user written, then the id sequence moved past `highest`.
async fn import_users(
    core: &Core,
    origin: &'static str,
    incoming: Vec<Incoming>,
    highest: i64,
    on_conflict: OnConflict,
    summary: &mut ImportSummary,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let store = &core.store;
    store.start_import(origin, now).await?;
    let mut clear = vec![];
    for i in incoming {
        match conflict(core, origin, &i.user).await? {
            Some(reason) => summary.conflicts.push(Skipped { id: i.user.id.0, reason }),
            None => clear.push(i),
        }
    }
    if !summary.conflicts.is_empty() && on_conflict == OnConflict::Stop {
        return Err(conflicts_failure(summary));
    }
    for i in clear {
        match store.import_user(&i.user, origin).await {
            Ok(true) => {
                summary.users_imported += 1;
                summary.users_without_password += usize::from(!i.usable);
            }
            Ok(false) => summary.users_present += 1,
            // taken in the meantime, or by another user of the same deployment (two with one
            // e-mail)
            Err(RepoError::Conflict(what)) => {
                let reason = if what == "users_email_key" {
                    format!("another user has the e-mail {}", i.user.email)
                } else {
                    format!("the id {} belongs to another user here", i.user.id.0)
                };
                summary.conflicts.push(Skipped { id: i.user.id.0, reason });
                if on_conflict == OnConflict::Stop {
                    return Err(conflicts_failure(summary));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    store.reserve_user_ids(highest).await?;
    summary.ids_reserved_up_to = highest;
    Ok(())
}

/// Why `user` cannot come over: its id or its e-mail belongs to someone else here.
async fn conflict(core: &Core, origin: &str, user: &User) -> anyhow::Result<Option<String>> {
    if let Some(here) = core.store.user_by_id(user.id).await? {
        let ours = core.store.user_from(origin, user.id).await?.is_some();
        if !ours {
            return Ok(Some(format!("the id {} belongs to another user here ({})", user.id.0, here.email)));
        }
        if here.email.normalized() != user.email.normalized() {
            return Ok(Some(format!("imported before as {}, now {}", here.email, user.email)));
        }
        return Ok(None);
    }
    if let Some(other) = core.store.user_by_email(&user.email).await? {
        return Ok(Some(format!("another user (id {}) has the e-mail {}", other.id.0, user.email)));
    }
    Ok(None)
}

fn conflicts_failure(summary: &ImportSummary) -> anyhow::Error {
    let list: Vec<String> = summary.conflicts.iter().map(|c| format!("  user {}: {}", c.id, c.reason)).collect();
    Failure::Conflict(format!(
        "{} user(s) of the {} deployment collide with users here; nothing more was imported, and no legacy token of it is \
         honoured yet:\n{}\nResolve them, or run again with --on-conflict skip to import the others (the colliding users' \
         old tokens are then refused).",
        summary.conflicts.len(),
        summary.origin,
        list.join("\n")
    ))
    .into()
}

/// Marks the import finished, from when the deployment's legacy tokens are honoured, and audits it.
async fn finish(core: &Core, summary: &ImportSummary, now: OffsetDateTime) -> anyhow::Result<()> {
    core.store.finish_import(summary.origin, now).await?;
    let detail = serde_json::to_value(summary).unwrap_or_default();
    let kind = if summary.origin == ORIGIN_FLASK { "imported_from_flask" } else { "imported_from_django" };
    core.state.service.audit(kind, None, detail, now).await;
    tracing::info!(origin = summary.origin, users = summary.users_imported, conflicts = summary.conflicts.len(), "import finished");
    Ok(())
}
