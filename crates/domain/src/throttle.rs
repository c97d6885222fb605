//! Password guessing: a rate per client address, and a temporary lockout of an account that
//! grows with repeated failures, held in the database so that it holds across instances.
//!
//! As Keycloak's brute-force detector does, a lockout is temporary, grows with each further
//! failure and is capped, so that no one can lock an account for good. Two locks are kept per
//! account: one per client address, and one for the account as a whole, with a higher threshold.
//! The account-wide lock does not apply at an address from which the account has logged in
//! before. An attacker elsewhere therefore cannot keep the owner out of their own device, while
//! the attacker's own address is locked after a few guesses and rate-limited before that.
//! Addresses count by network ([`address_key`]: an IPv6 /64, an IPv4 address, by default), so
//! that rotating through one subscriber's addresses gains nothing.

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

/// The account-wide lock's address in storage.
pub const ANY_ADDRESS: &str = "*";

/// The key failed attempts are counted under for a login as presented: the comparison form of
/// an e-mail address, or, for a login that is none (no account can have it), the login itself,
/// lowercased, at most 254 characters, with control characters replaced: a NUL, which Postgres
/// refuses in text, never reaches the store.
pub fn account_key(login: &str) -> String {
    match crate::Email::parse(login) {
        Ok(e) => e.normalized(),
        Err(_) => as_typed(login).to_lowercase(),
    }
}

/// A login as typed, for the log and the audit trail: trimmed, at most 254 characters, control
/// characters replaced by U+FFFD (Postgres refuses a NUL in text and in JSON).
pub fn as_typed(login: &str) -> String {
    login.trim().chars().take(254).map(|c| if c.is_control() { char::REPLACEMENT_CHARACTER } else { c }).collect()
}

/// The key a client address is limited under: the network of its first `v4` (IPv4) or `v6`
/// (IPv6) bits, so that the addresses one subscriber holds (an IPv6 /64) count as one. A whole
/// address is written as itself, a network as `net/len`; what does not parse as an address is
/// kept as it is. An IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn address_key(address: &str, v4: u8, v6: u8) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let Ok(ip) = address.parse::<IpAddr>() else { return address.to_owned() };
    let ip = match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            let len = v4.min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let net = Ipv4Addr::from(u32::from(a) & mask);
            if len == 32 { net.to_string() } else { format!("{net}/{len}") }
        }
        IpAddr::V6(a) => {
            let len = v6.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            let net = Ipv6Addr::from(u128::from(a) & mask);
            if len == 128 { net.to_string() } else { format!("{net}/{len}") }
        }
    }
}

/// When failures lock an account, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutPolicy {
    /// Failures from one address before that address is locked out of the account.
    pub threshold: u32,
    /// Failures from all addresses together before the account is locked at every address
    /// that has never logged in to it.
    pub account_threshold: u32,
    /// The first lock's length; each further failure doubles it...
    pub base_seconds: u32,
    /// ... up to this.
    pub max_seconds: u32,
    /// A failure older than this is forgotten.
    pub reset_seconds: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        // Keycloak's defaults in spirit: a few failures, waits that grow, 15 minutes at most,
        // failures forgotten after 12 hours.
        Self { threshold: 5, account_threshold: 20, base_seconds: 30, max_seconds: 900, reset_seconds: 12 * 3600 }
    }
}

impl LockoutPolicy {
    /// The lock after the `failures`-th failure in a row against `threshold`: none below it,
    /// then `base`, doubling with every further failure, capped at `max`.
    pub fn lock_for(&self, failures: u32, threshold: u32) -> Option<Duration> {
        if threshold == 0 || failures < threshold {
            return None;
        }
        let doublings = (failures - threshold).min(20);
        let secs = u64::from(self.base_seconds).saturating_mul(1 << doublings).min(u64::from(self.max_seconds));
        Some(Duration::seconds(secs as i64))
    }

    /// Failures before this instant are forgotten.
    pub fn reset_before(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - Duration::seconds(i64::from(self.reset_seconds))
    }
}

/// One row of failed attempts: of an account at one address, or at all of them
/// ([`ANY_ADDRESS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptRow {
    pub failures: u32,
    pub last_failure_at: Option<OffsetDateTime>,
    pub locked_until: Option<OffsetDateTime>,
    /// A login to the account succeeded from this address: the owner's own.
    pub succeeded_at: Option<OffsetDateTime>,
}

impl LockoutPolicy {
    /// The row after one more failure at `now`, counted against `threshold`; failures older than
    /// `reset_seconds` are forgotten first.
    pub fn after_failure(&self, row: AttemptRow, threshold: u32, now: OffsetDateTime) -> AttemptRow {
        let fresh = row.last_failure_at.is_some_and(|t| t >= self.reset_before(now));
        let failures = if fresh { row.failures.saturating_add(1) } else { 1 };
        let locked_until = match self.lock_for(failures, threshold) {
            Some(d) => Some(now + d),
            None => row.locked_until.filter(|t| *t > now),
        };
        AttemptRow { failures, last_failure_at: Some(now), locked_until, ..row }
    }

    /// The account-wide row after one more failure at `now`. Unlike an address's lock, which its
    /// own attempts renew, the account-wide lock is earned again only by `threshold` further
    /// failures (its length still doubles, up to the cap), and failures while it is in force
    /// never extend it: an anonymous trickle, one guess whenever the lock passes, cannot keep
    /// new devices out; keeping them out takes `threshold` failures per lock, every one of them
    /// counted.
    pub fn after_account_failure(&self, row: AttemptRow, threshold: u32, now: OffsetDateTime) -> AttemptRow {
        let fresh = row.last_failure_at.is_some_and(|t| t >= self.reset_before(now));
        let failures = if fresh { row.failures.saturating_add(1) } else { 1 };
        let in_force = row.locked_until.filter(|t| *t > now);
        let locked_until = match in_force {
            Some(t) => Some(t),
            None if threshold > 0 && failures >= threshold && failures % threshold == 0 => {
                // the k-th lock lasts as long as an address's lock after k failures past its threshold
                self.lock_for(threshold + failures / threshold - 1, threshold).map(|d| now + d)
            }
            None => None,
        };
        AttemptRow { failures, last_failure_at: Some(now), locked_until, ..row }
    }

    /// The row after a successful login from its address.
    pub fn after_success(row: AttemptRow, now: OffsetDateTime) -> AttemptRow {
        AttemptRow { failures: 0, last_failure_at: None, locked_until: None, succeeded_at: Some(now.max(row.succeeded_at.unwrap_or(now))) }
    }

    /// The lock in force at `now` for an account at an address, from the address's row and the
    /// account-wide row: the address's own, or the account's unless the address is the owner's.
    pub fn lock_in_force(address: Option<&AttemptRow>, account: Option<&AttemptRow>, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let own = address.and_then(|r| r.locked_until).filter(|t| *t > now);
        let owner = address.is_some_and(|r| r.succeeded_at.is_some());
        let wide = if owner { None } else { account.and_then(|r| r.locked_until).filter(|t| *t > now) };
        own.max(wide)
    }
}

/// The per-address rate of password attempts, kept in memory by each instance.
pub trait AttemptLimiter: Send + Sync {
    /// `Err(wait)` when `address` must wait before its next attempt.
    fn check(&self, address: &str) -> Result<(), std::time::Duration>;
}

/// Seconds to put in `Retry-After`: at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let ms = u64::try_from(wait.whole_milliseconds()).unwrap_or(0);
    ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_starts_at_the_threshold_doubles_and_is_capped() {
        let p = LockoutPolicy::default();
        assert_eq!(p.lock_for(4, 5), None);
        assert_eq!(p.lock_for(5, 5), Some(Duration::seconds(30)));
        assert_eq!(p.lock_for(6, 5), Some(Duration::seconds(60)));
        assert_eq!(p.lock_for(7, 5), Some(Duration::seconds(120)));
        assert_eq!(p.lock_for(10, 5), Some(Duration::seconds(900)));
        assert_eq!(p.lock_for(u32::MAX, 5), Some(Duration::seconds(900)), "never longer than the cap");
        assert_eq!(p.lock_for(100, 0), None, "a threshold of 0 turns the lock off");
    }

    #[test]
    fn an_attacker_elsewhere_cannot_keep_the_owner_out_of_their_own_address() {
        let p = LockoutPolicy::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let owner = LockoutPolicy::after_success(AttemptRow::default(), t0);
        let mut attacker = AttemptRow::default();
        let mut account = AttemptRow::default();
        for i in 0..100 {
            let now = t0 + Duration::seconds(i);
            attacker = p.after_failure(attacker, p.threshold, now);
            account = p.after_failure(account, p.account_threshold, now);
        }
        let now = t0 + Duration::seconds(100);
        assert!(LockoutPolicy::lock_in_force(Some(&attacker), Some(&account), now).is_some(), "the attacker is locked out");
        assert!(LockoutPolicy::lock_in_force(None, Some(&account), now).is_some(), "so is any address new to the account");
        assert_eq!(LockoutPolicy::lock_in_force(Some(&owner), Some(&account), now), None, "the owner's address is not");
        let later = now + Duration::seconds(i64::from(p.max_seconds));
        assert_eq!(LockoutPolicy::lock_in_force(Some(&attacker), Some(&account), later), None, "a lock passes, however many failures");
    }

    #[test]
    fn the_account_wide_lock_is_not_renewed_by_a_trickle_nor_extended_while_in_force() {
        let p = LockoutPolicy::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut row = AttemptRow::default();
        for _ in 0..20 {
            row = p.after_account_failure(row, 20, t0);
        }
        assert_eq!(row.locked_until, Some(t0 + Duration::seconds(30)), "the 20th failure locks");
        let during = p.after_account_failure(row.clone(), 20, t0 + Duration::seconds(10));
        assert_eq!(during.locked_until, row.locked_until, "a failure while locked does not extend it");
        // one guess each time the lock has passed: no new lock until 20 more failures
        let mut row = during;
        let mut now = t0 + Duration::seconds(31);
        for _ in 0..18 {
            row = p.after_account_failure(row, 20, now);
            assert_eq!(LockoutPolicy::lock_in_force(None, Some(&row), now), None);
            now += Duration::seconds(900);
        }
        row = p.after_account_failure(row, 20, now);
        assert_eq!(row.failures, 40);
        assert_eq!(row.locked_until, Some(now + Duration::seconds(60)), "the second lock is twice the first");
    }

    #[test]
    fn addresses_are_keyed_on_their_prefix() {
        assert_eq!(address_key("203.0.113.7", 32, 64), "203.0.113.7");
        assert_eq!(address_key("203.0.113.7", 24, 64), "203.0.113.0/24");
        assert_eq!(address_key("2001:db8:1:2:aaaa::1", 32, 64), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9", 32, 64), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8::1", 32, 128), "2001:db8::1");
        assert_eq!(address_key("::ffff:203.0.113.7", 32, 64), "203.0.113.7");
        assert_eq!(address_key("2001:db8::1", 32, 0), "::/0");
        assert_eq!(address_key("unknown", 32, 64), "unknown");
    }

    #[test]
    fn failures_are_forgotten_after_the_reset_time() {
        let p = LockoutPolicy::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut row = AttemptRow::default();
        for _ in 0..4 {
            row = p.after_failure(row, 5, t0);
        }
        let row = p.after_failure(row, 5, t0 + Duration::seconds(i64::from(p.reset_seconds) + 1));
        assert_eq!((row.failures, row.locked_until), (1, None));
    }

    #[test]
    fn a_login_that_is_no_address_is_counted_under_a_key_without_control_characters() {
        assert_eq!(account_key(" Ann@Example.com "), crate::Email::parse("ann@example.com").unwrap().normalized());
        assert_eq!(account_key("Ann\0@example.com"), "ann\u{fffd}@example.com");
        assert_eq!(as_typed("a\0b\nc"), "a\u{fffd}b\u{fffd}c");
        assert_eq!(account_key(&"x".repeat(1000)).len(), 254);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_never_zero() {
        assert_eq!(retry_after_secs(Duration::milliseconds(10)), 1);
        assert_eq!(retry_after_secs(Duration::seconds(30)), 30);
        assert_eq!(retry_after_secs(Duration::milliseconds(30_001)), 31);
        assert_eq!(retry_after_secs(Duration::seconds(-5)), 1);
    }
}
