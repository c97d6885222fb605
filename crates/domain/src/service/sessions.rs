//! Sessions: opening one at login, listing and ending the caller's own, logging out.

use super::*;

impl TokenService {
    /// The caller's live sessions, newest first (at most 100).
    pub async fn sessions(&self, ctx: &AccessContext, now: OffsetDateTime) -> Result<Vec<Session>, DomainError> {
        Ok(self.store.sessions_of_user(ctx.user_id, now, 100).await?)
    }

    /// Ends one of the caller's sessions. Another user's session, an unknown one and one that
    /// already ended are all `NotFound`: the answer tells nothing about other users.
    pub async fn end_session(&self, ctx: &AccessContext, id: SessionId, now: OffsetDateTime) -> Result<(), DomainError> {
        match self.store.session(id, Some(ctx.user_id.route())).await? {
            Some(s) if s.user_id == ctx.user_id && !s.is_revoked() => self.revoke_session(id, s.user_id, "ended_by_user", now).await,
            _ => Err(DomainError::NotFound("session")),
        }
    }

    /// Opens a session at a face for a user already authenticated (by password, a trusted
    /// caller, or an external identity provider) and issues its first pair.
    #[tracing::instrument(skip_all, fields(user_id = %user.id, api = %face.name))]
    pub async fn open_session(
        &self,
        face: &Face,
        user: &User,
        origin: LoginOrigin<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        self.start_session(face, user, origin, now, None).await
    }

    /// [`Self::open_session`]; after a password login, `login` (account key, address) records
    /// its success in the same write.
    pub(super) async fn start_session(
        &self,
        face: &Face,
        user: &User,
        origin: LoginOrigin<'_>,
        now: OffsetDateTime,
        login: Option<(&str, &str)>,
    ) -> Result<IssuedPair, DomainError> {
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        let client_id = origin.client_id;
        let profile = origin.profile.unwrap_or(&face.profile);
        let session = Session {
            id: SessionId(Uuid::now_v7()),
            user_id: user.id,
            client_id: origin.client_id.map(str::to_owned),
            face: face.name.clone(),
            profile: profile.clone(),
            created_at: now,
            expires_at: now + self.settings.max_session_lifetime.max(profile.refresh_ttl()),
            last_refresh_at: None,
            ip: origin.request.ip,
            user_agent: origin.request.user_agent,
            revoked_at: None,
            revoked_reason: None,
            subject: origin.subject,
            dpop_jkt: origin.dpop_jkt,
        };
        let secret = RefreshSecret::generate_routed(face.format.secret_len(), user.id.route())?;
        let fresh = self.prepare_refresh(&secret)?;
        let record = RefreshRecord {
            hash: fresh.hash,
            session_id: session.id,
            parent: None,
            access_jti: fresh.access_jti,
            issued_at: now,
            expires_at: refresh_expiry(&session, now),
            rotated_at: None,
            sealed_secret: Some(fresh.sealed_secret),
            sealed_pair: None,
        };
        let opened = match login {
            Some((account, address)) => self.store.open_session_after_login(&session, &record, account, address).await,
            None => self.store.open_session(&session, &record).await,
        };
        match opened {
            // the client was deleted since it authenticated (another instance, an operator)
            Err(crate::RepoError::Conflict("sessions_client_id_fkey")) => {
                self.forget_client(client_id);
                return Err(AuthError::UnknownClient.into());
            }
            other => other?,
        }
        tracing::info!(session_id = %session.id, "session opened");
        self.pair(face, &session, &record, secret, now)
    }

    pub async fn logout(&self, ctx: &AccessContext, scope: LogoutScope, now: OffsetDateTime) -> Result<(), DomainError> {
        match scope {
            LogoutScope::Local => self.revoke_session(ctx.session_id, ctx.user_id, "logout", now).await,
            LogoutScope::Global => self.revoke_all(ctx.user_id, None, "logout_global", now).await.map(drop),
            LogoutScope::Others => self.revoke_all(ctx.user_id, Some(ctx.session_id), "logout_others", now).await.map(drop),
        }
    }
}
