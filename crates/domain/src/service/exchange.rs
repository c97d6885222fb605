//! Token exchange (RFC 8693): a confidential client trades a user's token of any API (native, a
//! dialect's, or a legacy one) for a native access token for one audience, with at most the
//! subject's rights; an actor token names who acts for the user (`act`). The exchanged token
//! belongs to the subject's session: revoking that session revokes it.

use super::*;
use crate::format::{Actor, Confirmation, ExchangeClaims};

/// RFC 8693 §3's token type identifiers Tessera takes and issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// The short names a client's policy stores: `access_token`, `refresh_token`.
pub fn short_token_type(urn: &str) -> Option<&'static str> {
    match urn {
        ACCESS_TOKEN_TYPE => Some("access_token"),
        REFRESH_TOKEN_TYPE => Some("refresh_token"),
        _ => None,
    }
}

/// An exchange as asked for.
#[derive(Debug, Clone, Default)]
pub struct ExchangeRequest<'a> {
    pub subject_token: &'a str,
    /// One of [`ACCESS_TOKEN_TYPE`], [`REFRESH_TOKEN_TYPE`].
    pub subject_token_type: &'a str,
    pub actor_token: Option<&'a str>,
    pub actor_token_type: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub scope: Option<&'a str>,
    /// The key the request proved (DPoP): the exchanged token is bound to it.
    pub dpop_jkt: Option<String>,
}

/// What an exchange gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchanged {
    pub access_token: String,
    pub expires_in: i64,
    pub audience: String,
    /// Space-separated; empty when no scope was granted.
    pub scope: String,
}

/// What introspection says of an exchanged token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangedIntrospection {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub client_id: String,
    pub audience: String,
    pub scope: Option<String>,
    pub actor: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub jti: Uuid,
    pub dpop_jkt: Option<String>,
}

impl TokenService {
    /// Exchanges `req.subject_token` for `client`, signed by `face` (the native API), living
    /// `ttl` at most and never past the subject token's own expiry.
    pub async fn exchange(
        &self,
        face: &Face,
        client: &OAuthClient,
        ttl: Duration,
        req: ExchangeRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<Exchanged, DomainError> {
        let kind = short_token_type(req.subject_token_type)
            .ok_or_else(|| DomainError::invalid("subject_token_type", "must be an access or refresh token type of RFC 8693"))?;
        if !client.is_confidential() || client.client_id.could_be_a_user() || !client.exchange_types.iter().any(|t| t == kind) {
            return Err(AuthError::UnauthorizedClient.into());
        }
        let audience = client.grant_audience(req.audience)?;
        // the subject: a live token of a user, of the type it is said to be
        let subject = self.introspect(req.subject_token, now).await?.ok_or(AuthError::TokenInvalid)?;
        if subject.token_type != kind {
            return Err(AuthError::TokenInvalid.into());
        }
        let session = subject.session_id.or(subject.jti.map(SessionId)).ok_or(AuthError::TokenInvalid)?;
        let actor = match (req.actor_token, req.actor_token_type) {
            (None, None) => None,
            (Some(token), Some(t)) if short_token_type(t) == Some("access_token") => Some(self.actor_of(face, token, now).await?),
            (Some(_), Some(_)) => return Err(DomainError::invalid("actor_token_type", "must be the access token type of RFC 8693")),
            _ => return Err(DomainError::invalid("actor_token", "and actor_token_type go together")),
        };
        // at most the subject's rights: a user's token carries no scope, so the client's scopes
        // are the most it may have for the user
        let scope = client.grant_scopes(req.scope)?.join(" ");
        let iat = now.unix_timestamp();
        let exp = (iat + ttl.whole_seconds()).min(subject.expires_at);
        let claims = ExchangeClaims {
            iss: String::new(),
            sub: subject.user_id.0.to_string(),
            aud: audience.clone(),
            sid: session.0,
            client_id: client.client_id.as_str().to_owned(),
            scope: (!scope.is_empty()).then(|| scope.clone()),
            act: actor.map(|sub| Actor { sub }),
            jti: Uuid::new_v4(),
            iat,
            exp,
            cnf: req.dpop_jkt.map(|jkt| Confirmation { jkt }),
        };
        let access_token = face.format.render_exchanged(&self.keyring, claims)?;
        self.audit(
            "token_exchanged",
            Some(subject.user_id.0),
            serde_json::json!({"client_id": client.client_id.as_str(), "audience": audience, "session_id": session.0.to_string()}),
            now,
        )
        .await;
        Ok(Exchanged { access_token, expires_in: exp - iat, audience, scope })
    }

    /// Who an actor token names: a user's id, or a client's for its own token.
    async fn actor_of(&self, face: &Face, token: &str, now: OffsetDateTime) -> Result<String, DomainError> {
        if let Some(i) = self.introspect(token, now).await?
            && i.token_type == "access_token"
        {
            return Ok(i.user_id.0.to_string());
        }
        match self.introspect_client_token(face, token, now).await? {
            Some(c) => Ok(c.client_id),
            None => Err(DomainError::invalid("actor_token", "is not a live access token")),
        }
    }

    /// Introspects an exchanged token issued by `face`: its signature and times, its session
    /// not revoked, its user active, its client still allowed the audience. `None`: not such a
    /// token, or no longer active.
    pub async fn introspect_exchanged(
        &self,
        face: &Face,
        raw: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ExchangedIntrospection>, DomainError> {
        let Ok(claims) = face.format.read_exchanged(&self.keyring, raw, now) else { return Ok(None) };
        let session = SessionId(claims.sid);
        if self.revocations.is_revoked(session) {
            return Ok(None);
        }
        let route = claims.sub.parse::<i64>().ok().map(|u| UserId(u).route());
        if let Some(s) = self.store.session(session, route).await?
            && s.is_revoked()
        {
            return Ok(None);
        }
        let Ok(user_id) = claims.sub.parse::<i64>().map(UserId) else { return Ok(None) };
        match self.store.user_by_id(user_id).await? {
            Some(u) if u.status == UserStatus::Active => {}
            _ => return Ok(None),
        }
        let Some(client) = self.store.client_by_id(&claims.client_id).await? else { return Ok(None) };
        if !client.audiences.contains(&claims.aud) {
            return Ok(None);
        }
        Ok(Some(ExchangedIntrospection {
            user_id,
            session_id: session,
            client_id: claims.client_id,
            audience: claims.aud,
            scope: claims.scope,
            actor: claims.act.map(|a| a.sub),
            issued_at: claims.iat,
            expires_at: claims.exp,
            jti: claims.jti,
            dpop_jkt: claims.cnf.map(|c| c.jkt),
        }))
    }
}
