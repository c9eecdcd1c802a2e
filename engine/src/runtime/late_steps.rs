//! Issue 12.6: the lateness index covers the breaches recorded before it existed. A database
//! from before migration 0013 has each instance with an `overdue` event replayed once at start,
//! event by event, and after each breach the roles acting on the step (with their bound offices)
//! recorded as the commit would have (`runtime::late_steps`). Commits landing meanwhile write
//! their own rows; a row there already is kept, so the two never count a breach twice.

use chrono::{DateTime, Utc};

use super::{Runtime, RuntimeError};
use crate::core::{self, Event};
use crate::store::LateStep;

impl Runtime {
    /// Builds the index from the histories when the store says it is not built; `progress` is
    /// told the instances done and their number. Returns how many instances were read.
    pub async fn build_late_steps(&self, mut progress: impl FnMut(u64, u64)) -> Result<u64, RuntimeError> {
        if self.store.late_steps_built().await? {
            return Ok(0);
        }
        let ids = self.store.instances_with_breaches().await?;
        let all = ids.len() as u64;
        for (n, id) in ids.iter().enumerate() {
            let rows = self.breaches_of(id).await?;
            if !rows.is_empty() {
                self.store.put_late_steps(id, &rows).await?;
            }
            progress(n as u64 + 1, all);
        }
        self.store.mark_late_steps_built().await?;
        Ok(all)
    }

    /// Every breach in one instance's history, with who was late.
    async fn breaches_of(&self, id: &str) -> Result<Vec<LateStep>, RuntimeError> {
        let Some(record) = self.store.load_instance(id).await? else { return Ok(Vec::new()) };
        let program = self.program(&record.policy_name, Some(&record.policy_hash)).await?;
        let stored = self.store.events_until(id, DateTime::<Utc>::MAX_UTC).await?;
        let mut state = core::State::new();
        let mut out = Vec::new();
        for e in &stored {
            let event: Event = <Event as serde::Deserialize>::deserialize(&*e.payload)
                .map_err(|x| RuntimeError::Corrupt(format!("event {} of `{id}`: {x}", e.seq)))?;
            core::apply(&mut state, &event, e.at);
            if let Event::Overdue { node, due_at } = &event {
                for (role, office) in core::responsible(&program, &state, node) {
                    out.push(LateStep { node: node.clone(), role, office, due_at: *due_at, late_at: e.at });
                }
            }
        }
        Ok(out)
    }
}
