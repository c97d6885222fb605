//! Refresh-time risk rules: a declarative rule compares a request with the session it refreshes
//! (its last IP address and User-Agent), and the strictest matching action wins.

use serde::{Deserialize, Serialize};

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
