//! `civicflow audit export`: writes an audit bundle (`engine::audit::bundle`) from a database —
//! everything, one instance, or a time range — against the latest signed checkpoint.

use std::collections::HashMap;
use std::io::Write;

use civicflow_engine::audit::bundle::{Entry, EventRecord, Header, InstanceState, Scope, Since, FORMAT};
use civicflow_engine::audit::note::base64_encode;
use civicflow_engine::runtime::{Runtime, RuntimeError};
use civicflow_engine::store::{AuditLeaf, Store, StoredEvent};

/// Leaves read a query.
const CHUNK: u32 = 10_000;

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no checkpoint was signed yet: start the server on this database once")]
    NoCheckpoint,
    #[error("--since {since} is above the checkpoint's {size} leaves")]
    SinceTooLarge { since: u64, size: u64 },
    #[error("no instance `{0}` in the log")]
    NoInstance(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("writing the bundle: {0}")]
    Write(#[from] std::io::Error),
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub size: u64,
    pub leaves: u64,
    pub complete: bool,
}

fn record(e: &StoredEvent) -> EventRecord {
    EventRecord {
        at: e.at,
        actor: e.actor.clone(),
        role: e.role.clone(),
        kind: e.kind.clone(),
        payload: (*e.payload).clone(),
        prev_hash: e.prev_hash.clone(),
        hash: e.hash.clone(),
    }
}

fn in_range(scope: &Scope, e: Option<&StoredEvent>) -> bool {
    // A leaf whose event is gone is always exported: it is what an auditor must see.
    let Some(e) = e else { return true };
    scope.from.is_none_or(|f| e.at >= f) && scope.to.is_none_or(|t| e.at < t)
}

/// Writes the bundle for `scope` to `out`; `since` adds a consistency proof from that earlier
/// tree size (the one the auditor kept). `progress` is told the leaves written so far.
pub async fn export(
    rt: &Runtime,
    store: &dyn Store,
    scope: Scope,
    since: Option<u64>,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> Result<Exported, ExportError> {
    let cp = rt.latest_checkpoint().await?.ok_or(ExportError::NoCheckpoint)?;
    let size = cp.size;
    let since = match since {
        Some(s) if s > size => return Err(ExportError::SinceTooLarge { since: s, size }),
        Some(0) | None => None,
        Some(s) => Some(Since {
            size: s,
            hashes: rt.audit_consistency_proof(s, size).await?.iter().map(|h| base64_encode(h)).collect(),
        }),
    };
    let complete = scope.is_everything();
    // An instance bundle carries the row as served, for the verifier to replay against.
    let state = match &scope.instance {
        Some(id) => store.load_instance(id).await.map_err(RuntimeError::from)?.map(|r| InstanceState {
            id: r.id,
            version: r.version,
            status: r.status,
            snapshot: r.snapshot,
        }),
        None => None,
    };
    let header = Header {
        format: FORMAT.into(),
        checkpoint: cp.note.clone(),
        scope: scope.clone(),
        complete,
        exported_at: chrono::Utc::now(),
        since,
        state,
    };
    writeln!(out, "{}", serde_json::to_string(&header).map_err(std::io::Error::other)?)?;
    let mut written = 0u64;
    if let Some(instance) = &scope.instance {
        let leaves: Vec<AuditLeaf> = store
            .audit_leaves_of(instance)
            .await
            .map_err(RuntimeError::from)?
            .into_iter()
            .filter(|l| l.index < size)
            .collect();
        if leaves.is_empty() {
            return Err(ExportError::NoInstance(instance.clone()));
        }
        let mut events: HashMap<u64, StoredEvent> = HashMap::new();
        let mut after = 0;
        loop {
            let page = store.events(instance, after, CHUNK).await.map_err(RuntimeError::from)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            events.extend(page.into_iter().map(|e| (e.seq, e)));
        }
        let entries = leaves
            .iter()
            .map(|l| (l, events.get(&l.seq)))
            .filter(|(_, event)| in_range(&scope, *event))
            .map(|(l, event)| Entry::new(l.index, &l.instance, l.seq, &l.leaf, event.map(record)))
            .collect();
        written += write_entries(rt, out, entries, Some(size)).await?;
        progress(written);
    } else {
        let mut from = 0;
        while from < size {
            let want = u32::try_from(size - from).unwrap_or(u32::MAX).min(CHUNK);
            let chunk = store.audit_entries(from, want).await.map_err(RuntimeError::from)?;
            let Some(last) = chunk.last() else { break };
            from = last.leaf.index + 1;
            let entries = chunk
                .iter()
                .filter(|e| in_range(&scope, e.event.as_ref()))
                .map(|e| {
                    let l = &e.leaf;
                    Entry::new(l.index, &l.instance, l.seq, &l.leaf, e.event.as_ref().map(record))
                })
                .collect();
            // A complete bundle needs no proofs: the verifier recomputes the root.
            written += write_entries(rt, out, entries, (!complete).then_some(size)).await?;
            progress(written);
        }
    }
    out.flush()?;
    Ok(Exported { size, leaves: written, complete })
}

/// Writes `entries` a line each, with their inclusion proofs in the tree of `prove_in` when
/// given (all of them built in one pass over the tree); how many.
async fn write_entries(
    rt: &Runtime,
    out: &mut dyn Write,
    mut entries: Vec<Entry>,
    prove_in: Option<u64>,
) -> Result<u64, ExportError> {
    if let Some(size) = prove_in {
        let indexes: Vec<u64> = entries.iter().map(|e| e.index).collect();
        let proofs = rt.audit_inclusion_proofs(&indexes, size).await?;
        for (entry, proof) in entries.iter_mut().zip(proofs) {
            entry.proof = Some(proof.iter().map(|h| base64_encode(h)).collect());
        }
    }
    for entry in &entries {
        writeln!(out, "{}", serde_json::to_string(entry).map_err(std::io::Error::other)?)?;
    }
    Ok(entries.len() as u64)
}
