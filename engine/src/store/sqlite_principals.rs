//! Who may act, on SQLite: principals and their tokens, the web sessions (split out of `sqlite.rs`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::common::{check_principal, check_token_hash, finish, map_sqlx, token_prefix};
use super::sqlite::SqliteStore;
#[allow(clippy::wildcard_imports, reason = "the row mappers")]
use super::sqlite_commit::*;
use super::{PrincipalRecord, SessionRecord, StoreError, TokenRecord, TOKEN_ID_LEN};

impl SqliteStore {
    pub(super) async fn insert_token(
        &self,
        principal: PrincipalRecord,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        check_principal(&principal)?;
        check_token_hash(token_hash)?;
        let roles = serde_json::to_string(&principal.roles)
            .map_err(|e| StoreError::Invalid(format!("unencodable roles: {e}")))?;
        let (_gate, mut tx) = self.begin_write().await?;
        let result = async {
            sqlx::query(
                "INSERT INTO principals (name, office, roles, created_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (name) DO UPDATE SET office = excluded.office, roles = excluded.roles",
            )
            .bind(&principal.name)
            .bind(&principal.office)
            .bind(&roles)
            .bind(micros(principal.created_at))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            let inserted = sqlx::query(
                "INSERT INTO tokens (token_hash, principal, created_at, expires_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (token_hash) DO NOTHING",
            )
            .bind(token_hash)
            .bind(&principal.name)
            .bind(micros(principal.created_at))
            .bind(expires_at.map(micros))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
            if inserted != 1 {
                return Err(StoreError::Invalid("this token hash is already stored".into()));
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    pub(super) async fn read_principal_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<PrincipalRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT p.name, p.office, p.roles, p.created_at FROM tokens t
             JOIN principals p ON p.name = t.principal
             WHERE t.token_hash = ? AND (t.expires_at IS NULL OR t.expires_at > ?)",
        )
        .bind(token_hash)
        .bind(micros(Utc::now()))
        .fetch_optional(&self.readers)
        .await
        .map_err(map_sqlx)?;
        row.as_ref().map(principal_row).transpose()
    }

    pub(super) async fn read_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.token_hash, t.created_at AS token_created, t.expires_at, p.name, p.office, p.roles,
                    p.created_at FROM tokens t JOIN principals p ON p.name = t.principal
             ORDER BY p.name, t.created_at, t.token_hash",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| {
                let p = principal_row(row)?;
                let hash: String = row.try_get("token_hash").map_err(map_sqlx)?;
                let expires: Option<i64> = row.try_get("expires_at").map_err(map_sqlx)?;
                Ok(TokenRecord {
                    id: hash.chars().take(TOKEN_ID_LEN).collect(),
                    principal: p.name,
                    office: p.office,
                    roles: p.roles,
                    created_at: time_at(row, "token_created")?,
                    expires_at: expires.map(|v| from_micros(v, "expires_at")).transpose()?,
                })
            })
            .collect()
    }

    pub(super) async fn delete_tokens(&self, principal: &str, id: Option<&str>) -> Result<u64, StoreError> {
        let prefix = token_prefix(id)?;
        let (_gate, mut tx) = self.begin_write().await?;
        let result = sqlx::query("DELETE FROM tokens WHERE principal = ? AND token_hash LIKE ?")
            .bind(principal)
            .bind(&prefix)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_sqlx);
        finish(tx, result).await
    }

    pub(super) async fn insert_session(&self, session: SessionRecord, cap: usize) -> Result<(), StoreError> {
        check_token_hash(&session.id_hash)?;
        let roles = serde_json::to_string(&session.roles)
            .map_err(|e| StoreError::Invalid(format!("unencodable roles: {e}")))?;
        let (_gate, mut tx) = self.begin_write().await?;
        let result = async {
            sqlx::query("DELETE FROM web_sessions WHERE expires_at <= ?")
                .bind(micros(Utc::now()))
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?;
            // Keep the newest `cap - 1` of the principal's, then add this one.
            sqlx::query(
                "DELETE FROM web_sessions WHERE principal = ? AND id_hash NOT IN
                 (SELECT id_hash FROM web_sessions WHERE principal = ? ORDER BY created_at DESC, id_hash LIMIT ?)",
            )
            .bind(&session.principal)
            .bind(&session.principal)
            .bind(i64::try_from(cap.saturating_sub(1)).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            sqlx::query(
                "INSERT INTO web_sessions (id_hash, principal, office, roles, token_hash, csrf, created_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&session.id_hash)
            .bind(&session.principal)
            .bind(&session.office)
            .bind(&roles)
            .bind(&session.token_hash)
            .bind(&session.csrf)
            .bind(micros(session.created_at))
            .bind(micros(session.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    pub(super) async fn read_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, principal, office, roles, token_hash, csrf, created_at, expires_at
             FROM web_sessions WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(id_hash)
        .bind(micros(Utc::now()))
        .fetch_optional(&self.readers)
        .await
        .map_err(map_sqlx)?;
        row.map(|row| {
            let roles: String = row.try_get("roles").map_err(map_sqlx)?;
            Ok(SessionRecord {
                id_hash: row.try_get("id_hash").map_err(map_sqlx)?,
                principal: row.try_get("principal").map_err(map_sqlx)?,
                office: row.try_get("office").map_err(map_sqlx)?,
                roles: serde_json::from_str(&roles)
                    .map_err(|e| StoreError::Corrupt(format!("`roles` holds no JSON list of names: {e}")))?,
                token_hash: row.try_get("token_hash").map_err(map_sqlx)?,
                csrf: row.try_get("csrf").map_err(map_sqlx)?,
                created_at: time_at(&row, "created_at")?,
                expires_at: time_at(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    pub(super) async fn remove_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let result = sqlx::query("DELETE FROM web_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&mut *tx)
            .await
            .map(|_| ())
            .map_err(map_sqlx);
        finish(tx, result).await
    }

    pub(super) async fn read_principals(&self) -> Result<Vec<PrincipalRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, office, roles, created_at FROM principals ORDER BY name")
            .fetch_all(&self.readers)
            .await
            .map_err(map_sqlx)?;
        rows.iter().map(principal_row).collect()
    }
}
