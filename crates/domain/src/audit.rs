//! The audit trail: append-only, tamper-evident.
//!
//! Events are written where they happen, inside the transaction of the change they record
//! (a login's session, a refresh, a revocation), so they cost no lock. A sealer then chains them
//! in one place: each sealed event gets the next position (`seq`), the previous event's hash,
//! and its own hash, an HMAC (under a key derived from the master key) of the previous hash and
//! of its content. Editing a sealed row breaks its hash. Deleting one leaves a gap in `seq`.
//! Inserting one breaks the next row's link. Without the master key, no one can forge a chain
//! that verifies, not even someone who can write to the database.

use serde::Serialize;
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

/// Computes the links of the chain.
#[derive(Clone)]
pub struct AuditChain {
    mac: KeyedHasher,
}

impl std::fmt::Debug for AuditChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditChain")
    }
}

impl AuditChain {
    pub fn new(mac: KeyedHasher) -> Self {
        Self { mac }
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: Option<i64>,
    pub reason: &'static str,
}

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
        let chain = AuditChain::new(KeyedHasher::new([9; 32]));
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
        forged.hash = Some(AuditChain::new(KeyedHasher::new([1; 32])).link(rs[0].hash.as_ref().unwrap(), 2, &forged).to_vec());
        inserted.insert(1, forged);
        assert_eq!(walk(&chain, &inserted).unwrap_err().reason, "the event's content does not match its hash (edited)");
    }

    #[test]
    fn another_key_makes_another_chain() {
        let a = AuditChain::new(KeyedHasher::new([1; 32]));
        let b = AuditChain::new(KeyedHasher::new([2; 32]));
        let r = record(1, "login");
        assert_ne!(a.link(&GENESIS, 1, &r), b.link(&GENESIS, 1, &r));
    }
}
