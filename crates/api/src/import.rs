//! `tessera import`: users and revoked tokens carried over from the deployment Tessera replaces.

use anyhow::Context;
use serde::Serialize;
use tessera_domain::{Email, OffsetDateTime, PasswordHash, RepoError, User, UserId, UserStatus};

use crate::startup::Core;

/// What an import did; every count is of rows of the original database.
#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    pub users_imported: usize,
    /// Already here with the same id: an import run again.
    pub users_present: usize,
    /// Not imported, with the reason (an e-mail Tessera refuses, or one another user has).
    pub users_skipped: Vec<Skipped>,
    /// Users imported without a usable password (Django's `!…`): they log in another way.
    pub users_without_password: usize,
    pub blacklisted_imported: usize,
    /// Expired already, or of a user who is not here: nothing to carry over.
    pub blacklisted_dropped: usize,
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
        writeln!(f, "users skipped: {}", self.users_skipped.len())?;
        for s in &self.users_skipped {
            writeln!(f, "  user {}: {}", s.id, s.reason)?;
        }
        writeln!(f, "blacklisted refresh tokens imported: {}", self.blacklisted_imported)?;
        write!(f, "blacklisted refresh tokens dropped (expired, or their user is not here): {}", self.blacklisted_dropped)
    }
}

/// Imports a Django deployment's users, ids and hashes kept, and simplejwt's blacklist as revoked
/// sessions of `face`. Idempotent: a second run imports nothing new.
pub async fn django(core: &Core, url: &str, face: &str, now: OffsetDateTime) -> anyhow::Result<ImportSummary> {
    let export = tessera_storage::django::read(url).await.context("reading the Django database")?;
    let mut summary = ImportSummary::default();
    for u in &export.users {
        // Django's `email` may be blank; the username is often the address then.
        let address = if u.email.trim().is_empty() { u.username.as_str() } else { u.email.as_str() };
        let Ok(email) = Email::parse(address) else {
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
        match core.store.import_user(&user).await {
            Ok(true) => {
                summary.users_imported += 1;
                summary.users_without_password += usize::from(!usable);
            }
            Ok(false) => summary.users_present += 1,
            Err(RepoError::Conflict(_)) => {
                summary.users_skipped.push(Skipped { id: u.id, reason: format!("another user has the e-mail {}", user.email) })
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !export.blacklisted.is_empty() {
        let face = core.state.service.face(face).map_err(|e| anyhow::anyhow!("--face: {e}"))?;
        for b in &export.blacklisted {
            let carried = core
                .state
                .service
                .import_blacklisted(&face, &b.token, b.blacklisted_at, now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}: set dialects.{}.legacy_secret to the deployment's signing key", face.name))?;
            if carried {
                summary.blacklisted_imported += 1;
            } else {
                summary.blacklisted_dropped += 1;
            }
        }
    }
    let detail = serde_json::to_value(&summary).unwrap_or_default();
    core.state.service.audit("imported_from_django", None, detail, now).await;
    tracing::info!(users = summary.users_imported, blacklisted = summary.blacklisted_imported, "imported from a Django deployment");
    Ok(summary)
}
