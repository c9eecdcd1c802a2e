//! The open-step table (issue 10.6) as the runtime keeps it: each commit carries the rows of the
//! nodes it changed (`Runtime::commit_for`), and a database that held instances before the
//! table existed has it built once, from every instance's state, before the node serves.

use serde::Deserialize;

use crate::core::{self, OpenStep};
use crate::store::{InstanceFilter, OpenStepRow, MAX_PAGE_SIZE};

use super::{Runtime, RuntimeError, RETRIES};

/// The store's rows of open steps: one per step and reader.
pub fn open_step_rows(steps: Vec<OpenStep>) -> Vec<OpenStepRow> {
    steps
        .into_iter()
        .flat_map(|s| {
            s.readers.into_iter().map(move |r| OpenStepRow {
                node: s.node.clone(),
                reader: r.key(),
                due_at: s.due_at,
                overdue: s.overdue,
            })
        })
        .collect()
}

impl Runtime {
    /// Builds the open-step table from every instance's state, unless the store says it is built
    /// (a new database, or one built before). `progress` is told `(instances done, in all)` after
    /// each page. Returns how many instances were read (0 when nothing was to be done). Run it
    /// before serving: on several nodes, any one of them; commits that land meanwhile are not
    /// lost (an instance that moved while its rows were written is read again).
    pub async fn build_open_steps(&self, mut progress: impl FnMut(u64, u64)) -> Result<u64, RuntimeError> {
        if self.store.open_steps_built().await? {
            return Ok(0);
        }
        // Oldest first, every status: the order does not move while instances are added.
        let mut filter = InstanceFilter { page_size: MAX_PAGE_SIZE, ..InstanceFilter::default() };
        let mut done = 0;
        loop {
            let page = self.store.list_instances(&filter).await?;
            for record in &page.items {
                self.put_open_steps_of(record.clone()).await?;
            }
            done += page.items.len() as u64;
            progress(done, page.total);
            if page.items.len() < MAX_PAGE_SIZE as usize {
                break;
            }
            filter.page += 1;
        }
        self.store.mark_open_steps_built().await?;
        Ok(done)
    }

    /// Writes one instance's rows as of its version, reading it again while commits move it.
    async fn put_open_steps_of(&self, mut record: crate::store::InstanceRecord) -> Result<(), RuntimeError> {
        for _ in 0..RETRIES {
            let program = self.program(&record.policy_name, Some(&record.policy_hash)).await?;
            let state = core::State::deserialize(&record.snapshot)
                .map_err(|e| RuntimeError::Corrupt(format!("snapshot of {}: {e}", record.id)))?;
            let rows = open_step_rows(core::open_steps(&program, &state));
            if self.store.put_open_steps(&record.id, record.version, &rows).await? {
                return Ok(());
            }
            record = self
                .store
                .load_instance(&record.id)
                .await?
                .ok_or_else(|| RuntimeError::NotFound { what: "instance", id: record.id.clone() })?;
        }
        Err(RuntimeError::Busy)
    }
}
