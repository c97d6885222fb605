//! The outgoing side of convert-token: a trusted OpenID Connect provider, whose ID tokens are
//! checked against its JWKS (fetched and cached, or inline), its issuer, this application's
//! audience and their times. It implements the domain's [`IdentityVerifier`] port; the
//! drf-social-oauth2 adapter only names which provider a request asks for, and the server
//! builds the providers from the configuration ([`providers`]).

use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use tessera_domain::ports::{ExternalIdentity, IdentityVerifier};
use tokio::sync::RwLock;

/// A trusted issuer and where its keys come from.
pub struct JwksProvider {
    issuer: String,
    audience: Option<String>,
    jwks_url: Option<String>,
    /// Inline keys, or the last fetched JWKS with the time it was fetched.
    keys: RwLock<Option<(Instant, JwkSet)>>,
    /// An unknown `kid` refetches the keys at most once per this interval: a stream of tokens
    /// with made-up kids must not make Tessera hammer the provider.
    min_refetch: StdDuration,
    http: reqwest::Client,
}

/// How long fetched keys are trusted before they are fetched again.
const JWKS_TTL: StdDuration = StdDuration::from_secs(300);

#[derive(Debug, Deserialize)]
struct ExternalClaims {
    sub: String,
    email: Option<String>,
    /// `true` (or the string `"true"`, as some providers write it): the provider checked the
    /// address. Anything else: the address is not adopted.
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

impl ExternalClaims {
    /// The e-mail to adopt: only one the provider says it verified; anyone can put an unverified
    /// address in their profile and squat it before its owner registers.
    fn verified_email(&self) -> Option<&str> {
        let verified = matches!(&self.email_verified, Some(serde_json::Value::Bool(true)))
            || matches!(&self.email_verified, Some(serde_json::Value::String(s)) if s == "true");
        self.email.as_deref().filter(|_| verified)
    }
}

/// A provider as configured: its issuer, its audience, and its keys' URL or the keys inline (a
/// JWKS document).
#[derive(Debug, Clone, Copy)]
pub struct Provider<'a> {
    pub issuer: &'a str,
    pub audience: Option<&'a str>,
    pub jwks_url: Option<&'a str>,
    pub jwks: Option<&'a str>,
}

/// The verifiers of `providers`, by name, sharing one HTTP client (5 s timeout, no redirects).
/// An unknown `kid` refetches a provider's keys at most once per `min_refetch`.
pub fn providers<'a>(
    providers: impl IntoIterator<Item = (&'a String, Provider<'a>)>,
    min_refetch: StdDuration,
) -> Result<std::collections::BTreeMap<String, std::sync::Arc<dyn IdentityVerifier>>, reqwest::Error> {
    let http = reqwest::Client::builder().timeout(StdDuration::from_secs(5)).redirect(reqwest::redirect::Policy::none()).build()?;
    Ok(providers
        .into_iter()
        .map(|(name, p)| {
            (name.clone(), std::sync::Arc::new(JwksProvider::new(p, min_refetch, http.clone())) as std::sync::Arc<dyn IdentityVerifier>)
        })
        .collect())
}

impl JwksProvider {
    pub fn new(p: Provider<'_>, min_refetch: StdDuration, http: reqwest::Client) -> Self {
        let inline = p.jwks.and_then(|doc| serde_json::from_str::<JwkSet>(doc).ok()).map(|set| (Instant::now(), set));
        Self {
            issuer: p.issuer.to_owned(),
            audience: p.audience.map(str::to_owned),
            jwks_url: p.jwks_url.map(str::to_owned),
            keys: RwLock::new(inline),
            min_refetch,
            http,
        }
    }

    async fn key_set(&self, refetch: bool) -> Option<JwkSet> {
        let Some(url) = &self.jwks_url else { return self.keys.read().await.as_ref().map(|(_, k)| k.clone()) };
        if let Some((at, set)) = self.keys.read().await.as_ref()
            && (at.elapsed() < self.min_refetch || (!refetch && at.elapsed() < JWKS_TTL))
        {
            return Some(set.clone());
        }
        match self.http.get(url).send().await.and_then(reqwest::Response::error_for_status) {
            Ok(res) => match res.json::<JwkSet>().await {
                Ok(set) => {
                    *self.keys.write().await = Some((Instant::now(), set.clone()));
                    Some(set)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "an identity provider's JWKS is not a key set");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch an identity provider's JWKS");
                self.keys.read().await.as_ref().map(|(_, k)| k.clone())
            }
        }
    }

    /// Checks an external token: a key of the provider's (by `kid`), the algorithm that key is
    /// for, issuer, audience and expiry.
    async fn claims(&self, token: &str) -> Option<ExternalClaims> {
        if token.len() > 16 * 1024 {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        let mut set = self.key_set(false).await?;
        let find = |set: &JwkSet| match &header.kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&set) {
            Some(k) => k,
            None => {
                // a rotated key: fetch once more (at most once per min_refetch)
                set = self.key_set(true).await?;
                find(&set)?
            }
        };
        if let Some(alg) = jwk.common.key_algorithm
            && format!("{alg:?}") != format!("{:?}", header.alg)
        {
            return None;
        }
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        // a provider without an audience is refused at start; were one built, it accepts nothing
        validation.set_audience(&[self.audience.as_deref()?]);
        // jsonwebtoken checks `aud` only when the token has one: it is required as well
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<ExternalClaims>(token, &key, &validation).ok().map(|d| d.claims)
    }
}

#[async_trait]
impl IdentityVerifier for JwksProvider {
    async fn verify(&self, token: &str) -> Option<ExternalIdentity> {
        let claims = self.claims(token).await?;
        let verified_email = claims.verified_email().map(str::to_owned);
        Some(ExternalIdentity { subject: claims.sub, verified_email })
    }
}
