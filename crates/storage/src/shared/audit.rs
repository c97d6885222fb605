//! The audit trail: appending events, sealing them into the hash chain, reading it back.

/// `AuditRepository` for a store whose connections are `$conn`; see [the seam](super).
macro_rules! audit_repository {
    ($store:ty, $conn:ty) => {
        const AUDIT_COLS: &str = "id, seq, at, kind, user_id, session_id, cast(detail as text), prev_hash, hash";

        /// The newest sealed event: where the chain ends.
        async fn newest_sealed(conn: &mut $conn) -> Result<Option<ChainPoint>, RepoError> {
            let head: Option<(i64, Option<Vec<u8>>)> =
                sqlx::query_as("select seq, hash from audit_events where seq is not null order by seq desc limit 1")
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(map_err)?;
            Ok(head.map(|(seq, hash)| ChainPoint { seq, hash: hash.unwrap_or_default() }))
        }

        #[async_trait::async_trait]
        impl AuditRepository for $store {
            async fn append_audit(&self, e: &NewAuditEvent) -> Result<(), RepoError> {
                let _turn = self.write_turn().await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "insert into audit_events (at, kind, user_id, session_id, detail) values ($1, $2, $3, $4, $5{JSON_CAST})"
                )))
                .bind(e.at)
                .bind(e.kind)
                .bind(e.user_id)
                .bind(e.session_id)
                .bind(e.detail.to_string())
                .execute(self.pool())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn seal_audit(&self, chain: &AuditChain, limit: u32, after: Option<&ChainPoint>) -> Result<Sealing, RepoError> {
                // Events are sealed in id order, and an unsealed event below the newest sealed one is
                // never sealed (its seal was cleared by hand). Only ids up to `seal_upto` are sealed:
                // every id below it is committed or gone for good. `None` skips this round.
                let Some(upto) = self.seal_upto().await? else {
                    return Ok(Sealing::Sealed { count: 0, head: None });
                };
                let mut tx = self.write_tx().await?;
                lock(&mut tx, Lock::AuditSealer).await?;
                if let Some(p) = after {
                    let at: Option<(Option<Vec<u8>>,)> = sqlx::query_as("select hash from audit_events where seq = $1")
                        .bind(p.seq)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if at.and_then(|(h,)| h).as_deref() != Some(&p.hash[..]) {
                        let found = newest_sealed(&mut tx).await?;
                        return Ok(Sealing::Diverged { expected: p.clone(), found });
                    }
                }
                let head = newest_sealed(&mut tx).await?;
                let (above,): (Option<i64>,) =
                    sqlx::query_as("select max(id) from (select id from audit_events where seq is not null order by id desc limit 1) s")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                let (mut seq, mut prev) = head.clone().map_or((0, GENESIS.to_vec()), |h| (h.seq, h.hash));
                let rows: Vec<rows::AuditTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "select {AUDIT_COLS} from audit_events where seq is null and id > $1 and id <= $2 order by id limit $3"
                )))
                .bind(above.unwrap_or(0))
                .bind(upto)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                let count = rows.len() as u64;
                for row in rows {
                    let record = rows::audit_record(row);
                    seq += 1;
                    let hash = chain.link(&prev, seq, &record);
                    sqlx::query("update audit_events set seq = $1, prev_hash = $2, hash = $3 where id = $4")
                        .bind(seq)
                        .bind(&prev)
                        .bind(&hash[..])
                        .bind(record.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    prev = hash.to_vec();
                }
                tx.commit().await.map_err(map_err)?;
                let head = if count > 0 { Some(ChainPoint { seq, hash: prev }) } else { head };
                Ok(Sealing::Sealed { count, head })
            }

            async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, RepoError> {
                let rows: Vec<rows::AuditTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "select {AUDIT_COLS} from audit_events where seq > $1 order by seq limit $2"
                )))
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(rows::audit_record).collect())
            }

            async fn audit_unsealed(&self) -> Result<u64, RepoError> {
                let (n,): (i64,) =
                    sqlx::query_as("select count(*) from audit_events where seq is null").fetch_one(self.pool()).await.map_err(map_err)?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn audit_unsealed_below_head(&self) -> Result<Option<i64>, RepoError> {
                let (id,): (Option<i64>,) = sqlx::query_as(
                    "select min(id) from audit_events where seq is null \
                     and id < (select id from audit_events where seq is not null order by id desc limit 1)",
                )
                .fetch_one(self.pool())
                .await
                .map_err(map_err)?;
                Ok(id)
            }

            async fn audit_head(&self) -> Result<Option<(ChainPoint, u64)>, RepoError> {
                let mut conn = self.pool().acquire().await.map_err(map_err)?;
                let Some(head) = newest_sealed(&mut conn).await? else { return Ok(None) };
                let (n,): (i64,) = sqlx::query_as("select count(*) from audit_events where seq is not null")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(map_err)?;
                Ok(Some((head, u64::try_from(n).unwrap_or(0))))
            }

            async fn audit_events(
                &self,
                user: Option<i64>,
                since: Option<OffsetDateTime>,
                limit: u32,
            ) -> Result<Vec<AuditRecord>, RepoError> {
                let rows: Vec<rows::AuditTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "select {AUDIT_COLS} from audit_events where ($1 is null or user_id = $1) and ($2 is null or at >= $2) \
                     order by id desc limit $3"
                )))
                .bind(user)
                .bind(since)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(rows::audit_record).collect())
            }
        }
    };
}
pub(crate) use audit_repository;
