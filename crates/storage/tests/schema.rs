//! The two migration sets make one schema: the same tables, the same columns, the same indexes
//! (by name; the indexes that back a primary key or a unique constraint are each database's own
//! business and are compared through the constraints' columns instead).
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::BTreeSet;

#[tokio::test]
async fn both_databases_get_the_same_tables_columns_and_indexes() {
    let pg = tessera_storage::testing::fresh_store().await.unwrap();
    let lite = tessera_storage::testing::fresh_sqlite().await.unwrap();

    let pg_columns: BTreeSet<(String, String)> = sqlx::query_as(
        "select table_name::text, column_name::text from information_schema.columns
          where table_schema = current_schema() and table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    let lite_columns: BTreeSet<(String, String)> = sqlx::query_as(
        "select m.name, p.name from sqlite_master m join pragma_table_info(m.name) p
          where m.type = 'table' and m.name not like 'sqlite_%' and m.name <> '_sqlx_migrations'",
    )
    .fetch_all(lite.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    let only_pg: Vec<_> = pg_columns.difference(&lite_columns).collect();
    let only_lite: Vec<_> = lite_columns.difference(&pg_columns).collect();
    assert!(only_pg.is_empty() && only_lite.is_empty(), "columns only on Postgres: {only_pg:?}\ncolumns only on SQLite: {only_lite:?}");
    assert!(pg_columns.len() > 40, "the schema's columns: {}", pg_columns.len());

    // indexes created by name (not those backing a primary key or unique constraint)
    let pg_indexes: BTreeSet<(String, String)> = sqlx::query_as(
        "select i.tablename::text, i.indexname::text from pg_indexes i
          where i.schemaname = current_schema() and i.tablename <> '_sqlx_migrations'
            and not exists (select 1 from pg_constraint c where c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    let lite_indexes: BTreeSet<(String, String)> = sqlx::query_as(
        "select tbl_name, name from sqlite_master where type = 'index' and name not like 'sqlite_autoindex_%' and tbl_name <> '_sqlx_migrations'",
    )
    .fetch_all(lite.pool())
    .await
    .unwrap()
    .into_iter()
    .collect();
    let only_pg: Vec<_> = pg_indexes.difference(&lite_indexes).collect();
    let only_lite: Vec<_> = lite_indexes.difference(&pg_indexes).collect();
    assert!(only_pg.is_empty() && only_lite.is_empty(), "indexes only on Postgres: {only_pg:?}\nindexes only on SQLite: {only_lite:?}");
}

/// A SQLite database migrated before the two sets were numbered alike (its 0007 was today's 0008,
/// and so on up to 0016) migrates on: its applied migrations are renumbered, not refused as
/// modified, and it ends with exactly the rows a fresh database has.
#[tokio::test]
async fn a_sqlite_database_under_the_old_numbering_migrates_on() {
    let fresh = tessera_storage::testing::fresh_sqlite().await.unwrap();
    let rows = |pool: sqlx::SqlitePool| async move {
        sqlx::query_as::<_, (i64, String, Vec<u8>, bool)>(
            "select version, description, checksum, success from _sqlx_migrations order by version",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let expected = rows(fresh.pool().clone()).await;
    assert!(expected.len() >= 17, "{}", expected.len());

    // the old numbering: no 0007, and everything above it one lower
    let url = tessera_storage::testing::sqlite_url();
    let old = tessera_storage::SqliteStore::connect(&url).await.unwrap();
    old.migrate().await.unwrap();
    let pool = old.pool().clone();
    sqlx::query("delete from _sqlx_migrations where version = 7").execute(&pool).await.unwrap();
    sqlx::query("update _sqlx_migrations set version = -(version - 1) where version > 7").execute(&pool).await.unwrap();
    sqlx::query("update _sqlx_migrations set version = -version where version < 0").execute(&pool).await.unwrap();
    let (seventh,): (String,) =
        sqlx::query_as("select description from _sqlx_migrations where version = 7").fetch_one(&pool).await.unwrap();
    assert_eq!(seventh, "identities and session subject");
    drop(old);

    // as after an upgrade: a new process opens the file and migrates
    let upgraded = tessera_storage::SqliteStore::connect(&url).await.unwrap();
    assert_eq!(upgraded.pending_migrations().await.unwrap(), Vec::<String>::new());
    assert_eq!(upgraded.migrate().await.unwrap(), 0);
    assert_eq!(rows(upgraded.pool().clone()).await, expected);
    // and once aligned, nothing moves again
    assert_eq!(upgraded.migrate().await.unwrap(), 0);
    assert_eq!(rows(upgraded.pool().clone()).await, expected);
}
