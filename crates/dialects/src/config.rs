//! The dialects' settings: the `[dialects.*]` sections of Tessera's configuration. Checked by
//! the api crate at start, with the rest of the configuration.

use std::collections::BTreeMap;

use serde::Deserialize;
use tessera_domain::{RefreshPolicy, RiskAction, RiskCondition, RiskRule, TokenProfile};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DialectSettings {
    pub medods: MedodsSettings,
    pub drf_social_oauth2: DrfSocialSettings,
    pub simplejwt: SimpleJwtSettings,
    pub djoser: SimpleJwtSettings,
    pub flask: FlaskSettings,
}

impl Default for DialectSettings {
    fn default() -> Self {
        Self {
            medods: MedodsSettings::default(),
            drf_social_oauth2: DrfSocialSettings::default(),
            simplejwt: SimpleJwtSettings::default(),
            djoser: SimpleJwtSettings { profile: TokenProfile::EXTENDED.into(), ..SimpleJwtSettings::default() },
            flask: FlaskSettings::default(),
        }
    }
}

/// The Medods token API: trusted callers mint pairs for users they name.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MedodsSettings {
    pub enabled: bool,
    pub prefix: String,
    /// The key trusted callers present (`X-Caller-Key`) on `/generate` and `/deleteall`, who
    /// may mint tokens for any `user_id`. Unset: in development one is generated and kept beside
    /// the master key (`data/medods-caller.key`); production refuses to start without it.
    pub caller_key: Option<String>,
    /// Serve `/generate` and `/deleteall` to anyone, without a key: for a network where only
    /// trusted callers can reach Tessera. Never the default.
    pub open_to_anyone: bool,
    pub profile: String,
    /// The task demands single use: 0 by default.
    pub refresh_grace_seconds: u32,
    /// Where the `notify` risk signals are reported (POST, JSON), such as a refresh from a new
    /// IP address; the refresh goes ahead.
    pub new_ip_webhook: Option<String>,
    /// More prefixes the routes are also mounted under.
    pub prefixes: Vec<String>,
    pub audience: String,
    pub refresh_policy: RefreshPolicy,
    /// The task's rules: a new IP is reported, a changed User-Agent logs the user out everywhere.
    pub risk: Vec<RiskRule>,
}

impl Default for MedodsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            prefix: String::new(),
            caller_key: None,
            open_to_anyone: false,
            profile: TokenProfile::STANDARD.into(),
            refresh_grace_seconds: 0,
            new_ip_webhook: None,
            prefixes: vec![],
            audience: "medods".into(),
            refresh_policy: RefreshPolicy::Rotate,
            risk: vec![
                RiskRule { when: RiskCondition::IpChanged, then: RiskAction::Notify },
                RiskRule { when: RiskCondition::UserAgentChanged, then: RiskAction::RevokeUser },
            ],
        }
    }
}

/// drf-social-oauth2 (django-oauth-toolkit, oauthlib): OAuth clients, and external identity
/// providers whose tokens `convert-token` exchanges for local pairs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DrfSocialSettings {
    pub enabled: bool,
    pub prefix: String,
    /// `expires_in` of access tokens (django-oauth-toolkit's ACCESS_TOKEN_EXPIRE_SECONDS).
    pub access_token_expire_seconds: u32,
    pub refresh_token_expire_seconds: u32,
    /// The `scope` string of token responses.
    pub scope: String,
    /// Trusted issuers by backend name (the `backend` parameter of convert-token).
    pub providers: BTreeMap<String, ProviderSettings>,
    pub prefixes: Vec<String>,
    pub audience: String,
    pub refresh_policy: RefreshPolicy,
    pub refresh_grace_seconds: u32,
    pub risk: Vec<RiskRule>,
    /// The signing algorithm of its access tokens: HS256 (the default) or an asymmetric one.
    pub algorithm: String,
    /// A token with a `kid` the provider's cached keys lack refetches them at most once per
    /// this many seconds.
    pub jwks_refetch_seconds: u32,
}

impl Default for DrfSocialSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            prefix: String::new(),
            access_token_expire_seconds: 36_000,
            refresh_token_expire_seconds: 90 * 86_400,
            scope: "read write".into(),
            providers: BTreeMap::new(),
            prefixes: vec![],
            audience: "drf-social-oauth2".into(),
            refresh_policy: RefreshPolicy::Rotate,
            refresh_grace_seconds: 5,
            risk: vec![],
            algorithm: "HS256".into(),
            jwks_refetch_seconds: 60,
        }
    }
}

/// An external identity provider: a trusted issuer of JWTs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The `iss` its tokens must carry.
    pub issuer: String,
    /// Where its signing keys are published (JWKS).
    pub jwks_url: Option<String>,
    /// Or its keys inline: a JWKS document (`{"keys":[...]}`) as JSON.
    pub jwks: Option<String>,
    /// The `aud` its tokens must carry: the client id the provider issued to this application.
    /// Required (the start refuses a provider without it); optional here only so that its
    /// absence is reported as a configuration error naming the key.
    pub audience: Option<String>,
}

/// djangorestframework-simplejwt, and djoser (which mounts simplejwt's views).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimpleJwtSettings {
    pub enabled: bool,
    /// Mounted under this path prefix (e.g. `/v1/zonesmart`); empty: at the root.
    pub prefix: String,
    /// `5.4` (the seed's era: one text for every bad token, `user_id` a number) or `5.5`.
    pub era: String,
    /// The login field: `email` (the seed's) or `username`.
    pub username_field: String,
    pub profile: String,
    /// With `rotate`, simplejwt refuses every second use of a refresh token: 0 by default.
    pub refresh_grace_seconds: u32,
    /// More prefixes the routes are also mounted under (seed 003 calls djoser at two).
    pub prefixes: Vec<String>,
    /// simplejwt and djoser share one by default, as one Django application did.
    pub audience: String,
    /// `reuse` (the library's default, `ROTATE_REFRESH_TOKENS = False`: refresh answers
    /// `{"access"}`) or `rotate` (`{"access","refresh"}`, the old one blacklisted).
    pub refresh_policy: RefreshPolicy,
    pub risk: Vec<RiskRule>,
    /// simplejwt's `ALGORITHM`: HS256 (the seed's) or an asymmetric one (the library supports
    /// ES256 and RS256; EdDSA too).
    pub algorithm: String,
    /// The original deployment's `SIGNING_KEY` (by default Django's `SECRET_KEY`): its tokens
    /// stay valid through the switch (see the README's "Migrating").
    pub legacy_secret: Option<LegacySecret>,
    /// The `ALGORITHM` the original deployment signed with (an HMAC one).
    pub legacy_algorithm: String,
}

impl Default for SimpleJwtSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            prefix: String::new(),
            era: "5.4".into(),
            username_field: "email".into(),
            profile: TokenProfile::STANDARD.into(),
            refresh_grace_seconds: 0,
            prefixes: vec![],
            audience: "django".into(),
            refresh_policy: RefreshPolicy::Reuse,
            risk: vec![],
            algorithm: "HS256".into(),
            legacy_secret: None,
            legacy_algorithm: "HS256".into(),
        }
    }
}

/// flask-jwt-extended.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlaskSettings {
    pub enabled: bool,
    pub prefix: String,
    /// `3` (the library version the original API was documented against: its texts and claims)
    /// or `4`.
    pub era: String,
    /// `application`: the original application's error envelopes where it documents them
    /// (`seed`, the former name, is accepted); `library`: the library's plain `{"msg": ...}`
    /// everywhere.
    pub envelope: String,
    pub profile: String,
    pub prefixes: Vec<String>,
    pub audience: String,
    /// `reuse`: the library does not rotate refresh tokens.
    pub refresh_policy: RefreshPolicy,
    pub refresh_grace_seconds: u32,
    pub risk: Vec<RiskRule>,
    /// flask-jwt-extended's `JWT_ALGORITHM`: HS256 (the seed's) or an asymmetric one.
    pub algorithm: String,
    /// The original deployment's `JWT_SECRET_KEY` (or Flask's `SECRET_KEY` when that was
    /// unset): its tokens stay valid through the switch.
    pub legacy_secret: Option<LegacySecret>,
    /// The `JWT_ALGORITHM` the original deployment signed with (an HMAC one).
    pub legacy_algorithm: String,
}

/// A secret from configuration; its `Debug` never prints it.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct LegacySecret(String);

impl LegacySecret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for LegacySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LegacySecret(..)")
    }
}

impl Default for FlaskSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            prefix: String::new(),
            era: "3".into(),
            envelope: "application".into(),
            profile: TokenProfile::EXTENDED.into(),
            prefixes: vec![],
            audience: "flask".into(),
            refresh_policy: RefreshPolicy::Reuse,
            refresh_grace_seconds: 0,
            risk: vec![],
            algorithm: "HS256".into(),
            legacy_secret: None,
            legacy_algorithm: "HS256".into(),
        }
    }
}
