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
