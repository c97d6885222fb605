//! Revocation: one token, one session, every session of a user or a client, by identity.

use super::*;

impl TokenService {
    /// Logout with a refresh token (simplejwt's blacklist, flask's logout): the token must be
    /// live at this face; its session ends.
    pub async fn logout_refresh(&self, face: &Face, presented: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        let (_, session, _) = self.check_refresh(face, presented, now).await?;
        self.revoke_session(session.id, session.user_id, "logout", now).await
    }

    /// Revokes the session a refresh token of the face belongs to. Unknown tokens, tokens of
    /// another client and of another audience are not an error (RFC 7009): the answer is the
    /// same whether or not the token existed, and nothing changes.
    #[tracing::instrument(skip_all, fields(api = %face.name))]
    pub async fn revoke_refresh(&self, face: &Face, presented: &str, client: Option<&str>, now: OffsetDateTime) -> Result<(), DomainError> {
        let Ok(secret) = self.presented_refresh(face, presented, now).await else { return Ok(()) };
        let hash = self.secret_hash(secret.as_bytes());
        if let Some((_, session)) = self.find_refresh(&secret, hash, now).await?
            && self.faces.peers_of(face).contains(&session.face)
            && (client.is_none() || session.client_id.as_deref() == client)
        {
            self.revoke_session(session.id, session.user_id, "revoked", now).await?;
        }
        Ok(())
    }

    /// RFC 7009 at a face: a refresh token ends its session, and so does an access token of
    /// the face. Tokens of other clients or faces, unknown tokens and garbage change nothing
    /// and are not an error: the answer must not tell them apart.
    pub async fn revoke_token(&self, face: &Face, raw: &str, client_id: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        if let Ok(ctx) = self.resolve_access(face, raw, now) {
            if ctx.client_id.as_deref() == Some(client_id) {
                self.revoke_session(ctx.session_id, ctx.user_id, "revoked", now).await?;
            }
            return Ok(());
        }
        self.revoke_refresh(face, raw, Some(client_id), now).await
    }

    #[tracing::instrument(skip_all, fields(session_id = %id))]
    pub async fn revoke_session(&self, id: SessionId, user: UserId, reason: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        if self.store.revoke_session(id, user.route(), reason, now).await? {
            tracing::info!(reason, "session revoked");
            self.emit(Event::Revoked { reason, sessions: 1 });
        }
        self.revocations.note_revoked(id, now);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn revoke_all(
        &self,
        user: UserId,
        except: Option<SessionId>,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<usize, DomainError> {
        let ids = self.store.revoke_user_sessions(user, except, reason, now).await?;
        self.note_revoked_all(&ids, reason, now);
        tracing::info!(count = ids.len(), reason, "sessions revoked");
        Ok(ids.len())
    }

    /// Every session of the user an external identity is linked to (Medods' `/deleteall`); none
    /// when the identity is unknown.
    pub async fn revoke_identity(&self, provider: &str, subject: &str, reason: &str, now: OffsetDateTime) -> Result<usize, DomainError> {
        match self.store.user_by_identity(provider, subject).await? {
            Some(u) => self.revoke_all(u.id, None, reason, now).await,
            None => Ok(0),
        }
    }

    /// drf-social-oauth2's `invalidate-sessions`: every session of the user with that client.
    pub async fn revoke_client_sessions(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<usize, DomainError> {
        let ids = self.store.revoke_client_sessions(user, client_id, "invalidate_sessions", now).await?;
        for id in &ids {
            self.revocations.note_revoked(*id, now);
        }
        Ok(ids.len())
    }

    /// drf-social-oauth2's `invalidate-refresh-tokens`: the refresh tokens only.
    pub async fn expire_client_refresh_tokens(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<u64, DomainError> {
        let n = self.store.expire_client_refresh_tokens(user, client_id, now).await?;
        // no revocation: what this instance keeps of refresh tokens goes (other instances drop
        // theirs within a minute, see `MEMO_FRESH`)
        self.refresh_memo.clear();
        Ok(n)
    }

    /// Sessions the store has just revoked: refused at once by this instance (the others hear
    /// of it from the store), and counted.
    pub(super) fn note_revoked_all(&self, ids: &[SessionId], reason: &str, now: OffsetDateTime) {
        if !ids.is_empty() {
            self.emit(Event::Revoked { reason, sessions: ids.len() as u64 });
        }
        for id in ids {
            self.revocations.note_revoked(*id, now);
        }
    }
}
