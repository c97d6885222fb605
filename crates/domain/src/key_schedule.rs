//! When signing keys change, decided from the token lifetimes and the JWKS cache age:
//!
//! - a `next` key is published at least one JWKS max-age before it signs, so every resource
//!   server that caches the JWKS has it when the first token it signs arrives;
//! - the active key is replaced once it has signed for the rotation period;
//! - a retired key stays published until the last token it signed has expired (the longest
//!   access lifetime of any face), then it is dropped.
//!
//! A pure function of the keys and the instant; storage runs it inside one locked transaction,
//! so instances sharing a database agree on one change per step.

use time::{Duration, OffsetDateTime};

use crate::KeyState;
use crate::keys::StoredKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    /// How long a key signs before it is replaced.
    pub period: Duration,
    /// How long a next key is published before it signs: the JWKS `max-age`.
    pub publish_ahead: Duration,
    /// How long a retired key stays published: the longest access lifetime (plus leeway).
    pub keep_retired: Duration,
}

/// One change to the keys of an algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Insert the prepared candidate as the `next` key.
    Publish,
    /// The next key starts signing; the active one retires.
    Activate { next: String, retiring: Option<String> },
    /// A retired key's last token has expired: stop publishing it.
    Drop(String),
}

/// When a key started signing.
fn active_since(k: &StoredKey) -> OffsetDateTime {
    k.activated_at.unwrap_or(k.created_at)
}

/// The changes due at `now` for the keys of one algorithm.
pub fn plan(keys: &[StoredKey], now: OffsetDateTime, s: &KeySchedule) -> Vec<KeyChange> {
    let mut out = vec![];
    let active = keys.iter().filter(|k| k.state == KeyState::Active).max_by_key(|k| active_since(k));
    let next = keys.iter().filter(|k| k.state == KeyState::Next).min_by_key(|k| k.created_at);
    if let Some(a) = active {
        let due = active_since(a) + s.period;
        match next {
            None if now >= due - s.publish_ahead => out.push(KeyChange::Publish),
            Some(n) if now >= due && now >= n.created_at + s.publish_ahead => {
                out.push(KeyChange::Activate { next: n.kid.clone(), retiring: Some(a.kid.clone()) })
            }
            _ => {}
        }
    }
    for r in keys.iter().filter(|k| k.state == KeyState::Retired) {
        if now >= r.retired_at.unwrap_or(r.created_at) + s.keep_retired {
            out.push(KeyChange::Drop(r.kid.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-07-01 00:00 UTC);
    const S: KeySchedule =
        KeySchedule { period: Duration::days(30), publish_ahead: Duration::minutes(15), keep_retired: Duration::hours(10) };

    fn key(kid: &str, state: KeyState, created: OffsetDateTime) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            alg: "ES256".into(),
            state,
            sealed_secret: vec![],
            created_at: created,
            activated_at: (state != KeyState::Next).then_some(created),
            retired_at: None,
        }
    }

    #[test]
    fn a_next_key_is_published_one_jwks_max_age_before_the_active_key_is_due() {
        let keys = [key("a", KeyState::Active, T0)];
        let due = T0 + S.period;
        assert!(plan(&keys, due - S.publish_ahead - Duration::seconds(1), &S).is_empty());
        assert_eq!(plan(&keys, due - S.publish_ahead, &S), [KeyChange::Publish]);
    }

    #[test]
    fn the_next_key_signs_only_once_published_for_a_max_age_and_the_period_is_over() {
        let due = T0 + S.period;
        let late = key("b", KeyState::Next, due - Duration::minutes(1));
        let keys = [key("a", KeyState::Active, T0), late];
        assert!(plan(&keys, due, &S).is_empty(), "published a minute ago: caches may not have it yet");
        let at = due - Duration::minutes(1) + S.publish_ahead;
        assert_eq!(plan(&keys, at, &S), [KeyChange::Activate { next: "b".into(), retiring: Some("a".into()) }]);
        let early = [key("a", KeyState::Active, T0), key("b", KeyState::Next, due - S.publish_ahead)];
        assert!(plan(&early, due - Duration::seconds(1), &S).is_empty(), "not before the period is over");
        assert_eq!(plan(&early, due, &S).len(), 1);
    }

    #[test]
    fn a_retired_key_stays_published_until_its_last_token_has_expired() {
        let mut old = key("old", KeyState::Retired, T0);
        old.retired_at = Some(T0 + Duration::days(30));
        let keys = [key("a", KeyState::Active, T0 + Duration::days(30)), old];
        let gone = T0 + Duration::days(30) + S.keep_retired;
        assert!(plan(&keys, gone - Duration::seconds(1), &S).is_empty());
        assert_eq!(plan(&keys, gone, &S), [KeyChange::Drop("old".into())]);
    }
}
