//! Sessions (token families) and the refresh rotation rule.
//!
//! Every refresh rotates: the presented token is marked rotated and one child is issued. The
//! immediate parent presented again within a short grace window gets the very same child back
//! (its secret is kept sealed for that window), for clients whose response was lost or that raced
//! in two tabs. Any other reuse of a rotated token revokes the whole family. The rule is a pure
//! function; storage runs it inside the one transaction that locks the rows it reads.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::risk::{RequestMeta, RiskAction, RiskCondition, RiskRule, RiskSignal, assess, strictest};
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
    /// The key the family's tokens are bound to (DPoP, RFC 9449): its RFC 7638 thumbprint.
    /// Every refresh must then prove possession of it, and every access token carries it.
    pub dpop_jkt: Option<String>,
}

impl Session {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// What a rotation records: the address and User-Agent of the request, where it had them.
    pub fn record_request(&mut self, req: &RequestMeta) {
        if let Some(ip) = &req.ip {
            self.ip = Some(ip.clone());
        }
        if let Some(ua) = &req.user_agent {
            self.user_agent = Some(ua.clone());
        }
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
    /// The pair issued with it (access and refresh token, as answered), sealed under the server
    /// key, kept as long as `sealed_secret`: the parent presented again within the grace window
    /// gets these very bytes back, whether or not a new signature would give the same ones.
    pub sealed_pair: Option<Vec<u8>>,
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
    /// A risk rule refused the refresh: revoke the family (or, with `user`, every session of
    /// the user), then refuse with [`RefreshRefusal::RiskRevoked`].
    RiskRevoke { condition: RiskCondition, user: bool },
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
    /// The token's session was opened by a face outside the presenting face's audience.
    WrongFace,
    /// The session's tokens are bound to a key (DPoP) and the request proved another, or none;
    /// or the request proved a key for a session bound to none.
    KeyMismatch,
    /// A risk rule refused the refresh and changed nothing.
    RiskDenied(RiskCondition),
    /// A risk rule refused the refresh and revoked sessions.
    RiskRevoked(RiskCondition),
    /// The token's session was opened by a face that refreshes by reuse (see
    /// [`RefreshFacts::not_rotated`]): such a token is never rotated, wherever it is presented.
    /// Nothing was changed, and nothing else about the token was decided: the refresh goes on
    /// under the reuse policy, whose own checks give the answer.
    NotRotated,
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
            RefreshRefusal::WrongFace => AuthError::WrongAudience,
            RefreshRefusal::KeyMismatch => AuthError::DpopKeyMismatch,
            RefreshRefusal::RiskDenied(c) => AuthError::RiskRefused { condition: c, revoked: false },
            RefreshRefusal::RiskRevoked(c) => AuthError::RiskRefused { condition: c, revoked: true },
            // the refresh answers it under the reuse policy; a caller that names no such faces
            // never sees it
            RefreshRefusal::NotRotated => AuthError::TokenInvalid,
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
    /// The faces whose sessions the presenting face may refresh (its audience); `None` only for
    /// storage-level callers that act for no face.
    pub faces: Option<&'a [String]>,
    /// Faces among `faces` that refresh by reuse: a token of their sessions is not rotated here
    /// ([`RefreshRefusal::NotRotated`], before any other rule). A token lives by the policy of
    /// the face that issued it, and the rotation's own read of the session tells which one that
    /// is, so the presenting face need not read the token first to learn it.
    pub not_rotated: &'a [String],
    /// Where the request comes from, and the presenting face's risk rules.
    pub request: &'a RequestMeta,
    pub rules: &'a [RiskRule],
    /// The key the request proved possession of (DPoP), by its thumbprint.
    pub dpop_jkt: Option<&'a str>,
}

/// A decision with the risk signals that matched on the way (for `Notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: RefreshDecision,
    pub signals: Vec<RiskSignal>,
}

/// The rotation rule.
pub fn decide(f: &RefreshFacts<'_>, now: OffsetDateTime, grace: Duration) -> RefreshDecision {
    decide_with_risk(f, now, grace).decision
}

/// The rotation rule, then the presenting face's risk rules on a refresh that would go ahead.
pub fn decide_with_risk(f: &RefreshFacts<'_>, now: OffsetDateTime, grace: Duration) -> Verdict {
    let decision = rotation_rule(f, now, grace);
    if !matches!(decision, RefreshDecision::Rotate | RefreshDecision::Reissue) {
        return Verdict { decision, signals: vec![] };
    }
    let signals = assess(f.rules, f.session.ip.as_deref(), f.session.user_agent.as_deref(), f.request);
    let strict = signals.iter().filter(|s| s.action == strictest(&signals)).map(|s| s.condition).next();
    let decision = match (strictest(&signals), strict) {
        (RiskAction::Deny, Some(c)) => RefreshDecision::Refuse(RefreshRefusal::RiskDenied(c)),
        (RiskAction::RevokeFamily, Some(c)) => RefreshDecision::RiskRevoke { condition: c, user: false },
        (RiskAction::RevokeUser, Some(c)) => RefreshDecision::RiskRevoke { condition: c, user: true },
        _ => decision,
    };
    Verdict { decision, signals }
}

fn rotation_rule(f: &RefreshFacts<'_>, now: OffsetDateTime, grace: Duration) -> RefreshDecision {
    use RefreshDecision::*;
    // Not this rotation's to decide at all: the reuse policy's checks answer it.
    if f.not_rotated.contains(&f.session.face) {
        return Refuse(RefreshRefusal::NotRotated);
    }
    // Blocking also revokes every session; the block is the reason the faces should name.
    if !f.user_active {
        return Refuse(RefreshRefusal::UserBlocked);
    }
    if f.session.is_revoked() {
        return Refuse(RefreshRefusal::Revoked);
    }
    if f.faces.is_some_and(|faces| !faces.contains(&f.session.face)) {
        return Refuse(RefreshRefusal::WrongFace);
    }
    if f.session.client_id.as_deref() != f.presenting_client && f.presenting_client.is_some() {
        return Refuse(RefreshRefusal::WrongClient);
    }
    if f.bound_access.is_some_and(|jti| jti != f.token.access_jti) {
        return Refuse(RefreshRefusal::PairMismatch);
    }
    // a bound session's refresh token is worth nothing without its key (RFC 9449 §5)
    if f.session.dpop_jkt.as_deref() != f.dpop_jkt {
        return Refuse(RefreshRefusal::KeyMismatch);
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
pub fn child_record(session: &Session, parent: &RefreshRecord, new: NewRefresh, now: OffsetDateTime) -> RefreshRecord {
    RefreshRecord {
        hash: new.hash,
        session_id: session.id,
        parent: Some(parent.hash),
        access_jti: new.access_jti,
        issued_at: now,
        expires_at: refresh_expiry(session, now),
        rotated_at: None,
        sealed_secret: Some(new.sealed_secret),
        sealed_pair: None,
    }
}

/// When a token issued now in `session` expires: its profile's refresh lifetime, capped by the
/// session's absolute expiry.
pub fn refresh_expiry(session: &Session, now: OffsetDateTime) -> OffsetDateTime {
    (now + session.profile.refresh_ttl()).min(session.expires_at)
}

/// A new refresh token, prepared by the use-case before the storage call.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub hash: TokenHash,
    pub sealed_secret: Vec<u8>,
    pub access_jti: uuid::Uuid,
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
            dpop_jkt: None,
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
            sealed_pair: None,
        }
    }

    const NO_REQUEST: &RequestMeta = &RequestMeta { ip: None, user_agent: None };

    fn facts<'a>(t: &'a RefreshRecord, s: &'a Session, c: Option<&'a RefreshRecord>) -> RefreshFacts<'a> {
        RefreshFacts {
            token: t,
            session: s,
            child: c,
            user_active: true,
            presenting_client: Some("app"),
            bound_access: None,
            faces: None,
            not_rotated: &[],
            request: NO_REQUEST,
            rules: &[],
            dpop_jkt: None,
        }
    }

    /// A reusing face's token is not the rotation's to decide, whatever else holds of it: the
    /// reuse policy's checks give the answer, so none of the rules below may speak first.
    #[test]
    fn a_token_of_a_face_that_reuses_is_refused_before_any_other_rule() {
        let (t, mut s) = (token(1, None), session());
        let not_rotated = ["native".to_owned()];
        let f = RefreshFacts { not_rotated: &not_rotated, ..facts(&t, &s, None) };
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::NotRotated));
        s.revoked_at = Some(T0);
        let f = RefreshFacts { not_rotated: &not_rotated, user_active: false, ..facts(&t, &s, None) };
        assert_eq!(decide(&f, T0 + Duration::days(90), GRACE), RefreshDecision::Refuse(RefreshRefusal::NotRotated));
        // another face's session is decided as before
        let other = ["django".to_owned()];
        let f = RefreshFacts { not_rotated: &other, ..facts(&t, &s, None) };
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::Revoked));
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

    #[test]
    fn a_face_refreshes_only_sessions_of_its_audience() {
        let t = token(1, None);
        let s = session();
        let mut f = facts(&t, &s, None);
        let medods = ["medods".to_owned()];
        f.faces = Some(&medods);
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::WrongFace));
        let natives = ["native".to_owned(), "other".to_owned()];
        f.faces = Some(&natives);
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Rotate);
    }

    #[test]
    fn risk_rules_apply_to_a_refresh_that_would_go_ahead() {
        let t = token(1, None);
        let mut s = session();
        s.ip = Some("10.0.0.1".into());
        s.user_agent = Some("app/1".into());
        let rules = [
            RiskRule { when: RiskCondition::IpChanged, then: RiskAction::Notify },
            RiskRule { when: RiskCondition::UserAgentChanged, then: RiskAction::RevokeUser },
        ];
        let new_ip = RequestMeta { ip: Some("10.0.0.2".into()), user_agent: Some("app/1".into()) };
        let mut f = facts(&t, &s, None);
        f.rules = &rules;
        f.request = &new_ip;
        let v = decide_with_risk(&f, T0, GRACE);
        assert_eq!((v.decision, v.signals.len()), (RefreshDecision::Rotate, 1));
        let new_ua = RequestMeta { ip: Some("10.0.0.1".into()), user_agent: Some("other/2".into()) };
        f.request = &new_ua;
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::RiskRevoke { condition: RiskCondition::UserAgentChanged, user: true });
        // an invalid token is refused for what it is, whatever the request looks like
        let mut expired = token(1, None);
        expired.expires_at = T0;
        let mut f = facts(&expired, &s, None);
        f.rules = &rules;
        f.request = &new_ua;
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::Expired));
    }

    #[test]
    fn a_deny_rule_refuses_without_revoking() {
        let t = token(1, None);
        let mut s = session();
        s.ip = Some("10.0.0.1".into());
        let rules = [RiskRule { when: RiskCondition::IpChanged, then: RiskAction::Deny }];
        let req = RequestMeta { ip: Some("10.0.0.9".into()), user_agent: None };
        let mut f = facts(&t, &s, None);
        f.rules = &rules;
        f.request = &req;
        assert_eq!(decide(&f, T0, GRACE), RefreshDecision::Refuse(RefreshRefusal::RiskDenied(RiskCondition::IpChanged)));
    }
}
