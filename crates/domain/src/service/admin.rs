//! Administration: blocking, passwords set by an operator, deleting users and clients, and
//! the OAuth client checks.

use super::*;

impl TokenService {
    /// Blocks or unblocks a user; blocking revokes every session at once.
    pub async fn set_user_status(&self, user: UserId, status: UserStatus, now: OffsetDateTime) -> Result<(), DomainError> {
        self.forget_user(user);
        let ids = self.store.set_user_status(user, status, now).await?;
        self.note_revoked_all(&ids, "user blocked", now);
        Ok(())
    }

    /// An administrator sets a user's password (the policy applies); every session ends.
    /// Returns how many ended.
    pub async fn set_password(&self, user: UserId, password: String, now: OffsetDateTime) -> Result<usize, DomainError> {
        let password = self.settings.password_policy.new_password(password)?;
        let hash = self.hasher.hash(password).await?;
        if !self.store.set_password(user, &hash, now).await? {
            return Err(DomainError::NotFound("user"));
        }
        self.forget_user(user);
        let ended = self.revoke_all(user, None, "password_set_by_admin", now).await?;
        self.audit("password_set", Some(user.0), serde_json::json!({"sessions_ended": ended}), now).await;
        if let Some(n) = &self.notifier
            && let Ok(Some(u)) = self.store.user_by_id(user).await
        {
            n.password_changed(&u, true, now);
        }
        Ok(ended)
    }

    /// Deletes a user (see [`crate::ports::UserRepository::delete_user`]); every session ends.
    /// Returns how many ended.
    pub async fn delete_user(&self, user: UserId, now: OffsetDateTime) -> Result<usize, DomainError> {
        self.forget_user(user);
        let ids = self.store.delete_user(user, now).await.map_err(|e| match e {
            crate::RepoError::NotFound => DomainError::NotFound("user"),
            other => other.into(),
        })?;
        self.note_revoked_all(&ids, "user deleted", now);
        Ok(ids.len())
    }

    /// Forgets the copy of a client `authenticate_client` keeps (every copy: `None`), so that
    /// the next request reads it again: it was deleted or changed elsewhere.
    pub fn forget_client(&self, client_id: Option<&str>) {
        match client_id {
            Some(id) => {
                self.clients.remove(id);
            }
            None => self.clients.clear(),
        }
    }

    /// Deletes an OAuth client; its sessions end. Returns how many ended. The other instances
    /// forget it when the store announces it (Postgres), or when a login for it meets its absence.
    pub async fn delete_client(&self, client_id: &str, now: OffsetDateTime) -> Result<usize, DomainError> {
        self.forget_client(Some(client_id));
        let ids = self.store.delete_client(client_id, now).await.map_err(|e| match e {
            crate::RepoError::NotFound => DomainError::NotFound("client"),
            other => other.into(),
        })?;
        self.note_revoked_all(&ids, "client deleted", now);
        self.audit("client_deleted", None, serde_json::json!({"client_id": client_id, "sessions_ended": ids.len()}), now).await;
        Ok(ids.len())
    }

    /// Drops a user from the active users `current_user` keeps, after a change to the user.
    pub(super) fn forget_user(&self, user: UserId) {
        if let Ok(mut m) = self.active_users.lock() {
            m.remove(&user);
        }
    }

    /// Authenticates an OAuth client. Public clients present no secret; confidential clients
    /// must present theirs. Every failure is the same error.
    pub async fn authenticate_client(&self, client_id: &str, secret: Option<&str>) -> Result<OAuthClient, DomainError> {
        // no stored client has an id that does not parse (a NUL, which Postgres refuses, among
        // others): such an id is unknown, and is never looked up
        if ClientId::parse(client_id).is_err() {
            return Err(AuthError::InvalidCredentials.into());
        }
        let client = match self.clients.get(client_id) {
            Some((read, client)) if read.elapsed() < CLIENT_FRESH => client,
            _ => {
                let client = self.store.client_by_id(client_id).await?.ok_or(AuthError::InvalidCredentials)?;
                self.clients.insert(client_id.to_owned(), (std::time::Instant::now(), client.clone()));
                client
            }
        };
        match (&client.secret_hash, secret) {
            // a public client has nothing to present; HTTP Basic with an empty password (what
            // Swagger UI's Authorize sends for one) presents nothing either
            (None, None) => Ok(client),
            (None, Some("")) => Ok(client),
            (Some(expected), Some(given)) if self.secret_hash(given.as_bytes()).ct_eq(expected) => Ok(client),
            _ => Err(AuthError::InvalidCredentials.into()),
        }
    }

    /// Whether an OAuth client of that id exists (drf-social-oauth2 names a missing one apart).
    pub async fn client_exists(&self, client_id: &str) -> Result<bool, DomainError> {
        if ClientId::parse(client_id).is_err() {
            return Ok(false);
        }
        Ok(self.store.client_by_id(client_id).await?.is_some())
    }
}
