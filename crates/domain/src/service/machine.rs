//! A client's own tokens: the `client_credentials` grant (RFC 6749 §4.4), whose access tokens
//! follow RFC 9068's profile and come with no refresh token, and their introspection.

use super::*;
use crate::format::ClientAccessClaims;

/// What the grant gives: an access token for one audience, with the scopes granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientToken {
    pub access_token: String,
    pub expires_in: i64,
    pub audience: String,
    /// Space-separated; empty when no scope was granted.
    pub scope: String,
}

/// What a client asks for: scopes (space-separated; none: all it may have), an audience (none:
/// its only one), and the key the request proved (DPoP), which the token is then bound to.
#[derive(Debug, Clone, Default)]
pub struct ClientTokenRequest<'a> {
    pub scope: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub dpop_jkt: Option<String>,
}

/// What introspection says of a client's own token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIntrospection {
    pub client_id: String,
    pub audience: String,
    pub scope: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub jti: Uuid,
    /// The key the token is bound to (DPoP).
    pub dpop_jkt: Option<String>,
}

impl TokenService {
    /// Issues `client` a token of its own, signed by `face` (the native API) and living `ttl`:
    /// each scope asked for one the client may have, the audience one it may name (a client with
    /// several must name one). The client is already authenticated.
    pub fn client_credentials(
        &self,
        face: &Face,
        client: &OAuthClient,
        ttl: Duration,
        ask: ClientTokenRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<ClientToken, DomainError> {
        let ClientTokenRequest { scope, audience, dpop_jkt } = ask;
        if !client.may_use_client_credentials() {
            return Err(AuthError::UnauthorizedClient.into());
        }
        let granted = client.grant_scopes(scope)?;
        let audience = client.grant_audience(audience)?;
        let scope = granted.join(" ");
        let iat = now.unix_timestamp();
        let claims = ClientAccessClaims {
            iss: String::new(),
            sub: client.client_id.as_str().to_owned(),
            aud: audience.clone(),
            client_id: client.client_id.as_str().to_owned(),
            scope: (!scope.is_empty()).then(|| scope.clone()),
            jti: Uuid::new_v4(),
            iat,
            exp: iat + ttl.whole_seconds(),
            cnf: dpop_jkt.map(|jkt| crate::format::Confirmation { jkt }),
        };
        let access_token = face.format.render_client_access(&self.keyring, claims)?;
        Ok(ClientToken { access_token, expires_in: ttl.whole_seconds(), audience, scope })
    }

    /// Introspects a client's own token issued by `face`: its signature and times, and its
    /// client still there and still allowed the grant and the token's audience (a deleted
    /// client's tokens are inactive at once here; a verifier holding only the public keys
    /// accepts them until they expire). `None`: not such a token, or no longer active.
    pub async fn introspect_client_token(
        &self,
        face: &Face,
        raw: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ClientIntrospection>, DomainError> {
        let Ok(claims) = face.format.read_client_access(&self.keyring, raw, now) else { return Ok(None) };
        if claims.iat > now.unix_timestamp() + 60 {
            return Ok(None);
        }
        let Some(client) = self.store.client_by_id(&claims.client_id).await? else { return Ok(None) };
        if !client.may_use_client_credentials() || !client.audiences.contains(&claims.aud) {
            return Ok(None);
        }
        Ok(Some(ClientIntrospection {
            client_id: claims.client_id,
            audience: claims.aud,
            scope: claims.scope,
            issued_at: claims.iat,
            expires_at: claims.exp,
            jti: claims.jti,
            dpop_jkt: claims.cnf.map(|c| c.jkt),
        }))
    }
}
