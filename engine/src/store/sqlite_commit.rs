//! The SQLite store's commit path — a commit, a batch, a start, each handed to the writer thread
//! (`sqlite_writer.rs`) as one job running the flow of `batch.rs` — and its row mappers, used by
//! `sqlite.rs`'s `Store` implementation.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::batch;
use super::common::{map_sqlx, to_u64, validate_commit};
use super::sqlite::SqliteStore;
use super::sqlite_batch::WriterTx;
use super::sqlite_writer::{in_transaction, ready};
use super::{
    BatchResults, Commit, InstanceRecord, PolicyRecord, PrincipalRecord, StoreError, StoredEvent, TimerRecord,
    TimerState,
};

impl SqliteStore {
    /// Runs `job` in a write transaction on the writer thread, with the batch flow's
    /// [`batch::BatchWriter`] over its connection and the tree's hint.
    pub(super) async fn write_with<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriterTx<'_>, &super::log_append::LogHead) -> Result<T, StoreError> + Send + 'static,
    {
        let head = self.log_head.clone();
        self.commits.run(move |conn| in_transaction(conn, |conn| job(&mut WriterTx(conn), &head))).await
    }

    /// One commit in its own transaction ([`Store::commit`], and a batch of one).
    pub(super) async fn commit_one(&self, commit: Commit) -> (Result<Vec<StoredEvent>, StoreError>, Commit) {
        if let Err(e) = validate_commit(&commit) {
            return (Err(e), commit);
        }
        let head = self.log_head.clone();
        let answer = self
            .commits
            .run(move |conn| {
                let result =
                    in_transaction(conn, |conn| ready(batch::apply_commit(&mut WriterTx(conn), &head, &commit)));
                Ok((result, commit))
            })
            .await;
        match answer {
            Ok(answer) => answer,
            // The writer is gone with the commit.
            Err(e) => (Err(e), Commit::default()),
        }
    }

    /// A batch of two or more commits in one transaction on the writer thread, handed over
    /// whole ([`Store::commit_many`]).
    pub(super) async fn write_batch(&self, commits: Vec<Commit>) -> BatchResults {
        let n = commits.len();
        let head = self.log_head.clone();
        let batched = self.batched.clone();
        // Issue 10.3: one flow for both stores (`batch.rs`), the whole batch handed over once.
        let answer = self
            .commits
            .run(move |conn| {
                // A failed transaction (begin, a statement, the commit) fails every commit of it.
                let written = in_transaction(conn, |conn| {
                    ready(batch::write_all(&mut WriterTx(conn), &head, &commits, &batched))
                });
                let results = match written {
                    Ok(answers) => batch::settle(answers, Ok(())),
                    Err(e) => vec![Err(e); n],
                };
                Ok((results, commits))
            })
            .await;
        // The writer is gone with the commits.
        answer.unwrap_or_else(|e| (vec![Err(e); n], Vec::new()))
    }
}

// ---- rows ----

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn time_at(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column).map_err(map_sqlx)?;
    from_micros(value, column)
}

pub(super) fn from_micros(value: i64, column: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Corrupt(format!("`{column}` holds no valid time: {value}")))
}

pub(super) fn json_text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("unencodable JSON: {e}")))
}

pub(super) fn parse_json(row: &SqliteRow, column: &str) -> Result<Value, StoreError> {
    let text: &str = row.try_get(column).map_err(map_sqlx)?;
    parse_json_text(text, column)
}

/// `text`, read from `column`, as JSON.
pub(super) fn parse_json_text(text: &str, column: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("`{column}` holds no valid JSON: {e}")))
}

pub(super) fn policy_row(row: &SqliteRow) -> Result<PolicyRecord, StoreError> {
    Ok(PolicyRecord {
        name: row.try_get("name").map_err(map_sqlx)?,
        hash: row.try_get("hash").map_err(map_sqlx)?,
        version_label: row.try_get("version_label").map_err(map_sqlx)?,
        source: row.try_get("source").map_err(map_sqlx)?,
        ir: parse_json(row, "ir")?,
        published_at: time_at(row, "published_at")?,
    })
}

pub(super) fn instance_row(row: &SqliteRow) -> Result<InstanceRecord, StoreError> {
    let snapshot = parse_json_text(&snapshot_text(row)?, "snapshot")?;
    Ok(InstanceRecord { snapshot, ..instance_fields(row)? })
}

/// The JSON text of a row's `snapshot` column (a `snapshots.body`: packed, or text written
/// before the packed format).
pub(super) fn snapshot_text(row: &SqliteRow) -> Result<std::borrow::Cow<'_, str>, StoreError> {
    use sqlx::{TypeInfo, ValueRef};
    let value = row.try_get_raw("snapshot").map_err(map_sqlx)?;
    let body = if value.type_info().name() == "BLOB" {
        super::packed::Body::Blob(row.try_get("snapshot").map_err(map_sqlx)?)
    } else {
        super::packed::Body::Text(row.try_get("snapshot").map_err(map_sqlx)?)
    };
    super::packed::unpack(body)
}

/// A row's record without its snapshot (`Null`), which the caller reads its own way.
pub(super) fn instance_fields(row: &SqliteRow) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        id: row.try_get("id").map_err(map_sqlx)?,
        policy_name: row.try_get("policy_name").map_err(map_sqlx)?,
        policy_hash: row.try_get("policy_hash").map_err(map_sqlx)?,
        version: to_u64(row.try_get("version").map_err(map_sqlx)?, "version")?,
        status: row.try_get("status").map_err(map_sqlx)?,
        snapshot: Value::Null,
        snapshot_version: to_u64(row.try_get("snapshot_version").map_err(map_sqlx)?, "snapshot_version")?,
        created_at: time_at(row, "created_at")?,
        updated_at: time_at(row, "updated_at")?,
    })
}

pub(super) fn event_row(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        instance: row.try_get("instance").map_err(map_sqlx)?,
        seq: to_u64(row.try_get("seq").map_err(map_sqlx)?, "seq")?,
        at: time_at(row, "at")?,
        actor: row.try_get("actor").map_err(map_sqlx)?,
        role: row.try_get("role").map_err(map_sqlx)?,
        kind: row.try_get("kind").map_err(map_sqlx)?,
        payload: std::sync::Arc::new(parse_json(row, "payload")?),
        prev_hash: row.try_get("prev_hash").map_err(map_sqlx)?,
        hash: row.try_get("hash").map_err(map_sqlx)?,
    })
}

pub(super) fn principal_row(row: &SqliteRow) -> Result<PrincipalRecord, StoreError> {
    let roles: String = row.try_get("roles").map_err(map_sqlx)?;
    Ok(PrincipalRecord {
        name: row.try_get("name").map_err(map_sqlx)?,
        office: row.try_get("office").map_err(map_sqlx)?,
        roles: serde_json::from_str(&roles)
            .map_err(|e| StoreError::Corrupt(format!("`roles` holds no JSON list of names: {e}")))?,
        created_at: time_at(row, "created_at")?,
    })
}

pub(super) fn timer_row(row: &SqliteRow) -> Result<TimerRecord, StoreError> {
    let state: String = row.try_get("state").map_err(map_sqlx)?;
    let lease_until: Option<i64> = row.try_get("lease_until").map_err(map_sqlx)?;
    Ok(TimerRecord {
        id: row.try_get("id").map_err(map_sqlx)?,
        instance: row.try_get("instance").map_err(map_sqlx)?,
        node: row.try_get("node").map_err(map_sqlx)?,
        kind: row.try_get("kind").map_err(map_sqlx)?,
        due_at: time_at(row, "due_at")?,
        state: TimerState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown timer state `{state}`")))?,
        lease_owner: row.try_get("lease_owner").map_err(map_sqlx)?,
        lease_until: lease_until.map(|v| from_micros(v, "lease_until")).transpose()?,
        fence: row.try_get("fence").map_err(map_sqlx)?,
        payload: parse_json(row, "payload")?,
    })
}
