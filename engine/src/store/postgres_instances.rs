//! The PostgreSQL store's reads of instances: a record, several, a page of the list, and the
//! states commands decide on, each as of its version — the events after the stored snapshot
//! folded in with one statement for all their tails (issue 10.1, [`super::fold`]).

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use super::common::{map_sqlx, page_bounds, to_i64, to_u64};
use super::fold;
use super::postgres::{PgStore, BEGIN_KEYED_READ};
#[allow(clippy::wildcard_imports, reason = "the row mappers")]
use super::postgres_commit::*;
use super::{InstanceFilter, InstanceRecord, LoadedState, Page, StoreError};

impl PgStore {
    /// The records as of their version: the events after each stored snapshot folded in, read
    /// in one statement for all (issue 10.1, `store::fold`).
    pub(super) async fn current(&self, mut records: Vec<InstanceRecord>) -> Result<Vec<InstanceRecord>, StoreError> {
        let wanted = fold::wanted(&records);
        if wanted.is_empty() {
            return Ok(records);
        }
        let mut tx = self.keyed_read().await?;
        let tails = read_tails(&mut tx, &wanted).await?;
        tx.commit().await.map_err(map_sqlx)?;
        fold::fold_tails(&mut records, tails)?;
        Ok(records)
    }

    /// A read of rows by their keys ([`BEGIN_KEYED_READ`]).
    async fn keyed_read(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin_with(BEGIN_KEYED_READ).await.map_err(map_sqlx)
    }

    pub(super) async fn read_instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, policy_name, policy_hash, version, status,
                    (SELECT body FROM snapshots s WHERE s.instance = instances.id) AS snapshot, snapshot_version, created_at, updated_at
             FROM instances WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx)?;
        let records = row.as_ref().map(instance_row).transpose()?.into_iter().collect();
        Ok(self.current(records).await?.pop())
    }

    pub(super) async fn read_instances(&self, ids: &[String]) -> Result<Vec<InstanceRecord>, StoreError> {
        // Its rows and their tails in one transaction: one snapshot of both.
        let mut tx = self.keyed_read().await?;
        let rows = sqlx::query(
            "SELECT id, policy_name, policy_hash, version, status,
                    (SELECT body FROM snapshots s WHERE s.instance = instances.id) AS snapshot, snapshot_version, created_at, updated_at
             FROM instances WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let mut records: Vec<InstanceRecord> = rows.iter().map(instance_row).collect::<Result<_, _>>()?;
        let wanted = fold::wanted(&records);
        if !wanted.is_empty() {
            let tails = read_tails(&mut tx, &wanted).await?;
            fold::fold_tails(&mut records, tails)?;
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(records)
    }

    pub(super) async fn read_states(&self, ids: &[String]) -> Result<Vec<LoadedState>, StoreError> {
        let mut tx = self.keyed_read().await?;
        let rows = sqlx::query(
            "SELECT id, policy_name, policy_hash, version, status,
                    (SELECT body::text FROM snapshots s WHERE s.instance = instances.id) AS snapshot, snapshot_version,
                    created_at, updated_at
             FROM instances WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let mut loaded = rows
            .iter()
            .map(|row| fold::loaded(instance_fields(row)?, row.try_get("snapshot").map_err(map_sqlx)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let wanted = fold::wanted(loaded.iter().map(|l| &l.record));
        if !wanted.is_empty() {
            let tails = read_tails(&mut tx, &wanted).await?;
            fold::fold_loaded(&mut loaded, tails)?;
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(loaded)
    }

    pub(super) async fn read_instance_page(&self, filter: &InstanceFilter) -> Result<Page<InstanceRecord>, StoreError> {
        let (limit, offset) = page_bounds(filter)?;
        // Overdue and awaiting a role: read from the open-step table (issue 10.6).
        const MATCHING: &str = "FROM instances
             WHERE ($1::text IS NULL OR policy_name = $1) AND ($2::text IS NULL OR status = $2)
               AND ($3::bool IS NULL OR $3 = EXISTS (SELECT 1 FROM open_steps o WHERE o.instance = instances.id AND o.overdue))
               AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM open_steps o WHERE o.instance = instances.id
                                                AND (o.reader IN ($4, $5::text) OR left(o.reader, length($4) + 1) = $4 || '@')))";
        let (acts, waits) = match &filter.awaiting {
            Some([acts, waits]) => (Some(acts.as_str()), Some(waits.as_str())),
            None => (None, None),
        };
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) {MATCHING}")))
            .bind(&filter.policy)
            .bind(&filter.status)
            .bind(filter.overdue)
            .bind(acts)
            .bind(waits)
            .fetch_one(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, policy_name, policy_hash, version, status,
                    (SELECT body FROM snapshots s WHERE s.instance = instances.id) AS snapshot, snapshot_version, created_at, updated_at
             {MATCHING} ORDER BY created_at, id LIMIT $6 OFFSET $7"
        )))
        .bind(&filter.policy)
        .bind(&filter.status)
        .bind(filter.overdue)
        .bind(acts)
        .bind(waits)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        let records = rows.iter().map(instance_row).collect::<Result<_, _>>()?;
        Ok(Page {
            items: self.current(records).await?,
            total: to_u64(total, "count")?,
            page: filter.page,
            page_size: filter.page_size,
        })
    }
}

/// The events `snapshot_version < seq <= version` of each `(instance, snapshot_version,
/// version)`, in one statement, on a [`BEGIN_KEYED_READ`] transaction: its plan goes through
/// the events' index whatever the plan cache made of the table while it was small.
async fn read_tails(conn: &mut PgConnection, wanted: &[(&str, u64, u64)]) -> Result<Vec<fold::TailEvent>, StoreError> {
    let mut ids = Vec::with_capacity(wanted.len());
    let (mut after, mut upto) = (Vec::with_capacity(wanted.len()), Vec::with_capacity(wanted.len()));
    for (id, from, to) in wanted {
        ids.push(*id);
        after.push(to_i64(*from, "version")?);
        upto.push(to_i64(*to, "version")?);
    }
    let rows = sqlx::query(
        "SELECT e.instance, e.seq, e.at, e.payload::text AS payload
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS w (id, after, upto)
         JOIN events e ON e.instance = w.id AND e.seq > w.after AND e.seq <= w.upto",
    )
    .bind(ids)
    .bind(after)
    .bind(upto)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    rows.iter()
        .map(|row| {
            let seq = to_u64(row.try_get("seq").map_err(map_sqlx)?, "seq")?;
            let payload: &str = row.try_get("payload").map_err(map_sqlx)?;
            fold::TailEvent::parse(
                row.try_get("instance").map_err(map_sqlx)?,
                seq,
                row.try_get("at").map_err(map_sqlx)?,
                payload,
            )
        })
        .collect()
}
