//! Faces: the native API and each dialect, as data the use-cases understand. A face names its
//! token format (render and read), its audience, its token profile, its refresh policy and its
//! refresh-time risk rules. Adapters parse their wire format, call one use-case with their face,
//! and render the answer; every rule of a token's life is decided here, in the domain.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::Duration;

pub use crate::risk::{RequestMeta, RiskAction, RiskCondition, RiskRule, RiskSignal, assess, strictest};
use crate::{DomainError, TokenFormat, TokenProfile};

/// What a refresh does to the refresh token presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshPolicy {
    /// Single use: the token is rotated into a new pair; the parent presented again within the
    /// grace window gets the same pair, any other reuse revokes the family.
    Rotate,
    /// The refresh token stays valid until it expires or is revoked; a refresh answers a new
    /// access token only (simplejwt's `ROTATE_REFRESH_TOKENS = False`, flask-jwt-extended).
    Reuse,
}

/// One face: its name (recorded on the sessions it opens), the audience its tokens carry and
/// accept, and the rules its tokens live by.
#[derive(Clone)]
pub struct Face {
    pub name: String,
    /// Faces with one audience accept each other's tokens; every other token is refused.
    pub audience: String,
    pub profile: TokenProfile,
    pub refresh: RefreshPolicy,
    /// Seconds after a rotation during which the parent gets the same pair (`rotate` only).
    pub grace: Duration,
    pub risk: Vec<RiskRule>,
    pub format: Arc<dyn TokenFormat>,
}

impl std::fmt::Debug for Face {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Face")
            .field("name", &self.name)
            .field("audience", &self.audience)
            .field("profile", &self.profile.name())
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// Every mounted face, by name.
#[derive(Debug, Clone, Default)]
pub struct Faces {
    by_name: BTreeMap<String, Arc<Face>>,
}

impl Faces {
    pub fn new(faces: impl IntoIterator<Item = Face>) -> Result<Self, DomainError> {
        let mut by_name = BTreeMap::new();
        for f in faces {
            if f.audience.trim().is_empty() {
                return Err(DomainError::invalid("audience", format!("API {}: the audience may not be empty", f.name)));
            }
            if by_name.insert(f.name.clone(), Arc::new(f)).is_some() {
                return Err(DomainError::invalid("api", "two APIs share a name"));
            }
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Face>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Face>> {
        self.by_name.values()
    }

    /// The faces whose sessions `face` may act on: those of its audience.
    pub fn peers_of(&self, face: &Face) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.values().filter(|f| f.audience == face.audience).map(|f| f.name.clone()).collect();
        if !names.contains(&face.name) {
            names.push(face.name.clone());
        }
        names
    }

    /// The longest access-token lifetime of any face: how long a revocation must be remembered.
    pub fn longest_access_ttl(&self) -> Duration {
        self.by_name.values().map(|f| f.profile.access_ttl()).max().unwrap_or(Duration::ZERO)
    }

    /// How long a retired signing key must still verify: the longest access lifetime, or the
    /// refresh lifetime of a face whose signed tokens must verify that long (JWT refresh tokens
    /// of simplejwt, djoser and flask, up to 90 days; Medods' pair-proving access tokens).
    pub fn longest_signed_ttl(&self) -> Duration {
        self.by_name
            .values()
            .map(|f| if f.format.keys_live_as_long_as_refresh_tokens() { f.profile.refresh_ttl() } else { f.profile.access_ttl() })
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ip: &str, ua: &str) -> RequestMeta {
        RequestMeta { ip: Some(ip.into()), user_agent: Some(ua.into()) }
    }

    #[test]
    fn the_strictest_matching_rule_wins_and_milder_ones_are_still_reported() {
        let rules = [
            RiskRule { when: RiskCondition::IpChanged, then: RiskAction::Notify },
            RiskRule { when: RiskCondition::UserAgentChanged, then: RiskAction::RevokeUser },
        ];
        let s = assess(&rules, Some("1.1.1.1"), Some("app/1"), &meta("2.2.2.2", "app/2"));
        assert_eq!(s.len(), 2);
        assert_eq!(strictest(&s), RiskAction::RevokeUser);
        let s = assess(&rules, Some("1.1.1.1"), Some("app/1"), &meta("2.2.2.2", "app/1"));
        assert_eq!(
            (strictest(&s), s[0].previous.as_deref(), s[0].current.as_deref()),
            (RiskAction::Notify, Some("1.1.1.1"), Some("2.2.2.2"))
        );
        assert!(assess(&rules, Some("1.1.1.1"), Some("app/1"), &meta("1.1.1.1", "app/1")).is_empty());
    }

    #[test]
    fn an_unrecorded_reference_never_matches_and_allow_is_silent() {
        let rules = [RiskRule { when: RiskCondition::IpChanged, then: RiskAction::Deny }];
        assert!(assess(&rules, None, None, &meta("2.2.2.2", "x")).is_empty());
        let allow = [RiskRule { when: RiskCondition::IpChanged, then: RiskAction::Allow }];
        assert!(assess(&allow, Some("1.1.1.1"), None, &meta("2.2.2.2", "x")).is_empty());
    }

    #[test]
    fn a_user_agent_that_disappears_has_changed() {
        let rules = [RiskRule { when: RiskCondition::UserAgentChanged, then: RiskAction::Deny }];
        assert_eq!(strictest(&assess(&rules, None, Some("app/1"), &RequestMeta::default())), RiskAction::Deny);
    }
}
