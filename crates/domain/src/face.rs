//! Faces: the native API and each dialect, as data the use-cases understand. A face names its
//! token format (render and read), its audience, its token profile, its refresh policy and its
//! refresh-time risk rules. Adapters parse their wire format, call one use-case with their face,
//! and render the answer; every rule of a token's life is decided here, in the domain.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::Duration;

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

/// A condition a refresh request is checked against, relative to the session it refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskCondition {
    /// The request comes from another IP address than the session's last one.
    IpChanged,
    /// The request's User-Agent differs from the session's.
    UserAgentChanged,
}

impl RiskCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskCondition::IpChanged => "ip_changed",
            RiskCondition::UserAgentChanged => "user_agent_changed",
        }
    }
}

/// What a matching rule does, from mildest to strictest; when several rules match, the
/// strictest action wins (notifications of milder matches are still sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskAction {
    /// Go ahead, say nothing.
    Allow,
    /// Go ahead, and report the event (the face's notifier: a webhook).
    Notify,
    /// Refuse this refresh; change nothing.
    Deny,
    /// Refuse, and revoke the session (the token family).
    RevokeFamily,
    /// Refuse, and revoke every session of the user.
    RevokeUser,
}

/// One declarative rule: `when` the condition holds, `then` the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRule {
    pub when: RiskCondition,
    pub then: RiskAction,
}

/// A rule that matched a refresh, with the values it compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskSignal {
    pub condition: RiskCondition,
    pub action: RiskAction,
    pub previous: Option<String>,
    pub current: Option<String>,
}

/// Where a request comes from, as the server saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
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

/// The strictest action among matching rules, and every signal that matched. `None` for a
/// value the session never recorded: a rule cannot compare against nothing.
pub fn assess(rules: &[RiskRule], session_ip: Option<&str>, session_ua: Option<&str>, req: &RequestMeta) -> Vec<RiskSignal> {
    let mut out = vec![];
    for rule in rules {
        let (prev, cur) = match rule.when {
            RiskCondition::IpChanged => (session_ip, req.ip.as_deref()),
            RiskCondition::UserAgentChanged => (session_ua, req.user_agent.as_deref()),
        };
        let changed = match (prev, cur) {
            (Some(p), Some(c)) => p != c,
            // a device that sent a User-Agent and now sends none has changed too
            (Some(_), None) => rule.when == RiskCondition::UserAgentChanged,
            (None, _) => false,
        };
        if changed && rule.then != RiskAction::Allow {
            out.push(RiskSignal {
                condition: rule.when,
                action: rule.then,
                previous: prev.map(str::to_owned),
                current: cur.map(str::to_owned),
            });
        }
    }
    out
}

/// The strictest action of a set of signals (`Allow` when there are none).
pub fn strictest(signals: &[RiskSignal]) -> RiskAction {
    signals.iter().map(|s| s.action).max().unwrap_or(RiskAction::Allow)
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
