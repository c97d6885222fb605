//! The audit trail: append-only, tamper-evident.
//!
//! Events are written where they happen, inside the transaction of the change they record
//! (a login's session, a refresh, a revocation), so they cost no lock. A sealer then chains them
//! in one place: each sealed event gets the next position (`seq`), the previous event's hash,
//! and its own hash, an HMAC (under a key derived from the master key) of the previous hash and
//! of its content. Editing a sealed row breaks its hash. Deleting one leaves a gap in `seq`.
//! Inserting one breaks the next row's link. Without the master key, no one can forge a chain
//! that verifies, not even someone who can write to the database.
//!
//! What the chain alone cannot show is its own end: deleting the newest events, or clearing the
//! seals of a tail and letting the sealer chain it again (after an edit), leaves a chain that
//! verifies. So, as Certificate Transparency's signed tree head does, the chain has a keyed
//! [`AuditHead`] (position, hash, count, and an HMAC over them under another key derived from the
//! master key) that an operator keeps outside the database; a chain checked against it must
//! still hold that very event at that position. And the sealer never seals below the sealed
//! head: an unsealed event whose id is below a sealed one's had its seal cleared by hand, stays
//! unsealed and is reported; within one process the sealer also remembers where it left the
//! chain ([`ChainPoint`]) and stops when the database no longer holds it.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::secret::KeyedHasher;

/// One audit event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    /// Its place in the chain; `None` until sealed.
    pub seq: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub kind: String,
    pub user_id: Option<i64>,
    pub session_id: Option<Uuid>,
    /// JSON, as the database gives it back.
    pub detail: String,
    #[serde(skip)]
    pub prev_hash: Option<Vec<u8>>,
    #[serde(skip)]
    pub hash: Option<Vec<u8>>,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub at: OffsetDateTime,
    pub kind: &'static str,
    pub user_id: Option<i64>,
    pub session_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// A sealed event's position and hash: where the chain ends, or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPoint {
    pub seq: i64,
    pub hash: Vec<u8>,
}

/// What one round of sealing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealing {
    /// `count` events were sealed; the chain ends at `head` (`None`: nothing is sealed yet, or
    /// the round was skipped).
    Sealed { count: u64, head: Option<ChainPoint> },
    /// The chain no longer holds `expected`, the point the sealer was to continue from: sealed
    /// events were deleted or sealed again. Nothing was sealed. `found`: where the chain now ends.
    Diverged { expected: ChainPoint, found: Option<ChainPoint> },
}

/// The chain's head as an operator keeps it outside the database: the newest sealed event's
/// position and hash, how many sealed events the chain holds up to it, and an HMAC over the
/// three under a key of its own (derived from the master key). Printed as one token
/// (`audit-head.v1.<seq>.<count>.<hash>.<mac>`, hex); nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: i64,
    pub count: u64,
    pub hash: Vec<u8>,
    pub mac: [u8; 32],
}

const HEAD_PREFIX: &str = "audit-head.v1.";

impl AuditHead {
    pub fn point(&self) -> ChainPoint {
        ChainPoint { seq: self.seq, hash: self.hash.clone() }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"seq": self.seq, "count": self.count, "hash": hex(&self.hash), "mac": hex(&self.mac), "head": self.to_string()})
    }
}

impl std::fmt::Display for AuditHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{HEAD_PREFIX}{}.{}.{}.{}", self.seq, self.count, hex(&self.hash), hex(&self.mac))
    }
}

/// Why a head given back could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("not an audit head (expected audit-head.v1.<seq>.<count>.<hash>.<mac>, as `tessera audit head` prints it)")]
    Malformed,
    #[error("the audit head is not genuine: its MAC does not match (edited, or made under another master key)")]
    NotGenuine,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// Computes the links of the chain and the MACs of its heads, and remembers where this process
/// last saw the chain end (see [`AuditChain::trusted`]).
#[derive(Clone)]
pub struct AuditChain {
    mac: KeyedHasher,
    head_mac: KeyedHasher,
    trusted: Arc<Mutex<Option<ChainPoint>>>,
}

impl std::fmt::Debug for AuditChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditChain")
    }
}

impl AuditChain {
    /// `mac` links the events; `head_mac` keys the heads (two keys derived from the master key).
    pub fn new(mac: KeyedHasher, head_mac: KeyedHasher) -> Self {
        Self { mac, head_mac, trusted: Arc::default() }
    }

    /// Where this process last saw the sealed chain end: the sealer continues from here only,
    /// and stops when the database no longer holds it. `None` until the first sealing; a new
    /// process starts from what the database says (see the README's threat model).
    pub fn trusted(&self) -> Option<ChainPoint> {
        self.trusted.lock().ok().and_then(|t| t.clone())
    }

    /// Moves the trusted point forward (never back: a lower point is ignored).
    pub fn trust(&self, point: ChainPoint) {
        if let Ok(mut t) = self.trusted.lock()
            && t.as_ref().is_none_or(|old| old.seq <= point.seq)
        {
            *t = Some(point);
        }
    }

    fn head_mac(&self, seq: i64, count: u64, hash: &[u8]) -> [u8; 32] {
        let mut buf = Vec::with_capacity(96);
        for b in [&b"tessera audit head v1"[..], &seq.to_be_bytes(), &count.to_be_bytes(), hash] {
            buf.extend_from_slice(&(b.len() as u64).to_be_bytes());
            buf.extend_from_slice(b);
        }
        self.head_mac.hash(&buf).0
    }

    /// The keyed head of a chain that ends at `point` and holds `count` sealed events.
    pub fn head(&self, point: &ChainPoint, count: u64) -> AuditHead {
        AuditHead { seq: point.seq, count, hash: point.hash.clone(), mac: self.head_mac(point.seq, count, &point.hash) }
    }

    /// The head of an empty chain.
    pub fn genesis_head(&self) -> AuditHead {
        self.head(&ChainPoint { seq: 0, hash: GENESIS.to_vec() }, 0)
    }

    /// Reads a head as [`AuditHead`]'s `Display` prints it, and checks its MAC.
    pub fn open_head(&self, text: &str) -> Result<AuditHead, HeadError> {
        let rest = text.trim().strip_prefix(HEAD_PREFIX).ok_or(HeadError::Malformed)?;
        let parts: Vec<&str> = rest.split('.').collect();
        let [seq, count, hash, mac] = parts[..] else { return Err(HeadError::Malformed) };
        let seq: i64 = seq.parse().map_err(|_| HeadError::Malformed)?;
        let count: u64 = count.parse().map_err(|_| HeadError::Malformed)?;
        let hash = unhex(hash).filter(|h| h.len() == 32).ok_or(HeadError::Malformed)?;
        let mac = unhex(mac).filter(|m| m.len() == 32).ok_or(HeadError::Malformed)?;
        if seq < 0 {
            return Err(HeadError::Malformed);
        }
        let expected = self.head_mac(seq, count, &hash);
        if !bool::from(expected[..].ct_eq(&mac[..])) {
            return Err(HeadError::NotGenuine);
        }
        Ok(AuditHead { seq, count, hash, mac: expected })
    }

    /// The hash of `record` at position `seq` after `prev`: every field, length-prefixed, so no
    /// two different records share an encoding.
    pub fn link(&self, prev: &[u8], seq: i64, record: &AuditRecord) -> [u8; 32] {
        let mut buf = Vec::with_capacity(128 + record.detail.len());
        let mut field = |b: &[u8]| {
            buf.extend_from_slice(&(b.len() as u64).to_be_bytes());
            buf.extend_from_slice(b);
        };
        field(prev);
        field(&seq.to_be_bytes());
        field(&record.id.to_be_bytes());
        field(&(record.at.unix_timestamp_nanos() / 1000).to_be_bytes());
        field(record.kind.as_bytes());
        field(&record.user_id.map(i64::to_be_bytes).unwrap_or_default());
        field(record.session_id.as_ref().map(Uuid::as_bytes).map_or(&[][..], |b| &b[..]));
        field(record.detail.as_bytes());
        self.mac.hash(&buf).0
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerdict {
    /// Sealed events checked.
    pub checked: u64,
    /// Events not sealed yet (written since the last sealing).
    pub unsealed: u64,
    /// The first broken link, if any.
    pub broken: Option<BrokenLink>,
    /// Where the checked chain ends (when intact).
    #[serde(skip)]
    pub end: Option<ChainPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: Option<i64>,
    pub reason: &'static str,
}

/// Reasons a chain checked against a kept head (or one whose seal was cleared) is broken.
pub const REWRITTEN: &str =
    "the event at the kept head's position is not the one sealed there then: the chain was sealed again (rewritten) up to it";
pub const TRUNCATED: &str = "the chain ends before the kept head: sealed events were deleted from its end, or their seals cleared";
pub const CLEARED: &str =
    "this event's seal was cleared by hand (it lies below sealed events, so it was sealed before): edited or taken out of the chain";

/// Walks sealed records in `seq` order, page by page, carrying the previous hash and position.
#[derive(Debug)]
pub struct ChainWalk<'a> {
    chain: &'a AuditChain,
    prev: Vec<u8>,
    next_seq: i64,
    pub checked: u64,
}

impl<'a> ChainWalk<'a> {
    pub fn new(chain: &'a AuditChain) -> Self {
        Self { chain, prev: GENESIS.to_vec(), next_seq: 1, checked: 0 }
    }

    /// The position the next record must have.
    pub fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// The last record checked: its position and hash (position 0 and [`GENESIS`] before any).
    pub fn end(&self) -> ChainPoint {
        ChainPoint { seq: self.next_seq - 1, hash: self.prev.clone() }
    }

    /// Checks the next record: its position, its link to the one before, its own hash.
    pub fn step(&mut self, r: &AuditRecord) -> Result<(), BrokenLink> {
        let seq = r.seq.unwrap_or(0);
        let broken = |reason| Err(BrokenLink { seq: self.next_seq, id: Some(r.id), reason });
        if seq != self.next_seq {
            return broken("a sealed event is missing (deleted) before this one");
        }
        if r.prev_hash.as_deref() != Some(&self.prev[..]) {
            return broken("the link to the event before does not match (an event was inserted or removed)");
        }
        let expected = self.chain.link(&self.prev, seq, r);
        if r.hash.as_deref() != Some(&expected[..]) {
            return broken("the event's content does not match its hash (edited)");
        }
        self.prev = expected.to_vec();
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, kind: &str) -> AuditRecord {
        AuditRecord {
            id,
            seq: None,
            at: OffsetDateTime::UNIX_EPOCH,
            kind: kind.into(),
            user_id: Some(7),
            session_id: None,
            detail: "{}".into(),
            prev_hash: None,
            hash: None,
        }
    }

    fn sealed(chain: &AuditChain, rs: Vec<AuditRecord>) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_vec();
        rs.into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                let seq = i as i64 + 1;
                let h = chain.link(&prev, seq, &r);
                r.seq = Some(seq);
                r.prev_hash = Some(prev.clone());
                r.hash = Some(h.to_vec());
                prev = h.to_vec();
                r
            })
            .collect()
    }

    fn walk(chain: &AuditChain, rs: &[AuditRecord]) -> Result<u64, BrokenLink> {
        let mut w = ChainWalk::new(chain);
        for r in rs {
            w.step(r)?;
        }
        Ok(w.checked)
    }

    #[test]
    fn an_intact_chain_verifies_and_any_edit_deletion_or_insertion_breaks_it() {
        let chain = AuditChain::new(KeyedHasher::new([9; 32]), KeyedHasher::new([8; 32]));
        let rs = sealed(&chain, vec![record(1, "login"), record(2, "refresh"), record(3, "session_revoked")]);
        assert_eq!(walk(&chain, &rs), Ok(3));

        let mut edited = rs.clone();
        edited[1].kind = "login".into();
        assert_eq!(walk(&chain, &edited).unwrap_err().seq, 2);

        let deleted = vec![rs[0].clone(), rs[2].clone()];
        assert_eq!(walk(&chain, &deleted).unwrap_err().seq, 2);

        let mut inserted = rs.clone();
        let mut forged = record(9, "login");
        forged.seq = Some(2);
        forged.prev_hash = rs[0].hash.clone();
        forged.hash = Some(
            AuditChain::new(KeyedHasher::new([1; 32]), KeyedHasher::new([8; 32])).link(rs[0].hash.as_ref().unwrap(), 2, &forged).to_vec(),
        );
        inserted.insert(1, forged);
        assert_eq!(walk(&chain, &inserted).unwrap_err().reason, "the event's content does not match its hash (edited)");
    }

    #[test]
    fn another_key_makes_another_chain() {
        let a = AuditChain::new(KeyedHasher::new([1; 32]), KeyedHasher::new([3; 32]));
        let b = AuditChain::new(KeyedHasher::new([2; 32]), KeyedHasher::new([3; 32]));
        let r = record(1, "login");
        assert_ne!(a.link(&GENESIS, 1, &r), b.link(&GENESIS, 1, &r));
    }

    #[test]
    fn a_head_round_trips_and_an_edited_or_foreign_head_is_refused() {
        let chain = AuditChain::new(KeyedHasher::new([1; 32]), KeyedHasher::new([2; 32]));
        let head = chain.head(&ChainPoint { seq: 12, hash: vec![7; 32] }, 12);
        let text = head.to_string();
        assert!(text.starts_with("audit-head.v1.12.12."), "{text}");
        assert_eq!(chain.open_head(&format!(" {text}\n")), Ok(head.clone()));
        assert_eq!(head.json()["head"], text.as_str());

        // a shorter chain claimed under the same MAC
        let edited = text.replacen("audit-head.v1.12.12.", "audit-head.v1.11.11.", 1);
        assert_eq!(chain.open_head(&edited), Err(HeadError::NotGenuine));
        // the same head under another master key
        let other = AuditChain::new(KeyedHasher::new([1; 32]), KeyedHasher::new([3; 32]));
        assert_eq!(other.open_head(&text), Err(HeadError::NotGenuine));
        for bad in ["", "audit-head.v1.12.12", "audit-head.v1.x.12.00.00", "audit-head.v1.-1.0.00.00", &text[..text.len() - 2]] {
            assert_eq!(chain.open_head(bad), Err(HeadError::Malformed), "{bad:?}");
        }
        assert_eq!(chain.open_head(&chain.genesis_head().to_string()).map(|h| h.seq), Ok(0));
    }

    #[test]
    fn the_trusted_point_only_moves_forward() {
        let chain = AuditChain::new(KeyedHasher::new([1; 32]), KeyedHasher::new([2; 32]));
        assert_eq!(chain.trusted(), None);
        chain.trust(ChainPoint { seq: 5, hash: vec![5] });
        chain.clone().trust(ChainPoint { seq: 3, hash: vec![3] });
        assert_eq!(chain.trusted(), Some(ChainPoint { seq: 5, hash: vec![5] }), "clones share it; never back");
    }
}
