//! The SQLite store's schema upgrade, said before it runs: some migrations rewrite a table
//! (0017 copies every event), so on a large store the first start of a new version takes a while
//! (12.5 s a million events), and a server that says why does not look hung.

use std::path::Path;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::SqlitePool;

use super::common::{map_migrate, map_sqlx};
use super::StoreError;

/// Prints, on standard error, the migrations `migrator` is about to apply to a database that has
/// had some applied already; a new database (without sqlx's table) is created, not upgraded, and
/// prints nothing.
pub(super) async fn announce(writer: &SqlitePool, migrator: &Migrator, file: &Path) -> Result<(), StoreError> {
    let pending = pending(writer, migrator).await?;
    if !pending.is_empty() {
        eprintln!(
            "civicflow: upgrading the SQLite database {} ({}); on a large store this takes a while",
            file.display(),
            pending.join(", ")
        );
    }
    Ok(())
}

/// The migrations not yet applied, as `migration 0017 events in log order`.
async fn pending(writer: &SqlitePool, migrator: &Migrator) -> Result<Vec<String>, StoreError> {
    // sqlx's own table of applied migrations (`Migrator::table_name`); before the first run it
    // does not exist, and `list_applied_migrations` would fail on it.
    let known: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
        .bind(migrator.table_name.as_ref())
        .fetch_one(writer)
        .await
        .map_err(map_sqlx)?;
    if known == 0 {
        return Ok(Vec::new());
    }
    let mut conn = writer.acquire().await.map_err(map_sqlx)?;
    let applied = conn.list_applied_migrations(&migrator.table_name).await.map_err(map_migrate)?;
    Ok(migrator
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| format!("migration {:04} {}", m.version, m.description))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;

    #[tokio::test]
    async fn an_upgrade_names_the_migrations_it_runs_and_a_new_database_none() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join("t.db")).create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let all = sqlx::migrate!("./migrations/sqlite");
        assert!(pending(&pool, &all).await.unwrap().is_empty(), "a new database is created, not upgraded");
        all.run_to(16, &pool).await.unwrap();
        assert_eq!(pending(&pool, &all).await.unwrap(), ["migration 0017 events in log order"]);
        all.run(&pool).await.unwrap();
        assert!(pending(&pool, &all).await.unwrap().is_empty());
        pool.close().await;
    }
}
