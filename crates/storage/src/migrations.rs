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
}
