//! Sessions (token families) and the refresh rotation rule.
//!
//! Every refresh rotates: the presented token is marked rotated and one child is issued. The
//! immediate parent presented again within a short grace window gets the very same child back
//! (its secret is kept sealed for that window), for clients whose response was lost or that raced
//! in two tabs. Any other reuse of a rotated token revokes the whole family. The rule is a pure
//! function; storage runs it inside the one transaction that locks the rows it reads.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{AuthError, TokenHash, TokenProfile, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub Uuid);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One login: the family of every token issued from it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// The OAuth client the family belongs to, if any.
    pub client_id: Option<String>,
    /// Which face opened it (`native`, `simplejwt`, ...).
    pub face: String,
    pub profile: TokenProfile,
    pub created_at: OffsetDateTime,
    /// No token of the family outlives this, however often it is refreshed.
    pub expires_at: OffsetDateTime,
    pub last_refresh_at: Option<OffsetDateTime>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<String>,
    /// What the face needs to render the family's tokens beyond the user (Medods: the GUID).
    pub subject: Option<String>,
}

impl Session {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// A stored refresh token: only its keyed hash, never the secret.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub hash: TokenHash,
    pub session_id: SessionId,
    pub parent: Option<TokenHash>,
    /// The access token issued with it (pair binding, and re-issuing the same pair in grace).
    pub access_jti: Uuid,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub rotated_at: Option<OffsetDateTime>,
    /// The secret sealed under the server key, kept only while the token is the family's newest,
    /// so that its parent presented again within the grace window gets it back.
    pub sealed_secret: Option<Vec<u8>>,
}

/// What storage must do with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Mark it rotated and insert the new child.
    Rotate,
    /// Return the existing child again (grace window); change nothing.
    Reissue,
    /// Change nothing; refuse.
    Refuse(RefreshRefusal),
    /// Revoke the whole family, then refuse.
    RevokeFamily,
}

/// Why a refresh was refused, as the faces see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    Unknown,
    Expired,
    Revoked,
    Reused,
    WrongClient,
    UserBlocked,
    /// The access token presented with it is not the one it was issued with.
    PairMismatch,
}

impl From<RefreshRefusal> for AuthError {
    fn from(r: RefreshRefusal) -> Self {
        match r {
            RefreshRefusal::Unknown => AuthError::TokenInvalid,
            RefreshRefusal::Expired => AuthError::TokenExpired,
            RefreshRefusal::Revoked => AuthError::TokenRevoked,
            RefreshRefusal::Reused => AuthError::TokenReused,
            RefreshRefusal::WrongClient => AuthError::WrongClient,
            RefreshRefusal::UserBlocked => AuthError::UserBlocked,
            RefreshRefusal::PairMismatch => AuthError::PairMismatch,
        }
    }
}

/// The inputs of one decision, as read (and locked) by storage.
#[derive(Debug)]
pub struct RefreshFacts<'a> {
    pub token: &'a RefreshRecord,
    pub session: &'a Session,
    /// The token's child, if it was rotated.
    pub child: Option<&'a RefreshRecord>,
    pub user_active: bool,
    /// The client presenting the token; `None` for faces without OAuth clients.
    pub presenting_client: Option<&'a str>,
    /// For faces that bind a pair: the `jti` of the access token presented with the refresh.
    pub bound_access: Option<Uuid>,
}

/// The rotation rule.
pub fn decide(f: &RefreshFacts<'_>, now: OffsetDateTime, grace: Duration) -> RefreshDecision {
    use RefreshDecision::*;
    // Blocking also revokes every session; the block is the reason the faces should name.
    if !f.user_active {
        return Refuse(RefreshRefusal::UserBlocked);
    }
    if f.session.is_revoked() {
        return Refuse(RefreshRefusal::Revoked);
    }
    if f.session.client_id.as_deref() != f.presenting_client && f.presenting_client.is_some() {
        return Refuse(RefreshRefusal::WrongClient);
    }
    if f.bound_access.is_some_and(|jti| jti != f.token.access_jti) {
        return Refuse(RefreshRefusal::PairMismatch);
    }
    if f.token.expires_at <= now || f.session.expires_at <= now {
        return Refuse(RefreshRefusal::Expired);
    }
    let Some(rotated_at) = f.token.rotated_at else {
        return Rotate;
    };
    // A request whose clock reading precedes the rotation raced with it (it read the time, then
    // waited for the row lock): that is the concurrent case the grace window exists for.
    // A zero window switches the grace path off entirely: strict single use.
    let within_grace = grace > Duration::ZERO && now - rotated_at <= grace;
    match f.child {
        Some(child) if within_grace && child.rotated_at.is_none() && child.sealed_secret.is_some() && child.expires_at > now => Reissue,
        _ => RevokeFamily,
    }
}

/// The child a rotation inserts: the new token of the request, a child of `parent`.
pub fn child_record(session: &Session, parent: &RefreshRecord, new: crate::ports::NewRefresh, now: OffsetDateTime) -> RefreshRecord {
    RefreshRecord {
        hash: new.hash,
        session_id: session.id,
        parent: Some(parent.hash),
        access_jti: new.access_jti,
        issued_at: now,
        expires_at: refresh_expiry(session, now),
        rotated_at: None,
        sealed_secret: Some(new.sealed_secret),
    }
}

/// When a token issued now in `session` expires: its profile's refresh lifetime, capped by the
/// session's absolute expiry.
pub fn refresh_expiry(session: &Session, now: OffsetDateTime) -> OffsetDateTime {
    (now + session.profile.refresh_ttl()).min(session.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
    const GRACE: Duration = Duration::seconds(5);

    fn session() -> Session {
        Session {
            id: SessionId(Uuid::nil()),
            user_id: UserId(1),
            client_id: Some("app".into()),
            face: "native".into(),
            profile: TokenProfile::standard(),
            created_at: T0,
            expires_at: T0 + Duration::days(30),
            last_refresh_at: None,
            ip: None,
            user_agent: None,
            revoked_at: None,
            revoked_reason: None,
            subject: None,
        }
    }

    fn token(byte: u8, parent: Option<u8>) -> RefreshRecord {
        RefreshRecord {
            hash: TokenHash([byte; 32]),
            session_id: SessionId(Uuid::nil()),
            parent: parent.map(|p| TokenHash([p; 32])),
            access_jti: Uuid::nil(),
            issued_at: T0,
            expires_at: T0 + Duration::hours(24),
            rotated_at: None,
            sealed_secret: Some(vec![1, 2, 3]),
        }
    }

    fn facts<'a>(t: &'a RefreshRecord, s: &'a Session, c: Option<&'a RefreshRecord>) -> RefreshFacts<'a> {
        RefreshFacts { token: t, session: s, child: c, user_active: true, presenting_client: Some("app"), bound_access: None }
    }

    #[test]
    fn a_fresh_token_rotates() {
        let (t, s) = (token(1, None), session());
        assert_eq!(decide(&facts(&t, &s, None), T0 + Duration::minutes(1), GRACE), RefreshDecision::Rotate);
    }

    #[test]
    fn the_parent_again_within_grace_gets_the_same_child() {
        let mut t = token(1, None);
        t.rotated_at = Some(T0);
        let c = token(2, Some(1));
        let s = session();
        assert_eq!(decide(&facts(&t, &s, Some(&c)), T0 + Duration::seconds(5), GRACE), RefreshDecision::Reissue);
    }

    #[test]
    fn a_request_that_read_the_clock_before_the_rotation_is_concurrent_not_reuse() {
        let mut t = token(1, None);
        t.rotated_at = Some(T0);
        let c = token(2, Some(1));
        let s = session();
        assert_eq!(decide(&facts(&t, &s, Some(&c)), T0 - Duration::milliseconds(3), GRACE), RefreshDecision::Reissue);
    }

    #[test]
    fn the_parent_again_after_grace_revokes_the_family() {
        let mut t = token(1, None);
        t.rotated_at = Some(T0);
        let c = token(2, Some(1));
        let s = session();
        assert_eq!(decide(&facts(&t, &s, Some(&c)), T0 + Duration::seconds(6), GRACE), RefreshDecision::RevokeFamily);
    }

    #[test]
    fn a_grandparent_within_grace_is_reuse() {
        let mut t = token(1, None);
        t.rotated_at = Some(T0);
        let mut c = token(2, Some(1));
        c.rotated_at = Some(T0 + Duration::seconds(1));
        let s = session();
        assert_eq!(decide(&facts(&t, &s, Some(&c)), T0 + Duration::seconds(2), GRACE), RefreshDecision::RevokeFamily);
    }

    #[test]
    fn zero_grace_makes_every_second_use_reuse() {
        let mut t = token(1, None);
        t.rotated_at = Some(T0);
        let c = token(2, Some(1));
        let s = session();
        assert_eq!(decide(&facts(&t, &s, Some(&c)), T0 + Duration::milliseconds(1), Duration::ZERO), RefreshDecision::RevokeFamily);
        assert_eq!(decide(&facts(&t, &s, Some(&c)), T0 - Duration::milliseconds(1), Duration::ZERO), RefreshDecision::RevokeFamily);
    }

    #[test]
    fn expired_tokens_and_sessions_are_refused_at_the_exact_instant() {
        let (t, s) = (token(1, None), session());
        assert_eq!(decide(&facts(&t, &s, None), t.expires_at, GRACE), RefreshDecision::Refuse(RefreshRefusal::Expired));
        assert_eq!(decide(&facts(&t, &s, None), t.expires_at - Duration::seconds(1), GRACE), RefreshDecision::Rotate);
        let mut short = session();
        short.expires_at = T0 + Duration::minutes(10);
        assert_eq!(decide(&facts(&t, &short, None), T0 + Duration::minutes(10), GRACE), RefreshDecision::Refuse(RefreshRefusal::Expired));
    }

    #[test]
    fn revoked_sessions_blocked_users_and_other_clients_are_refused() {
        let t = token(1, None);
        let mut s = session();
        s.revoked_at = Some(T0);
        assert_eq!(decide(&facts(&t, &s, None), T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::Revoked));
        let s = session();
        let mut f = facts(&t, &s, None);
        f.user_active = false;
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::UserBlocked));
        let mut f = facts(&t, &s, None);
        f.presenting_client = Some("other");
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::WrongClient));
    }

    #[test]
    fn a_bound_pair_must_present_its_own_access_token() {
        let t = token(1, None);
        let s = session();
        let mut f = facts(&t, &s, None);
        f.bound_access = Some(Uuid::from_u128(7));
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::PairMismatch));
        f.bound_access = Some(t.access_jti);
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Rotate);
    }

    #[test]
    fn child_expiry_is_capped_by_the_session() {
        let mut s = session();
        assert_eq!(refresh_expiry(&s, T0), T0 + Duration::hours(24));
        s.expires_at = T0 + Duration::hours(1);
        assert_eq!(refresh_expiry(&s, T0), T0 + Duration::hours(1));
    }
}
