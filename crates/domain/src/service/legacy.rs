//! Legacy tokens of the deployment Tessera replaced: adopting them into sessions, their
//! users, and the imported blacklist.

use super::*;

impl TokenService {
    /// The user a legacy token of `origin` speaks for: a user imported from that deployment
    /// with that id, once its import has finished, and active. A user registered here, one of
    /// another deployment, one the import did not carry over (or has not yet), and a deleted one
    /// never answer to it; a blocked one is refused as blocked. Read from the store at every
    /// use, so a block or deletion by any process counts at once.
    pub async fn legacy_user(&self, origin: &'static str, id: UserId) -> Result<User, DomainError> {
        let finished = self.imports_finished.lock().map(|s| s.contains(origin)).unwrap_or(false);
        if !finished {
            if !self.store.import_finished(origin).await? {
                return Err(AuthError::UnknownUser.into());
            }
            if let Ok(mut s) = self.imports_finished.lock() {
                s.insert(origin);
            }
        }
        let user = self.store.user_from(origin, id).await?.ok_or(AuthError::UnknownUser)?;
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        Ok(user)
    }

    /// Makes a legacy refresh token a Tessera one at its first use: a session of the face for
    /// its user, whose first refresh record is the token (its `jti` is the secret, stored only
    /// as its keyed hash), living until the token's own `exp` but no longer than the longest a
    /// session may live from the token's `iat`. From then on the token is like any other: used
    /// once under `rotate` (a second use is reuse), revocable, blocked with its user. Adopting
    /// again finds the record; two instances adopting at once meet on its unique hash. An
    /// imported blacklist entry is such a record, already revoked.
    pub(super) async fn adopt_legacy(&self, face: &Face, token: &LegacyToken, now: OffsetDateTime) -> Result<RefreshSecret, DomainError> {
        // imported users keep their ids: the token's user names the route its session is on
        let route = token.user_id.route();
        let secret = token.refresh_secret().ok_or(AuthError::TokenInvalid)?.on_route(route);
        let hash = self.secret_hash(secret.as_bytes());
        if self.store.refresh_by_hash(hash, Some(route)).await?.is_some() {
            return Ok(secret);
        }
        let user = self.legacy_user(token.origin, token.user_id).await?;
        let (session, record) = self.legacy_session(face, &user, token, hash, None);
        if record.expires_at <= now {
            return Err(AuthError::TokenExpired.into());
        }
        match self.store.open_session(&session, &record).await {
            Ok(()) => tracing::info!(session_id = %session.id, user_id = %user.id, "legacy refresh token adopted"),
            // Adopted by another request in the meantime.
            Err(crate::RepoError::Conflict(_)) => {
                self.store.refresh_by_hash(hash, Some(route)).await?.ok_or(AuthError::TokenInvalid)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(secret)
    }

    /// Carries a refresh token the original deployment had blacklisted over as a revoked
    /// session, so that presenting it is refused as revocation and as reuse. Never fatal for a
    /// row it cannot read: that is reported as [`BlacklistImport::Unreadable`].
    pub async fn import_blacklisted(
        &self,
        face: &Face,
        raw: &str,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<BlacklistImport, DomainError> {
        let token = match face.format.read_legacy(raw, TokenKind::Refresh, now) {
            None => return Ok(BlacklistImport::Unreadable("not a token of the face's legacy secret (not a JWT, or it names a key)")),
            Some(Err(AuthError::TokenExpired)) => return Ok(BlacklistImport::Dropped),
            Some(Err(AuthError::WrongTokenType)) => return Ok(BlacklistImport::Unreadable("not a refresh token")),
            Some(Err(_)) => {
                return Ok(BlacklistImport::Unreadable("its signature does not verify with the face's legacy secret (an older secret?)"));
            }
            Some(Ok(t)) => t,
        };
        // imported users keep their ids: the token's user names the route its session is on
        let route = token.user_id.route();
        let secret = token.refresh_secret().ok_or(AuthError::TokenInvalid)?.on_route(route);
        let hash = self.secret_hash(secret.as_bytes());
        if let Some((_, session)) = self.store.refresh_by_hash(hash, Some(route)).await? {
            // Adopted before the import: it ends now.
            if !session.is_revoked() {
                self.revoke_session(session.id, session.user_id, "blacklisted before the migration", now).await?;
            }
            return Ok(BlacklistImport::Imported);
        }
        let Some(user) = self.store.user_from(token.origin, token.user_id).await? else { return Ok(BlacklistImport::Dropped) };
        let (session, record) = self.legacy_session(face, &user, &token, hash, Some(at));
        match self.store.open_session(&session, &record).await {
            // a session opens live: it is revoked in a write of its own
            Ok(()) => self.revoke_session(session.id, session.user_id, "blacklisted before the migration", now).await?,
            // imported by a run that stopped part-way, or adopted by a server meanwhile: revoked
            // all the same
            Err(crate::RepoError::Conflict(_)) => {
                if let Some((_, s)) = self.store.refresh_by_hash(hash, Some(route)).await?
                    && !s.is_revoked()
                {
                    self.revoke_session(s.id, s.user_id, "blacklisted before the migration", now).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(BlacklistImport::Imported)
    }

    /// The longest a legacy token's session lives: `max_session_lifetime` from its `iat`, or its
    /// own `exp` when that sum is past the end of time (`iat` is the token's, up to the year 9999:
    /// the sum panicked, shown with the `tokens` fuzz target).
    pub(super) fn legacy_cap(&self, token: &LegacyToken) -> OffsetDateTime {
        token.issued_at.checked_add(self.settings.max_session_lifetime).unwrap_or(token.expires_at)
    }

    /// The session and first record a legacy refresh token becomes; `revoked`: an imported
    /// blacklist entry. The session lives no longer than `max_session_lifetime` from the token's
    /// `iat`, whatever its `exp` says.
    pub(super) fn legacy_session(
        &self,
        face: &Face,
        user: &User,
        token: &LegacyToken,
        hash: TokenHash,
        revoked: Option<OffsetDateTime>,
    ) -> (Session, RefreshRecord) {
        let cap = self.legacy_cap(token);
        let session = Session {
            id: SessionId(Uuid::now_v7()),
            user_id: user.id,
            client_id: None,
            face: face.name.clone(),
            profile: face.profile.clone(),
            created_at: token.issued_at,
            expires_at: cap,
            last_refresh_at: None,
            ip: None,
            user_agent: None,
            revoked_at: revoked,
            revoked_reason: revoked.map(|_| "blacklisted before the migration".to_owned()),
            subject: None,
            dpop_jkt: None,
        };
        let record = RefreshRecord {
            hash,
            session_id: session.id,
            parent: None,
            access_jti: Uuid::new_v4(),
            issued_at: token.issued_at,
            expires_at: token.expires_at.min(cap),
            rotated_at: None,
            sealed_secret: None,
            sealed_pair: None,
        };
        (session, record)
    }
}
