//! Token profiles: how long access and refresh tokens live.

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::DomainError;

/// A named pair of lifetimes. Built only through [`TokenProfile::new`] or the presets, so the
/// rule "access shorter than refresh, both positive" always holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenProfile {
    name: String,
    access_ttl_seconds: i64,
    refresh_ttl_seconds: i64,
}

impl TokenProfile {
    pub const STANDARD: &'static str = "standard";
    pub const EXTENDED: &'static str = "extended";

    pub fn new(name: impl Into<String>, access: Duration, refresh: Duration) -> Result<Self, DomainError> {
        let name = name.into();
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(DomainError::invalid("profile", "a profile name is 1-64 characters of [A-Za-z0-9_-]"));
        }
        if access <= Duration::ZERO || refresh <= Duration::ZERO {
            return Err(DomainError::invalid("profile", format!("profile {name}: lifetimes must be positive")));
        }
        if access >= refresh {
            return Err(DomainError::invalid(
                "profile",
                format!("profile {name}: the access lifetime must be shorter than the refresh lifetime"),
            ));
        }
        Ok(Self { name, access_ttl_seconds: access.whole_seconds(), refresh_ttl_seconds: refresh.whole_seconds() })
    }

    /// Access 5 minutes, refresh 24 hours (simplejwt's defaults).
    pub fn standard() -> Self {
        Self { name: Self::STANDARD.into(), access_ttl_seconds: 5 * 60, refresh_ttl_seconds: 24 * 3600 }
    }

    /// Access 2 hours, refresh 90 days.
    pub fn extended() -> Self {
        Self { name: Self::EXTENDED.into(), access_ttl_seconds: 2 * 3600, refresh_ttl_seconds: 90 * 24 * 3600 }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn access_ttl(&self) -> Duration {
        Duration::seconds(self.access_ttl_seconds)
    }
    pub fn refresh_ttl(&self) -> Duration {
        Duration::seconds(self.refresh_ttl_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_lifetimes() {
        assert_eq!(TokenProfile::standard().access_ttl(), Duration::minutes(5));
        assert_eq!(TokenProfile::standard().refresh_ttl(), Duration::hours(24));
        assert_eq!(TokenProfile::extended().access_ttl(), Duration::hours(2));
        assert_eq!(TokenProfile::extended().refresh_ttl(), Duration::days(90));
    }

    #[test]
    fn access_must_be_shorter_than_refresh() {
        assert!(TokenProfile::new("x", Duration::hours(1), Duration::hours(1)).is_err());
        assert!(TokenProfile::new("x", Duration::hours(2), Duration::hours(1)).is_err());
        assert!(TokenProfile::new("x", Duration::minutes(1), Duration::hours(1)).is_ok());
    }

    #[test]
    fn lifetimes_must_be_positive_and_names_tidy() {
        assert!(TokenProfile::new("x", Duration::ZERO, Duration::hours(1)).is_err());
        assert!(TokenProfile::new("x", Duration::seconds(-5), Duration::hours(1)).is_err());
        assert!(TokenProfile::new("bad name", Duration::minutes(1), Duration::hours(1)).is_err());
        assert!(TokenProfile::new("", Duration::minutes(1), Duration::hours(1)).is_err());
    }
}
