//! A fresh PostgreSQL schema per test: reachability probe (fail under `CI=true`, skip line
//! otherwise), the admin pool that creates and later drops the schema, and connect options whose
//! `search_path` points at it.

use std::io::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgPool};

pub(crate) struct Schema {
    pub(crate) admin: PgPool,
    pub(crate) name: String,
    pub(crate) options: PgConnectOptions,
}

impl Schema {
    /// Closes `store` (opened on this schema), then drops the schema and lets the admin pool go.
    pub(crate) async fn drop_with(self, store: civicflow_engine::store::postgres::PgStore) {
        store.close().await;
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.name))).execute(&self.admin).await.unwrap();
        self.admin.close().await;
    }
}

/// A new schema named `cf_{prefix}_{test}_{pid}_{n}`, or `None` (after a SKIP line naming
/// `{module}::{test}`) when PostgreSQL is unreachable outside CI.
pub(crate) async fn fresh_schema(module: &str, prefix: &str, test: &str) -> Option<Schema> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let url =
        std::env::var("CIVICFLOW_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let base = PgConnectOptions::from_str(&url).unwrap();
    let probe = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect_with(&base)).await;
    let why = match probe {
        Ok(Ok(conn)) => {
            conn.close().await.unwrap();
            None
        }
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer in 5 s".to_string()),
    };
    if let Some(why) = why {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("PostgreSQL at {url} is unreachable and CI=true: {why}");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {module}::{test}: PostgreSQL at {url} is unreachable ({why}); with CI=true this fails"
        );
        return None;
    }
    let admin = PgPoolOptions::new().max_connections(1).connect_with(base.clone()).await.unwrap();
    let name = format!("cf_{prefix}_{test}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&admin).await.unwrap();
    let options = base.options([("search_path", name.as_str())]);
    Some(Schema { admin, name, options })
}
