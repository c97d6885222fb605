//! Access tokens and introspection: accepting a presented access token (from memory), the
//! caller's user, and RFC 7662 answers for any token.

use super::*;

impl TokenService {
    /// Accepts an access token at a face: what [`Self::resolve_access`] checks, and for a
    /// legacy token its user (see [`Self::legacy_user`]). A native token's check has no I/O; a
    /// legacy token's reads its user, so that a block or deletion by any process counts at once.
    pub async fn accept_access(&self, face: &Face, token: &str, now: OffsetDateTime) -> Result<AccessContext, DomainError> {
        let ctx = self.resolve_any(face, token, now)?;
        if let Some(origin) = ctx.legacy {
            self.legacy_user(origin, ctx.user_id).await?;
        }
        Ok(ctx)
    }

    /// Accepts a Tessera access token at a face: signature and algorithm, type, times, audience
    /// (the face's own, or its group's), and a live session. A blocked user's sessions are
    /// revoked, so this covers the user too. No I/O: a signature check and an in-memory look-up.
    /// A legacy token is refused here (it fails closed): its user must be read, by
    /// [`Self::accept_access`].
    pub fn resolve_access(&self, face: &Face, token: &str, now: OffsetDateTime) -> Result<AccessContext, AuthError> {
        let ctx = self.resolve_any(face, token, now)?;
        if ctx.legacy.is_some() {
            return Err(AuthError::UnknownUser);
        }
        Ok(ctx)
    }

    /// [`Self::resolve_access`], legacy tokens read but their user not checked.
    pub(super) fn resolve_any(&self, face: &Face, token: &str, now: OffsetDateTime) -> Result<AccessContext, AuthError> {
        if let Some(legacy) = face.format.read_legacy(token, TokenKind::Access, now) {
            let t = legacy?;
            return Ok(AccessContext {
                user_id: t.user_id,
                session_id: SessionId(t.jti),
                jti: t.jti,
                client_id: None,
                expires_at: t.expires_at.unix_timestamp(),
                legacy: Some(t.origin),
                dpop_jkt: None,
            });
        }
        let view = face.format.read_access(&self.keyring, token, Some(now))?;
        if view.audience.as_deref() != Some(face.audience.as_str()) {
            return Err(AuthError::WrongAudience);
        }
        if self.revocations.is_revoked(view.session_id) {
            return Err(AuthError::TokenRevoked);
        }
        Ok(AccessContext {
            user_id: view.user_id,
            session_id: view.session_id,
            jti: view.jti,
            client_id: view.client_id,
            expires_at: view.expires_at,
            legacy: None,
            dpop_jkt: view.dpop_jkt,
        })
    }

    /// The user an accepted access token speaks for, as stored now.
    ///
    /// Active users are kept in memory once read, so `/v1/me` and its kin answer without a
    /// database read, as verify does. Staying fresh needs nothing more: a block revokes every
    /// session of the user in the same transaction, and `resolve_access` refuses a revoked
    /// session before this is reached (on every instance: the revocation list hears of it); a
    /// block made here also drops the user from memory; blocked users are never kept; nothing
    /// else a token's caller sees changes under it.
    pub async fn current_user(&self, ctx: &AccessContext) -> Result<User, DomainError> {
        // a legacy token's user is read every time: no session of it hears of a block
        if let Some(origin) = ctx.legacy {
            return self.legacy_user(origin, ctx.user_id).await;
        }
        self.active_user(ctx.user_id).await
    }

    /// An active user, from memory once read (see [`Self::current_user`] for why that is fresh
    /// enough wherever the user's session has been checked against the revocation list).
    pub(super) async fn active_user(&self, id: UserId) -> Result<User, DomainError> {
        if let Some(user) = self.active_users.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(user);
        }
        let user = self.store.user_by_id(id).await?.ok_or(AuthError::UnknownUser)?;
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        if let Ok(mut m) = self.active_users.lock() {
            if m.len() >= ACTIVE_USERS_KEPT {
                m.clear();
            }
            m.insert(user.id, user.clone());
        }
        Ok(user)
    }

    /// RFC 7662: what any face's access or refresh token is, when it is live (signature, type,
    /// times, its session not revoked, its user active); `None` for revoked, expired, unknown
    /// and malformed tokens alike. An access token is answered from memory as `/v1/me` is (its
    /// session's fixed parts are read once and kept); a refresh token as `live_refresh` says. Reads only: a legacy refresh token is not adopted by being looked at, and
    /// a legacy token is reported as what it is (its deployment, no session).
    pub async fn introspect(&self, raw: &str, now: OffsetDateTime) -> Result<Option<Introspection>, DomainError> {
        for face in self.faces.iter() {
            let Ok(ctx) = self.resolve_any(face, raw, now) else { continue };
            if let Some(origin) = ctx.legacy {
                match self.legacy_user(origin, ctx.user_id).await {
                    Ok(_) => {}
                    Err(DomainError::Auth(_)) => return Ok(None),
                    Err(e) => return Err(e),
                }
                return Ok(Some(Introspection {
                    token_type: "access_token",
                    face: face.name.clone(),
                    audience: face.audience.clone(),
                    user_id: ctx.user_id,
                    session_id: None,
                    client_id: None,
                    expires_at: ctx.expires_at,
                    issued_at: None,
                    jti: Some(ctx.jti),
                    legacy: Some(origin),
                    dpop_jkt: None,
                }));
            }
            // the session's fixed parts, from memory once read: a revocation since is on the
            // revocation list for as long as any access token of the session lives, and
            // `resolve_any` has asked it
            let session = match self.session_memo.get(&ctx.session_id) {
                Some(session) => session,
                None => {
                    let Some(session) = self.store.session(ctx.session_id, Some(ctx.user_id.route())).await? else { return Ok(None) };
                    if session.is_revoked() {
                        return Ok(None);
                    }
                    let session = Arc::new(session);
                    self.session_memo.insert(ctx.session_id, session.clone());
                    session
                }
            };
            if self.current_user(&ctx_for(&session, &ctx)).await.is_err() {
                return Ok(None);
            }
            let issued_at = ctx.expires_at - session.profile.access_ttl().whole_seconds();
            return Ok(Some(Introspection {
                token_type: "access_token",
                face: session.face.clone(),
                audience: face.audience.clone(),
                user_id: session.user_id,
                session_id: Some(session.id),
                client_id: session.client_id.clone(),
                expires_at: ctx.expires_at,
                issued_at: Some(issued_at),
                jti: Some(ctx.jti),
                legacy: None,
                dpop_jkt: session.dpop_jkt.clone(),
            }));
        }
        for face in self.faces.iter() {
            let secret = match face.format.read_legacy(raw, TokenKind::Refresh, now) {
                Some(Ok(token)) => {
                    let Some(secret) = token.refresh_secret().map(|s| s.on_route(token.user_id.route())) else { continue };
                    if self.store.refresh_by_hash(self.secret_hash(secret.as_bytes()), Some(secret.route())).await?.is_none() {
                        // never used here: what the token itself says, if its user came over
                        match self.legacy_user(token.origin, token.user_id).await {
                            Ok(_) => {}
                            Err(DomainError::Auth(_)) => continue,
                            Err(e) => return Err(e),
                        }
                        let expires_at = token.expires_at.min(self.legacy_cap(&token));
                        if expires_at <= now {
                            continue;
                        }
                        return Ok(Some(Introspection {
                            token_type: "refresh_token",
                            face: face.name.clone(),
                            audience: face.audience.clone(),
                            user_id: token.user_id,
                            session_id: None,
                            client_id: None,
                            expires_at: expires_at.unix_timestamp(),
                            issued_at: Some(token.issued_at.unix_timestamp()),
                            jti: None,
                            legacy: Some(token.origin),
                            dpop_jkt: None,
                        }));
                    }
                    secret
                }
                Some(Err(_)) => continue,
                None => match self.read_refresh(face, raw, now) {
                    Ok(secret) => secret,
                    Err(_) => continue,
                },
            };
            match self.live_refresh(face, &secret, None, now).await {
                Ok((record, session, _)) => {
                    return Ok(Some(Introspection {
                        token_type: "refresh_token",
                        face: session.face.clone(),
                        audience: face.audience.clone(),
                        user_id: session.user_id,
                        session_id: Some(session.id),
                        client_id: session.client_id.clone(),
                        expires_at: record.expires_at.unix_timestamp(),
                        issued_at: Some(record.issued_at.unix_timestamp()),
                        jti: None,
                        legacy: None,
                        dpop_jkt: session.dpop_jkt.clone(),
                    }));
                }
                Err(DomainError::Auth(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
