//! The audit trail: recording events, sealing them into the chain, checking it, its head.

use super::*;

impl TokenService {
    /// Appends an event to the audit trail. A failure is logged, never the request's failure.
    pub async fn audit(&self, kind: &'static str, user_id: Option<i64>, detail: serde_json::Value, now: OffsetDateTime) {
        let event = NewAuditEvent { at: now, kind, user_id, session_id: None, detail };
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!(error = %e, kind, "an audit event could not be written");
        }
    }

    /// Chains every event written since the last sealing; returns how many. It continues only
    /// from where this process last saw the chain end: when the database no longer holds that
    /// event (sealed events deleted, or their seals cleared and sealed again), it seals nothing
    /// and fails with `Internal`, saying so.
    pub async fn seal_audit(&self) -> Result<u64, DomainError> {
        match self.seal_audit_after(None).await? {
            Ok(n) => Ok(n),
            Err(Diverged { expected, found }) => Err(DomainError::Internal(format!(
                "the audit chain no longer holds event #{} as sealed before (it now ends at #{}): sealed events were deleted \
                 or sealed again in the database; nothing more is sealed; run `tessera audit verify`",
                expected.seq,
                found.map_or(0, |f| f.seq)
            ))),
        }
    }

    /// Seals from `kept` (else from this process's trusted point); `Err` when the chain no longer
    /// holds it, and then nothing is sealed.
    pub(super) async fn seal_audit_after(&self, kept: Option<ChainPoint>) -> Result<Result<u64, Diverged>, DomainError> {
        let mut total = 0;
        let mut after = kept.or_else(|| self.audit.trusted());
        loop {
            match self.store.seal_audit(&self.audit, 1000, after.as_ref()).await? {
                Sealing::Diverged { expected, found } => return Ok(Err(Diverged { expected, found })),
                Sealing::Sealed { count, head } => {
                    total += count;
                    if let Some(head) = head {
                        self.audit.trust(head.clone());
                        after = Some(head);
                    }
                    if count < 1000 {
                        return Ok(Ok(total));
                    }
                }
            }
        }
    }

    /// Seals, then walks the whole chain: the first edited, inserted or deleted event, if any.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, DomainError> {
        self.verify_audit_against(None).await
    }

    /// Seals (continuing only from `kept`, when given), then walks the whole chain: the first
    /// edited, inserted or deleted event, an event whose seal was cleared by hand, and, against
    /// the head an operator kept: a chain that ends before it (truncated) or holds another event
    /// at its place (sealed again).
    pub async fn verify_audit_against(&self, kept: Option<&AuditHead>) -> Result<AuditVerdict, DomainError> {
        // when the chain no longer holds `kept`, nothing is sealed and the walk says where
        // (the head of an empty chain holds nothing to continue from)
        let _ = self.seal_audit_after(kept.filter(|k| k.seq > 0).map(AuditHead::point)).await?;
        let cleared = self.store.audit_unsealed_below_head().await?;
        // the position of the first sealed event written after the cleared one
        let mut cleared_at = None;
        let mut walk = ChainWalk::new(&self.audit);
        let broken = |walk: &ChainWalk<'_>, b| Ok(AuditVerdict { checked: walk.checked, unsealed: 0, broken: Some(b), end: None });
        loop {
            let page = self.store.audit_chain(walk.next_seq() - 1, 1000).await?;
            let last_page = page.len() < 1000;
            for r in &page {
                if let Err(b) = walk.step(r) {
                    return broken(&walk, b);
                }
                if cleared_at.is_none() && cleared.is_some_and(|id| r.id > id) {
                    cleared_at = r.seq;
                }
                if let Some(k) = kept
                    && r.seq == Some(k.seq)
                    && (r.hash.as_deref() != Some(&k.hash[..]) || walk.checked != k.count)
                {
                    return broken(&walk, BrokenLink { seq: k.seq, id: Some(r.id), reason: audit::REWRITTEN });
                }
            }
            if last_page {
                break;
            }
        }
        if let Some(id) = cleared {
            return broken(&walk, BrokenLink { seq: cleared_at.unwrap_or(walk.next_seq()), id: Some(id), reason: audit::CLEARED });
        }
        if let Some(k) = kept
            && k.seq >= walk.next_seq()
        {
            return broken(&walk, BrokenLink { seq: walk.next_seq(), id: None, reason: audit::TRUNCATED });
        }
        let unsealed = self.store.audit_unsealed().await?;
        Ok(AuditVerdict { checked: walk.checked, unsealed, broken: None, end: Some(walk.end()) })
    }

    /// Verifies the whole chain, then its keyed head (see [`AuditHead`]); the first broken link
    /// instead when the chain is not intact.
    pub async fn audit_head(&self) -> Result<Result<AuditHead, BrokenLink>, DomainError> {
        let verdict = self.verify_audit_against(None).await?;
        match (verdict.broken, verdict.end) {
            (Some(b), _) => Ok(Err(b)),
            (None, Some(end)) => Ok(Ok(self.audit.head(&end, verdict.checked))),
            (None, None) => Ok(Ok(self.audit.genesis_head())),
        }
    }

    /// The keyed head of the chain as the database holds it now, without walking the chain (the
    /// server logs it periodically); `None` while nothing is sealed.
    pub async fn current_audit_head(&self) -> Result<Option<AuditHead>, DomainError> {
        Ok(self.store.audit_head().await?.map(|(point, count)| self.audit.head(&point, count)))
    }

    /// Reads a head as `tessera audit head` prints it, and checks its MAC.
    pub fn open_audit_head(&self, text: &str) -> Result<AuditHead, audit::HeadError> {
        self.audit.open_head(text)
    }

    /// Audit events, newest first.
    pub async fn audit_events(
        &self,
        user: Option<UserId>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, DomainError> {
        Ok(self.store.audit_events(user.map(|u| u.0), since, limit).await?)
    }
}
