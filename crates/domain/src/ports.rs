//! The ports: what the use-cases need from storage and from the runtime. Storage implements the
//! repository traits; each call that must be atomic (rotation above all) is one call, so the
//! domain never holds a transaction open across calls.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::risk::{RequestMeta, RiskRule, RiskSignal};
// data the ports carry, defined beside the rules that make them (so that neither imports the ports)
pub use crate::keys::StoredKey;
pub use crate::rotation::NewRefresh;
use crate::rotation::RefreshRefusal;
use crate::{
    DomainError, Email, KeyState, OAuthClient, Password, PasswordHash, RefreshRecord, RepoError, Session, SessionId, TokenHash, User,
    UserId, UserStatus,
};

#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Fails with `RepoError::Conflict("users_email_key")` when the e-mail is taken
    /// (case-insensitively).
    async fn create_user(&self, email: &Email, password: Option<&PasswordHash>, now: OffsetDateTime) -> Result<User, RepoError>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, RepoError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, RepoError>;
    /// Sets the status; blocking also revokes every live session of the user in the same
    /// transaction and returns their ids.
    async fn set_user_status(&self, id: UserId, status: UserStatus, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError>;
    async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>, RepoError>;
    /// Creates a user without a password, linked to an external identity, in one transaction;
    /// when another request linked it first, returns that user.
    async fn create_user_with_identity(&self, provider: &str, subject: &str, email: &Email, now: OffsetDateTime)
    -> Result<User, RepoError>;
    /// Stores a user carried over from the deployment `origin` (`django`, `flask`) with its id
    /// kept: the original's tokens carry it. `Ok(false)` when that very user is here already (an
    /// import run again: the same id, origin and e-mail), and nothing changes. Fails with
    /// `RepoError::Conflict("users_pkey")` when the id belongs to another user (one registered
    /// here, or from another deployment), and `RepoError::Conflict("users_email_key")` when the
    /// e-mail does: a collision is never a silent skip.
    async fn import_user(&self, user: &User, origin: &str) -> Result<bool, RepoError>;
    /// The user with that id who came over from `origin`: `None` for a user registered here, one
    /// from another deployment, and one the import did not carry over.
    async fn user_from(&self, origin: &str, id: UserId) -> Result<Option<User>, RepoError>;
    /// Moves the user id sequence past `up_to` (never back): no id the old deployment gave out
    /// is given out again.
    async fn reserve_user_ids(&self, up_to: i64) -> Result<(), RepoError>;
    /// Records that an import from `origin` has started (again). Its legacy tokens are not
    /// honoured until [`Self::finish_import`], and stay honoured once it has finished once.
    async fn start_import(&self, origin: &str, now: OffsetDateTime) -> Result<(), RepoError>;
    async fn finish_import(&self, origin: &str, now: OffsetDateTime) -> Result<(), RepoError>;
    /// Whether an import from `origin` has finished.
    async fn import_finished(&self, origin: &str) -> Result<bool, RepoError>;
    /// Replaces the password hash `old` of a user by `new`, the same password hashed again in
    /// Tessera's format; nothing changes if the hash is no longer `old`. `Ok(false)` then: the
    /// password was changed meanwhile.
    async fn rehash_password(&self, id: UserId, old: &PasswordHash, new: &PasswordHash) -> Result<bool, RepoError>;
    /// Password hashes that do not start with `current` (Tessera's hash prefix at its current
    /// parameters): imported or older hashes, still to be re-hashed at their user's next login.
    /// Those of users with an id above `after`, in id order, at most `limit`.
    async fn stale_password_hashes(&self, current: &str, after: i64, limit: u32) -> Result<Vec<(UserId, PasswordHash)>, RepoError>;
    /// Users in id order, those with an id above `after`, at most `limit`.
    async fn list_users(&self, after: i64, limit: u32) -> Result<Vec<User>, RepoError>;
    /// An administrator sets a new password: stored with `password_changed_at = now`. Returns
    /// whether the user exists.
    async fn set_password(&self, id: UserId, hash: &PasswordHash, now: OffsetDateTime) -> Result<bool, RepoError>;
    /// Deletes a user, in one transaction: every live session revoked (so each instance learns
    /// of it), external identities unlinked, and the e-mail and password erased. The row stays,
    /// blocked, as `deleted-<id>@deleted.invalid` ([`crate::Email::deleted`]) compared by
    /// [`crate::Email::deleted_key`], which no address has, and with no origin (it answers no
    /// legacy token): ids are never given out again, and the revoked sessions and audit events
    /// keep their user. `NotFound` when there is no such user.
    async fn delete_user(&self, id: UserId, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError>;
    /// Normalizes again the e-mails stored under an older rule than `version`, with `normalize`
    /// (`None`: the address is no longer valid, and keeps its old form). A user whose new form
    /// another user has keeps the old one. Returns the ids updated and the ids left as they were.
    async fn renormalize_emails(
        &self,
        version: i64,
        normalize: for<'s> fn(&'s str) -> Option<String>,
    ) -> Result<(Vec<UserId>, Vec<UserId>), RepoError> {
        let _ = (version, normalize);
        Ok((vec![], vec![]))
    }
}

/// Failed password attempts per account (the normalised login, whether or not such a user
/// exists) and client address, and the locks they earn (see [`crate::throttle`]).
#[async_trait]
pub trait LoginAttemptRepository: Send + Sync {
    /// The lock in force for `account` at `address`, if any: the address's own, or the
    /// account-wide one unless a login to the account has succeeded from this address.
    async fn login_lock(&self, account: &str, address: &str, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, RepoError>;
    /// Counts a failure at `address` and for the account as a whole, in one transaction, and
    /// sets the locks `policy` gives for the new counts. Returns the lock now in force at
    /// `address`, if any.
    async fn login_failed(
        &self,
        account: &str,
        address: &str,
        now: OffsetDateTime,
        policy: &crate::LockoutPolicy,
    ) -> Result<Option<OffsetDateTime>, RepoError>;
    /// A login succeeded from `address`: its failures are forgotten, and the address is the
    /// account owner's from now on.
    async fn login_succeeded(&self, account: &str, address: &str, now: OffsetDateTime) -> Result<(), RepoError>;
    /// Forgets rows whose last failure and last success are both older than `before`.
    async fn prune_login_attempts(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}

/// The audit trail (see [`crate::audit`]).
#[async_trait]
pub trait AuditRepository: Send + Sync {
    /// Appends an event outside any other change (a failed login, a key rotation).
    async fn append_audit(&self, event: &crate::audit::NewAuditEvent) -> Result<(), RepoError>;
    /// Seals up to `limit` unsealed events, in the order they were written, after the last sealed
    /// one. One sealer at a time, across instances. Only events written after the newest sealed
    /// one (by id) are sealed: an unsealed event below it had its seal cleared by hand and is
    /// never sealed again (see `audit_unsealed_below_head`). With `after`, nothing is sealed
    /// unless the chain still holds that point (`Sealing::Diverged`).
    async fn seal_audit(
        &self,
        chain: &crate::audit::AuditChain,
        limit: u32,
        after: Option<&crate::audit::ChainPoint>,
    ) -> Result<crate::audit::Sealing, RepoError>;
    /// Sealed events after position `after_seq`, in chain order.
    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<crate::audit::AuditRecord>, RepoError>;
    /// Events not sealed yet.
    async fn audit_unsealed(&self) -> Result<u64, RepoError>;
    /// The lowest id of an unsealed event below the newest sealed event's id: a sealed event
    /// whose seal was cleared by hand (the sealer never leaves one behind).
    async fn audit_unsealed_below_head(&self) -> Result<Option<i64>, RepoError>;
    /// Where the sealed chain ends and how many sealed events it holds (not checked).
    async fn audit_head(&self) -> Result<Option<(crate::audit::ChainPoint, u64)>, RepoError>;
    /// Events, newest first, of a user and/or since a time.
    async fn audit_events(
        &self,
        user: Option<i64>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<crate::audit::AuditRecord>, RepoError>;
}

#[async_trait]
pub trait ClientRepository: Send + Sync {
    /// Fails with `RepoError::Conflict("clients_pkey")` when the id is taken.
    async fn create_client(&self, client: &OAuthClient) -> Result<(), RepoError>;
    async fn client_by_id(&self, client_id: &str) -> Result<Option<OAuthClient>, RepoError>;
    /// Every client, by id.
    async fn list_clients(&self) -> Result<Vec<OAuthClient>, RepoError>;
    /// Stores a client's name, secret hash and profile; `false` when there is no such client.
    async fn update_client(&self, client: &OAuthClient) -> Result<bool, RepoError>;
    /// Deletes a client, in one transaction: its live sessions are revoked and keep no link to
    /// it. Returns the sessions revoked; `NotFound` when there is no such client.
    async fn delete_client(&self, client_id: &str, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError>;
}

/// Renders and seals the answer to a rotation (the child's pair) from the session and the child
/// record, inside the rotation's transaction: see [`RotateRequest::seal_answer`].
pub type SealAnswer<'a> = dyn Fn(&Session, &RefreshRecord) -> Result<Vec<u8>, RepoError> + Send + Sync + 'a;

pub struct RotateRequest<'a> {
    pub presented: TokenHash,
    /// Where the presented token lives (its user's [`crate::Route`]).
    pub route: crate::Route,
    pub presenting_client: Option<&'a str>,
    pub now: OffsetDateTime,
    pub grace: Duration,
    pub child: NewRefresh,
    /// For faces that bind a pair: the `jti` of the access token presented with the refresh.
    pub bound_access: Option<uuid::Uuid>,
    /// The faces whose sessions may be refreshed here (see [`crate::rotation::RefreshFacts`]).
    pub faces: Option<&'a [String]>,
    /// The faces whose tokens are not rotated (see [`crate::rotation::RefreshFacts::not_rotated`]).
    pub not_rotated: &'a [String],
    /// Where the request comes from; a rotation records it on the session.
    pub request: &'a RequestMeta,
    pub rules: &'a [RiskRule],
    /// The key the request proved possession of (DPoP), by its thumbprint.
    pub dpop_jkt: Option<&'a str>,
    /// Called once the rotation is decided, before the child is inserted, with the session as
    /// the rotation leaves it (its last refresh, address and User-Agent): what it returns is
    /// stored as the child's `sealed_pair`, so that a retry within the grace window is answered
    /// with the bytes of the first answer. An error aborts the rotation.
    pub seal_answer: &'a SealAnswer<'a>,
}

impl std::fmt::Debug for RotateRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateRequest")
            .field("now", &self.now)
            .field("grace", &self.grace)
            .field("presenting_client", &self.presenting_client)
            .field("faces", &self.faces)
            .field("not_rotated", &self.not_rotated)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub enum RotateOutcome {
    /// The presented token was rotated into `child` (the request's new token).
    Rotated { session: Session, child: RefreshRecord, signals: Vec<RiskSignal> },
    /// Within the grace window: the presented token's existing child, unchanged.
    Reissued { session: Session, child: RefreshRecord, signals: Vec<RiskSignal> },
    /// Refused; `revoked` lists the sessions revoked in the same transaction (reuse, or a risk
    /// rule's revocation).
    Refused { refusal: RefreshRefusal, session: Option<SessionId>, revoked: Vec<SessionId> },
}

#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Inserts a session and its first refresh token, atomically.
    async fn open_session(&self, session: &Session, first: &RefreshRecord) -> Result<(), RepoError>;
    /// [`Self::open_session`] after a password login, with the login's success recorded as
    /// [`LoginAttemptRepository::login_succeeded`] records it (at the session's `created_at`),
    /// in the same write: on SQLite one turn at the single writer instead of two, on Postgres one
    /// statement instead of two.
    async fn open_session_after_login(
        &self,
        session: &Session,
        first: &RefreshRecord,
        account: &str,
        address: &str,
    ) -> Result<(), RepoError>;
    /// Runs [`crate::rotation::decide`] on the locked rows and applies its decision, in one
    /// transaction: two concurrent calls with one token never both rotate.
    async fn rotate(&self, req: RotateRequest<'_>) -> Result<RotateOutcome, RepoError>;
    /// A refresh token and its session, on `route` (`None`: wherever it is, for tokens issued
    /// before routing keys and for admin tools).
    async fn refresh_by_hash(&self, hash: TokenHash, route: Option<crate::Route>) -> Result<Option<(RefreshRecord, Session)>, RepoError>;
    /// Whether a refresh token issued before routing keys (its bytes name no route) may still
    /// be live at `now`: while one may, a token not found on its route is looked for everywhere.
    async fn unrouted_tokens_live(&self, now: OffsetDateTime) -> Result<bool, RepoError>;
    /// A session, on `route` when it is known.
    async fn session(&self, id: SessionId, route: Option<crate::Route>) -> Result<Option<Session>, RepoError>;
    /// The user's live sessions at `now`: not revoked, not past their lifetime, and holding a
    /// refresh token that has neither expired nor been rotated. Newest first, at most `limit`.
    async fn sessions_of_user(&self, user: UserId, now: OffsetDateTime, limit: u32) -> Result<Vec<Session>, RepoError>;
    /// Revokes one session; `false` when it was already revoked or does not exist.
    async fn revoke_session(&self, id: SessionId, route: crate::Route, reason: &str, now: OffsetDateTime) -> Result<bool, RepoError>;
    /// Revokes every live session of a user but `except`; returns the ids revoked.
    async fn revoke_user_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, RepoError>;
    /// Sessions revoked at or after `since`: what an instance loads into its revocation list.
    async fn revoked_since(&self, since: OffsetDateTime) -> Result<Vec<(SessionId, OffsetDateTime)>, RepoError>;
    /// The longest access-token lifetime of the sessions an access token of which may still be
    /// live at `now` (sessions keep the lifetimes they were opened with, whatever the
    /// configuration says today); `None` when there is none.
    async fn longest_live_access_ttl(&self, now: OffsetDateTime) -> Result<Option<time::Duration>, RepoError>;
    /// Revokes every live session of a user with one OAuth client; returns the ids revoked.
    async fn revoke_client_sessions(
        &self,
        user: UserId,
        client_id: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, RepoError>;
    /// Ends the live refresh tokens of a user's sessions with one client, leaving the sessions
    /// (and their access tokens, until they expire) alone; returns how many.
    async fn expire_client_refresh_tokens(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<u64, RepoError>;
    /// Drops the sealed secret of every refresh token issued before `before`: once its grace
    /// window has passed, nothing will hand it out again. Returns how many.
    async fn drop_sealed_secrets(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
    /// Records when sessions' refresh tokens were last used without being rotated (a face that
    /// reuses them): each session's `last_refresh_at` moves forward to its instant, never back.
    async fn record_session_uses(&self, uses: &[(SessionId, crate::Route, OffsetDateTime)]) -> Result<(), RepoError>;
    /// Every refresh record of a session, oldest first (admin tools and tests).
    async fn family(&self, session: SessionId) -> Result<Vec<RefreshRecord>, RepoError>;
}

#[async_trait]
pub trait Health: Send + Sync {
    /// Answers when the store can serve (readiness).
    async fn ping(&self) -> Result<(), RepoError>;
    /// The connection pool now: (open, idle, maximum).
    fn pool_stats(&self) -> Option<(u32, u32, u32)> {
        None
    }
}

#[async_trait]
pub trait KeyRepository: Send + Sync {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, RepoError>;
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), RepoError>;
    /// Inserts `candidate` unless an active key of its algorithm exists, serialised across
    /// instances so that a fleet starting at once agrees on one key; returns every key.
    async fn ensure_signing_key(&self, candidate: &StoredKey) -> Result<Vec<StoredKey>, RepoError>;
    /// Runs [`crate::key_schedule::plan`] on the keys of `candidate`'s algorithm and applies it,
    /// in one transaction serialised across instances (`Publish` inserts `candidate` as `next`);
    /// returns the changes made.
    async fn schedule_keys(
        &self,
        candidate: &StoredKey,
        now: OffsetDateTime,
        schedule: &crate::key_schedule::KeySchedule,
    ) -> Result<Vec<crate::key_schedule::KeyChange>, RepoError>;
    /// Sets a key's state now (activating stamps `activated_at`, retiring `retired_at`).
    async fn set_key_state(&self, kid: &str, state: KeyState, now: OffsetDateTime) -> Result<bool, RepoError>;
    /// Removes a key: tokens it signed are refused from then on (a compromised key).
    async fn delete_signing_key(&self, kid: &str) -> Result<bool, RepoError>;
}

/// What a trusted identity provider (an OpenID Connect issuer) says of an ID token it issued:
/// whose it is, and the e-mail address the provider verified, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub subject: String,
    /// Only an address the provider says it verified: anyone can put an unverified one in a
    /// profile and squat it before its owner registers.
    pub verified_email: Option<String>,
}

/// A trusted identity provider: checks an ID token against the provider's keys, issuer,
/// audience and times. Implemented outside the domain (it fetches the provider's keys).
#[async_trait]
pub trait IdentityVerifier: Send + Sync {
    /// `None` when the token is not a valid, unexpired token of this provider for this
    /// application.
    async fn verify(&self, token: &str) -> Option<ExternalIdentity>;
}

/// Everything the use-cases need from storage.
pub trait Store:
    UserRepository + ClientRepository + SessionRepository + KeyRepository + LoginAttemptRepository + AuditRepository + ProofRepository + Health
{
}
impl<
    T: UserRepository
        + ClientRepository
        + SessionRepository
        + KeyRepository
        + LoginAttemptRepository
        + AuditRepository
        + ProofRepository
        + Health,
> Store for T
{
}

/// The DPoP proofs seen (RFC 9449 §11.1): a proof is used once, on any instance.
#[async_trait]
pub trait ProofRepository: Send + Sync {
    /// Records a proof by `key` (a keyed hash of its key's thumbprint and its `jti`) until
    /// `expires_at`. `false`: it was seen before, and the request is a replay.
    async fn remember_proof(&self, key: TokenHash, expires_at: OffsetDateTime) -> Result<bool, RepoError>;
    /// Forgets the proofs whose window ended before `before`; how many.
    async fn prune_proofs(&self, before: OffsetDateTime) -> Result<u64, RepoError>;
}

/// Password hashing, run wherever the runtime wants it (a bounded blocking pool in the server).
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    async fn hash(&self, password: Password) -> Result<PasswordHash, DomainError>;
    /// The hash of a new account's password: like [`PasswordHasher::hash`], but registrations
    /// may take only a share of the hashing capacity, so that a registration flood cannot keep
    /// logins from being checked.
    async fn hash_new_account(&self, password: Password) -> Result<PasswordHash, DomainError> {
        self.hash(password).await
    }
    /// `None` verifies against a dummy hash and answers `false`, at the same cost.
    async fn verify(&self, password: Password, hash: Option<PasswordHash>) -> Result<bool, DomainError>;
    /// Whether a hash that verified should be hashed again (an imported format, old parameters).
    fn needs_rehash(&self, _hash: &PasswordHash) -> bool {
        false
    }
    /// Measures what verifying each of `samples` (one stored hash of each kind still to be
    /// re-hashed) and the dummy hash costs, and holds every failed verification to the
    /// costliest of them from now on. Returns that floor.
    async fn calibrate(&self, samples: Vec<PasswordHash>) -> Result<std::time::Duration, DomainError> {
        let _ = samples;
        Ok(std::time::Duration::ZERO)
    }
    /// What every hash at the current parameters starts with (`None`: every hash is current).
    fn current_prefix(&self) -> Option<String> {
        None
    }
    /// `Err(Overloaded)` when no more hashes can wait now, so that a login in a flood is refused
    /// before it costs a database read. The bound is checked again when the hash is queued.
    fn admit(&self) -> Result<(), DomainError> {
        Ok(())
    }
}

/// Where a face's `notify` risk signals go (a webhook, e-mail): delivered in the background,
/// never holding up the refresh.
pub trait Notifier: Send + Sync {
    fn notify(&self, face: &str, session: &Session, signals: &[RiskSignal], now: OffsetDateTime);
    /// A user's password was changed: by the user (`by_operator` false) or by an operator.
    fn password_changed(&self, user: &User, by_operator: bool, now: OffsetDateTime) {
        let _ = (user, by_operator, now);
    }
}

/// The in-memory list of revoked sessions every access-token check consults: a revoked
/// session's access tokens are refused at once, without a database read per check.
pub trait RevocationList: Send + Sync {
    fn is_revoked(&self, session: SessionId) -> bool;
    fn note_revoked(&self, session: SessionId, at: OffsetDateTime);
    /// How long after a revocation [`Self::is_revoked`] is certain to answer `true`, on this
    /// instance, whichever instance revoked. What is read from the store and kept in memory is
    /// trusted for no longer than this: a revocation after the read is then still on the list.
    /// Zero (the default): nothing read is kept.
    fn remembers_for(&self) -> Duration {
        Duration::ZERO
    }
}
