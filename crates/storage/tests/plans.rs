//! Statements that run on a timer against tables that only grow read an index, not the table.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use tessera_domain::OffsetDateTime;
use tessera_storage::DROP_SEALED_SQL;

/// The sweep of sealed secrets runs every minute; `refresh_tokens` holds every token ever issued.
/// Postgres, with sequential scans priced out: a plan that can use the partial index does, and
/// one that cannot still scans the table.
#[tokio::test]
async fn the_sealed_secret_sweep_reads_its_index_on_postgres() {
    let pg = tessera_storage::testing::fresh_store().await.unwrap();
    let mut conn = pg.pool().acquire().await.unwrap();
    sqlx::query("set enable_seqscan = off").execute(&mut *conn).await.unwrap();
    let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("explain {DROP_SEALED_SQL}")))
        .bind(OffsetDateTime::now_utc())
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let plan = plan.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n");
    assert!(plan.contains("refresh_tokens_sealed_idx") && !plan.contains("Seq Scan"), "{plan}");
}

#[tokio::test]
async fn the_sealed_secret_sweep_reads_its_index_on_sqlite() {
    let lite = tessera_storage::testing::fresh_sqlite().await.unwrap();
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("explain query plan {DROP_SEALED_SQL}")))
        .bind(OffsetDateTime::now_utc())
        .fetch_all(lite.pool())
        .await
        .unwrap();
    let plan = plan.into_iter().map(|(.., detail)| detail).collect::<Vec<_>>().join("\n");
    assert!(plan.contains("USING INDEX refresh_tokens_sealed_idx") && !plan.contains("SCAN refresh_tokens"), "{plan}");
}
