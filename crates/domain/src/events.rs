//! What the use-cases report as they decide: logins, refreshes, revocations. The API crate turns
//! them into metrics; nothing here knows how they are kept.

/// A login attempt's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok,
    /// Wrong e-mail or password (or a blocked user).
    Failed,
    /// Too many attempts from the address.
    Throttled,
    /// The account is locked out at the address.
    Locked,
}

/// A refresh's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new pair; the presented token is spent.
    Rotated,
    /// The parent presented again within the grace window: the same child again.
    ReissuedInGrace,
    /// A new access token; the refresh token stays (`reuse` policy).
    AccessOnly,
    /// A spent token presented again: its family is revoked.
    ReuseDetected,
    /// Refused for any other reason (invalid, expired, revoked, another face, a risk rule).
    Refused,
}

impl LoginOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Ok => "ok",
            LoginOutcome::Failed => "failed",
            LoginOutcome::Throttled => "throttled",
            LoginOutcome::Locked => "locked",
        }
    }
}

impl RefreshOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshOutcome::Rotated => "rotated",
            RefreshOutcome::ReissuedInGrace => "reissued_in_grace",
            RefreshOutcome::AccessOnly => "access_only",
            RefreshOutcome::ReuseDetected => "reuse_detected",
            RefreshOutcome::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Login {
        face: &'a str,
        outcome: LoginOutcome,
    },
    Refresh {
        face: &'a str,
        outcome: RefreshOutcome,
    },
    /// Sessions ended, with the reason recorded on them.
    Revoked {
        reason: &'a str,
        sessions: u64,
    },
}

/// Where events go. Called on the request's path: it must not block.
pub trait EventSink: Send + Sync {
    fn record(&self, event: Event<'_>);
}
