//! The domain's error types. They know nothing of HTTP: each face maps them to its own bodies.

use thiserror::Error;

/// Why a credential (password, refresh token, access token) was refused. Faces map each to their
/// own wire text; the variants are deliberately coarse where telling more would help an attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the account is blocked")]
    UserBlocked,
    #[error("the token is malformed or its signature does not verify")]
    TokenInvalid,
    #[error("the token has expired")]
    TokenExpired,
    #[error("the token is of the wrong type")]
    WrongTokenType,
    #[error("the token's session has been revoked")]
    TokenRevoked,
    #[error("the refresh token was already used; its session has been revoked")]
    TokenReused,
    #[error("the token was issued to another client")]
    WrongClient,
    #[error("the user of this token no longer exists")]
    UnknownUser,
    /// The client a session was being opened for was deleted meanwhile.
    #[error("the client no longer exists")]
    UnknownClient,
    #[error("the access and refresh tokens are not of one pair")]
    PairMismatch,
    /// The client may not use the grant it asked for (a public client, or one that names no
    /// audience, asking for `client_credentials`).
    #[error("the client may not use this grant")]
    UnauthorizedClient,
    /// A scope was asked for that the client may not have.
    #[error("a requested scope is not allowed to this client")]
    ScopeNotAllowed,
    /// An audience was asked for that the client may not name, or none when it may name several.
    #[error("the requested audience is not allowed to this client")]
    AudienceNotAllowed,
    /// The refresh token is bound to a key (DPoP) the request did not prove, or to none while
    /// the request proved one.
    #[error("the refresh token is bound to another key")]
    DpopKeyMismatch,
    /// A DPoP proof was refused (RFC 9449 `invalid_dpop_proof`): what is wrong with it.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(&'static str),
    /// The server asks for its nonce in the DPoP proof (RFC 9449 `use_dpop_nonce`).
    #[error("the DPoP proof must carry the server's nonce")]
    UseDpopNonce,
    /// The token was issued by another face (outside this face's audience).
    #[error("the token was issued for another audience")]
    WrongAudience,
    /// A refresh-time risk rule refused the request; `revoked` when it also ended sessions.
    #[error("the request was refused by a risk rule ({})", condition.as_str())]
    RiskRefused { condition: crate::risk::RiskCondition, revoked: bool },
}

/// Failures of a repository (port) call.
#[derive(Debug, Error)]
pub enum RepoError {
    /// A uniqueness rule was broken; the string names the rule (e.g. `users_email_key`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// Anything else: the cause chain is kept for the log, never shown to a client.
    #[error("storage failure")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The error of a use-case.
#[derive(Debug, Error)]
pub enum DomainError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Input that breaks a rule of the domain (bad e-mail, weak or overlong password, ...):
    /// which rule, typed, for an API that words each its own way; `message` in Tessera's words.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, rule: Rule, message: String },
    #[error("the e-mail address is already registered")]
    EmailTaken,
    #[error("unknown {0}")]
    NotFound(&'static str),
    #[error("no signing key for algorithm {0}")]
    NoSigningKey(&'static str),
    #[error(transparent)]
    Repo(RepoError),
    #[error("internal failure: {0}")]
    Internal(String),
    /// Too many password attempts from this address, or the account is locked out here for a
    /// while: try again after `retry_after` seconds (429).
    #[error("too many attempts; retry after {retry_after} seconds")]
    Throttled { retry_after: u64 },
    /// More password hashes wait than the configured bound: try again after `retry_after`
    /// seconds (503).
    #[error("busy; retry after {retry_after} seconds")]
    Overloaded { retry_after: u64 },
}

impl From<RepoError> for DomainError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict("users_email_key") => DomainError::EmailTaken,
            other => DomainError::Repo(other),
        }
    }
}

/// The rule an input broke, where an API words it its own way (djoser: "This password is too
/// short. It must contain at least 8 characters.").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Shorter than `min_chars` characters.
    TooShort { min_chars: usize },
    /// Any other rule: the message says which.
    Other,
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid { field, rule: Rule::Other, message: message.into() }
    }

    /// `field` is shorter than `min_chars` characters.
    pub fn too_short(field: &'static str, min_chars: usize) -> Self {
        DomainError::Invalid { field, rule: Rule::TooShort { min_chars }, message: format!("must be at least {min_chars} characters") }
    }
}
