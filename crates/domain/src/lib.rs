//! Tessera's rules, free of I/O: token profiles, access-token signing and verification, refresh
//! secrets and their keyed hashes, the session (token family) rotation rule, password policy, the
//! repository ports and the use-cases written against them. Time is always a parameter.

pub mod audit;
pub mod dpop;
pub mod error;
pub mod events;
pub mod face;
pub mod format;
pub mod identity;
pub mod key_schedule;
pub mod keys;
pub mod legacy;
pub mod password;
pub mod ports;
pub mod profile;
pub mod risk;
pub mod rotation;
pub mod secret;
pub mod service;
pub mod throttle;

#[cfg(any(test, feature = "fakes"))]
pub mod fakes;

pub use error::{AuthError, DomainError, RepoError, Rule};
pub use face::{Face, Faces, RefreshPolicy};
pub use format::{AccessClaims, AccessView, ClientAccessClaims, NativeFormat, RefreshView, TokenFormat};
pub use identity::{ClientId, Email, OAuthClient, User, UserId, UserStatus};
pub use keys::{Algorithm, KeyState, Keyring, SigningKey};
pub use legacy::{LegacyKey, LegacyToken, ORIGIN_DJANGO, ORIGIN_FLASK, TokenKind};
pub use password::{Argon2Params, Password, PasswordHash, PasswordPolicy};
pub use profile::TokenProfile;
pub use risk::{RequestMeta, RiskAction, RiskCondition, RiskRule, RiskSignal};
pub use rotation::{RefreshRecord, RefreshRefusal, Session, SessionId};
pub use secret::{KeyedHasher, RefreshSecret, Route, Sealer, TokenHash};
pub use service::{
    ACCESS_TOKEN_TYPE, AccessContext, BlacklistImport, ClientIntrospection, ClientToken, ClientTokenRequest, ExchangeRequest, Exchanged,
    ExchangedIntrospection, Introspection, IssuedAccess, IssuedPair, LoginOrigin, LogoutScope, REFRESH_TOKEN_TYPE, RefreshInput, Refreshed,
    ServiceParts, TokenService, TokenSettings,
};
pub use throttle::{AttemptLimiter, LockoutPolicy};

/// Re-exported so that callers name one time type.
pub use time::{Duration, OffsetDateTime};
