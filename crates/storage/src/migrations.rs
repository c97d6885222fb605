//! The SQL migrations, compiled into the binary and handed to sqlx's migrator. Built here rather
//! than with sqlx's `migrate!` macro: that macro's proc-macro crate compiles both database
//! drivers a second time, which was a large part of a first build. Versions, descriptions and
//! checksums are those `migrate!` gives, so databases it migrated go on as before.

use std::borrow::Cow;

use include_dir::Dir;
use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `NNNN_some_name.sql` files, as sqlx names them: version `NNNN`, description `some name`.
pub(crate) fn migrator(dir: &'static Dir<'static>) -> Migrator {
    Migrator::with_migrations(migrations(dir))
}

fn migrations(dir: &'static Dir<'static>) -> Vec<Migration> {
    dir.files()
        .filter_map(|f| {
            let stem = f.path().file_name()?.to_str()?.strip_suffix(".sql")?;
            let (version, description) = stem.split_once('_')?;
            let sql = f.contents_utf8()?;
            let no_tx = sql.starts_with("-- no-transaction");
            Some(Migration::new(
                version.parse().ok()?,
                Cow::Owned(description.replace('_', " ")),
                MigrationType::Simple,
                SqlStr::from_static(sql),
                no_tx,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_a_migration_in_version_order() {
        for dir in [&crate::postgres::MIGRATIONS, &crate::sqlite::MIGRATIONS] {
            let files = dir.files().filter(|f| f.path().extension().is_some_and(|e| e == "sql")).count();
            let m = migrator(dir);
            assert_eq!(m.iter().count(), files);
            let versions: Vec<i64> = m.iter().map(|m| m.version).collect();
            assert_eq!(versions, (1..=files as i64).collect::<Vec<_>>());
            assert!(m.iter().all(|m| !m.description.contains('_') && !m.sql.as_str().is_empty()));
        }
    }

    #[test]
    fn both_databases_number_their_migrations_alike() {
        let named = |dir| migrator(dir).iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>();
        assert_eq!(named(&crate::postgres::MIGRATIONS), named(&crate::sqlite::MIGRATIONS));
    }

    /// Migration 0022 gives the rows of before it their user's route, and marks their tokens as
    /// issued before routing keys (their bytes name no route).
    #[tokio::test]
    async fn the_routing_key_migration_routes_existing_rows_on_both_databases() {
        const ROWS: &str = "insert into users (id, email, email_normalized, created_at) OVERRIDING values (70001, 'a@example.com', 'a@example.com', $1); \
            insert into sessions (id, user_id, face, profile, access_ttl_seconds, refresh_ttl_seconds, created_at, expires_at) \
              values ('0190a0a0-0000-7000-8000-000000000001', 70001, 'native', 'standard', 300, 86400, $1, $2); \
            insert into refresh_tokens (hash, session_id, access_jti, issued_at, expires_at) \
              values ($3, '0190a0a0-0000-7000-8000-000000000001', '0190a0a0-0000-7000-8000-000000000002', $1, $2)";
        let before = |dir| Migrator::with_migrations(migrations(dir).into_iter().filter(|m| m.version < 22).collect());
        let now = time::OffsetDateTime::now_utc();
        let hash = vec![7u8; 32];
        let check = |route: i64, routed: bool| {
            assert_eq!(route, 70001 % 65536);
            assert!(!routed);
        };

        let url = crate::testing::create_database().await.unwrap();
        let pg = sqlx::PgPool::connect(&url).await.unwrap();
        before(&crate::postgres::MIGRATIONS).run(&pg).await.unwrap();
        for q in ROWS.replace("OVERRIDING ", "overriding system value ").split("; ") {
            sqlx::query(sqlx::AssertSqlSafe(q.to_owned()))
                .bind(now)
                .bind(now + time::Duration::days(1))
                .bind(&hash)
                .execute(&pg)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        let store = crate::PgStore::from_pool(pg.clone());
        store.migrate().await.unwrap();
        let (route, routed): (i32, bool) = sqlx::query_as("select route, routed from refresh_tokens").fetch_one(&pg).await.unwrap();
        check(route.into(), routed);
        let (session_route,): (i32,) = sqlx::query_as("select route from sessions").fetch_one(&pg).await.unwrap();
        assert_eq!(session_route, route);
        use tessera_domain::ports::SessionRepository;
        assert!(store.unrouted_tokens_live(now).await.unwrap());

        let lite = crate::SqliteStore::connect(&crate::testing::sqlite_url()).await.unwrap();
        before(&crate::sqlite::MIGRATIONS).run(lite.pool()).await.unwrap();
        for q in ROWS.replace("OVERRIDING ", "").split("; ") {
            sqlx::query(sqlx::AssertSqlSafe(q.to_owned()))
                .bind(now)
                .bind(now + time::Duration::days(1))
                .bind(&hash)
                .execute(lite.pool())
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        lite.migrate().await.unwrap();
        let (route, routed): (i64, bool) = sqlx::query_as("select route, routed from refresh_tokens").fetch_one(lite.pool()).await.unwrap();
        check(route, routed);
        let (session_route,): (i64,) = sqlx::query_as("select route from sessions").fetch_one(lite.pool()).await.unwrap();
        assert_eq!(session_route, route);
        assert!(lite.unrouted_tokens_live(now).await.unwrap());
    }
}
