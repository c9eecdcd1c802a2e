//! Issue 12.4: the audit bundle — a self-contained export of (part of) the log that an auditor
//! checks with no server and no database — and its verifier. Pure: text in, findings out.
//!
//! A bundle is JSON Lines (docs/audit.md is the format's reference):
//! - line 1, the [`Header`]: the format, the signed checkpoint the bundle is checked against,
//!   what it covers, and optionally a consistency proof from an earlier tree size;
//! - then one [`Entry`] per leaf it covers, in leaf order: the leaf hash, the event as stored
//!   (`null` when its record is gone), its canonical encoding, and — unless the bundle holds every
//!   leaf of the checkpointed tree — the leaf's inclusion proof.
//!
//! [`verify`] checks everything it can and reports every fault it finds, each naming its place:
//! a bad signature, an event whose content no longer hashes to its leaf (and which field, when
//! the bundle's two copies of it disagree), an event not in the signed tree, a deleted event, a
//! cut end, a broken per-instance chain, and a checkpoint older than, or forked from, one the
//! auditor kept before.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::merkle::{self, Hash};
use super::note::{base64_decode, base64_encode, Checkpoint, NoteVerifier};
use super::{chain_hash, decode, encode, leaf_hash, EventFields, GENESIS};

/// The first line's `format`.
pub const FORMAT: &str = "civicflow-audit-bundle-v1";

/// What a bundle covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// One instance's events only.
    pub instance: Option<String>,
    /// Events from this instant (inclusive) …
    pub from: Option<DateTime<Utc>>,
    /// … to this one (exclusive).
    pub to: Option<DateTime<Utc>>,
}

impl Scope {
    /// Whether the scope is the whole log.
    pub fn is_everything(&self) -> bool {
        self.instance.is_none() && self.from.is_none() && self.to.is_none()
    }
}

/// A consistency proof from an earlier tree (the one an auditor kept) to the bundle's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    pub size: u64,
    /// RFC 9162 §2.1.4, base64.
    pub hashes: Vec<String>,
}

/// The first line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    /// The signed checkpoint (signed note text) everything is checked against.
    pub checkpoint: String,
    pub scope: Scope,
    /// Whether the entries are every leaf of the checkpointed tree (then they carry no proofs:
    /// the root is recomputed from them).
    pub complete: bool,
    pub exported_at: DateTime<Utc>,
    /// A consistency proof from an earlier tree size, when the export was asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Since>,
    /// An instance bundle's row as the server served it: checked against the replay of the
    /// bundle's events (the stored state is never trusted, issue 12.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<InstanceState>,
}

/// An instance's row: its version, status and state (the snapshot with every event folded in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub id: String,
    pub version: u64,
    pub status: String,
    pub snapshot: Value,
}

/// An event as stored, with its per-instance chain hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: Option<String>,
    pub kind: String,
    pub payload: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// One leaf of the tree with the event it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    pub instance: String,
    pub seq: u64,
    /// The leaf hash, base64.
    pub leaf: String,
    /// The event as stored; `None` when its record is gone.
    pub event: Option<EventRecord>,
    /// The event's canonical encoding (civicflow-event-v1), base64; `None` with the event.
    pub encoding: Option<String>,
    /// The leaf's inclusion proof in the checkpointed tree, base64; absent in a complete bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Vec<String>>,
}

impl Entry {
    /// The entry for a leaf and its event (the encoding computed from the event).
    pub fn new(index: u64, instance: &str, seq: u64, leaf: &Hash, event: Option<EventRecord>) -> Entry {
        let encoding = event.as_ref().map(|e| base64_encode(&encode(&e.fields(instance, seq))));
        Entry { index, instance: instance.into(), seq, leaf: base64_encode(leaf), event, encoding, proof: None }
    }
}

impl EventRecord {
    fn fields<'a>(&'a self, instance: &'a str, seq: u64) -> EventFields<'a> {
        EventFields {
            seq,
            instance,
            at: self.at,
            actor: &self.actor,
            role: self.role.as_deref(),
            kind: &self.kind,
            payload: &self.payload,
        }
    }
}

/// A tree an auditor kept before (from a witness's store, or a checkpoint saved by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub size: u64,
    pub root: Hash,
}

/// One fault, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `checkpoint`, `line 7`, `event c-1/3 (leaf 17)`, `instance c-1`, `bundle`.
    pub place: String,
    pub what: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.what)
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The checkpoint, when its signature verified.
    pub checkpoint: Option<Checkpoint>,
    /// Entries read, and those with their event.
    pub leaves: u64,
    pub events: u64,
    pub instances: u64,
    /// Empty when everything holds.
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

fn finding(place: impl Into<String>, what: impl Into<String>) -> Finding {
    Finding { place: place.into(), what: what.into() }
}

fn hash_of(text: &str) -> Option<Hash> {
    base64_decode(text).and_then(|b| Hash::try_from(b).ok())
}

/// Checks a bundle against the log's public key and, when given, a tree kept before.
pub fn verify(bundle: &str, key: &NoteVerifier, kept: Option<&Kept>) -> Report {
    let mut report = Report { checkpoint: None, leaves: 0, events: 0, instances: 0, findings: vec![] };
    let mut lines = bundle.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, first)) = lines.next() else {
        report.findings.push(finding("bundle", "empty"));
        return report;
    };
    let header: Header = match serde_json::from_str(first) {
        Ok(h) => h,
        Err(e) => {
            report.findings.push(finding("line 1", format!("not a bundle header: {e}")));
            return report;
        }
    };
    if header.format != FORMAT {
        report.findings.push(finding("line 1", format!("format `{}`, not `{FORMAT}`", header.format)));
        return report;
    }
    let checkpoint = match Checkpoint::open(&header.checkpoint, key) {
        Ok(c) => c,
        Err(e) => {
            report.findings.push(finding("checkpoint", format!("{e}: nothing in the bundle can be trusted")));
            return report;
        }
    };
    let mut entries = Vec::new();
    for (n, line) in lines {
        match serde_json::from_str::<Entry>(line) {
            Ok(e) => entries.push(e),
            Err(e) => report.findings.push(finding(format!("line {}", n + 1), format!("not an entry: {e}"))),
        }
    }
    report.leaves = entries.len() as u64;
    check_entries(&header, &checkpoint, &entries, &mut report.findings);
    check_chains(&header.scope, &entries, &mut report.findings);
    if let Some(state) = &header.state {
        check_replay(state, &entries, &mut report.findings);
    }
    if let Some(kept) = kept {
        check_kept(&header, &checkpoint, &entries, kept, &mut report.findings);
    }
    report.events = entries.iter().filter(|e| e.event.is_some()).count() as u64;
    report.instances =
        entries.iter().map(|e| e.instance.as_str()).collect::<std::collections::BTreeSet<_>>().len() as u64;
    report.checkpoint = Some(checkpoint);
    report
}

fn place(e: &Entry) -> String {
    format!("event {}/{} (leaf {})", e.instance, e.seq, e.index)
}

/// Each entry's content against its leaf, and its leaf against the signed root.
fn check_entries(header: &Header, cp: &Checkpoint, entries: &[Entry], out: &mut Vec<Finding>) {
    let mut leaves: Vec<Hash> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let Some(leaf) = hash_of(&e.leaf) else {
            out.push(finding(place(e), "its leaf is not 32 bytes of base64"));
            continue;
        };
        if header.complete && e.index != i as u64 {
            out.push(finding(place(e), format!("out of place: the bundle's leaf {i} should be here")));
        }
        leaves.push(leaf);
        check_content(e, &leaf, out);
        if !header.complete {
            let proof: Option<Vec<Hash>> =
                e.proof.as_ref().and_then(|p| p.iter().map(|h| hash_of(h)).collect::<Option<Vec<_>>>());
            match proof {
                None => out.push(finding(place(e), "it carries no readable inclusion proof")),
                Some(p) if !merkle::verify_inclusion(&leaf, e.index, cp.size, &p, &cp.root) => out.push(finding(
                    place(e),
                    format!(
                        "not in the signed tree of {} leaves: its proof does not lead to the checkpoint's root",
                        cp.size
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    if header.complete {
        let n = entries.len() as u64;
        if n < cp.size {
            out.push(finding(
                "bundle",
                format!("truncated: the checkpoint signs {} leaves, the bundle holds {n}", cp.size),
            ));
        } else if n > cp.size {
            out.push(finding("bundle", format!("{n} leaves, more than the {} the checkpoint signs", cp.size)));
        } else if merkle::root(&leaves) != cp.root {
            out.push(finding(
                "bundle",
                "its leaves do not make the checkpoint's root: a leaf was changed, added or removed",
            ));
        }
    }
}

/// The event against its encoding and the encoding against the leaf; names the field that
/// differs when the two copies disagree.
fn check_content(e: &Entry, leaf: &Hash, out: &mut Vec<Finding>) {
    let Some(event) = &e.event else {
        out.push(finding(place(e), "in the log, but its record is gone from the history (deleted)"));
        return;
    };
    let from_event = encode(&event.fields(&e.instance, e.seq));
    let Some(encoding) = e.encoding.as_deref().and_then(base64_decode) else {
        out.push(finding(place(e), "its encoding is missing or not base64"));
        return;
    };
    if from_event != encoding {
        let what = match (decode(&encoding), decode(&from_event)) {
            (Ok(enc), Ok(ev)) => enc
                .fields()
                .iter()
                .zip(ev.fields().iter())
                .find(|(a, b)| a.1 != b.1)
                .map(|(a, b)| format!("field `{}` is `{}` in the event but `{}` in its encoding", a.0, b.1, a.1))
                .unwrap_or_else(|| "the event and its encoding differ".into()),
            (Err(why), _) => format!("its encoding cannot be read: {why}"),
            (_, Err(why)) => format!("the event cannot be encoded: {why}"),
        };
        out.push(finding(place(e), what));
    }
    if merkle::leaf_hash(&encoding) != *leaf {
        out.push(finding(
            place(e),
            if from_event == encoding {
                "its content no longer hashes to its leaf: the event was changed after it was logged"
            } else {
                "its encoding does not hash to its leaf"
            },
        ));
    }
}

/// Per instance: the events numbered from 1 without a gap (when the bundle holds all of them),
/// the chain hashes recomputed, and a cut end named as such.
fn check_chains(scope: &Scope, entries: &[Entry], out: &mut Vec<Finding>) {
    let whole_histories = scope.from.is_none() && scope.to.is_none();
    let mut by_instance: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_instance.entry(e.instance.as_str()).or_default().push(e);
    }
    for (instance, mut list) in by_instance {
        list.sort_by_key(|e| e.seq);
        if whole_histories {
            let mut expected = 1;
            for e in &list {
                if e.seq > expected {
                    let what = if expected + 1 == e.seq {
                        format!("event {expected} is not in the log")
                    } else {
                        format!("events {expected} to {} are not in the log", e.seq - 1)
                    };
                    out.push(finding(format!("instance {instance}"), what));
                } else if e.seq < expected {
                    out.push(finding(place(e), "logged twice"));
                }
                expected = e.seq + 1;
            }
            // Deleted events at the end: the history was cut.
            let present = list.iter().rposition(|e| e.event.is_some()).map_or(0, |i| i + 1);
            if present < list.len() {
                let (first, last) = (list[present].seq, list[list.len() - 1].seq);
                let what = if first == last {
                    format!("its history was cut: event {first} is in the log but not in the history")
                } else {
                    format!("its history was cut: events {first} to {last} are in the log but not in the history")
                };
                out.push(finding(format!("instance {instance}"), what));
            }
        }
        // The chain, over the events present, each from its stored `prev_hash`.
        let mut prev: Option<(u64, String)> = None;
        for e in &list {
            let Some(event) = &e.event else {
                prev = None;
                continue;
            };
            let expected_prev = match &prev {
                Some((seq, hash)) if *seq + 1 == e.seq => Some(hash.clone()),
                _ if e.seq == 1 => Some(hex::encode(GENESIS)),
                _ => None,
            };
            if let Some(expected_prev) = expected_prev {
                if event.prev_hash != expected_prev {
                    out.push(finding(place(e), "its prev_hash is not the hash of the event before it"));
                }
            }
            let prev_bytes: Option<Hash> = hex::decode(&event.prev_hash).ok().and_then(|b| b.try_into().ok());
            let leaf = leaf_hash(&event.fields(&e.instance, e.seq));
            match prev_bytes {
                Some(p) if hex::encode(chain_hash(&p, &leaf)) == event.hash => {}
                _ => out.push(finding(place(e), "its chain hash does not match its content")),
            }
            prev = Some((e.seq, event.hash.clone()));
        }
    }
}

/// The row against the replay of the instance's events in the bundle.
fn check_replay(state: &InstanceState, entries: &[Entry], out: &mut Vec<Finding>) {
    let mut mine: Vec<&Entry> = entries.iter().filter(|e| e.instance == state.id && e.event.is_some()).collect();
    mine.sort_by_key(|e| e.seq);
    let mut events = Vec::with_capacity(mine.len());
    for e in mine {
        let Some(record) = &e.event else { continue };
        match serde_json::from_value::<crate::core::Event>(record.payload.clone()) {
            Ok(event) => events.push((event, record.at)),
            Err(why) => {
                out.push(finding(place(e), format!("its payload is not an event the replay knows: {why}")));
                return;
            }
        }
    }
    if let Some(m) = super::replay::check_state(&events, state.version, &state.status, &state.snapshot) {
        out.push(finding(format!("instance {}", state.id), m.to_string()));
    }
}

/// The bundle's checkpoint against one kept before: not older, not forked.
fn check_kept(header: &Header, cp: &Checkpoint, entries: &[Entry], kept: &Kept, out: &mut Vec<Finding>) {
    if kept.size > cp.size {
        out.push(finding(
            "checkpoint",
            format!(
                "rolled back: it signs {} leaves, fewer than the {} of a checkpoint kept before",
                cp.size, kept.size
            ),
        ));
        return;
    }
    if kept.size == cp.size {
        if kept.root != cp.root {
            out.push(finding(
                "checkpoint",
                format!("forked: a checkpoint kept before signs another root for {} leaves", cp.size),
            ));
        }
        return;
    }
    if kept.size == 0 {
        return;
    }
    if let Some(since) = header.since.as_ref().filter(|s| s.size == kept.size) {
        let proof: Option<Vec<Hash>> = since.hashes.iter().map(|h| hash_of(h)).collect();
        if !proof.is_some_and(|p| merkle::verify_consistency(kept.size, cp.size, &p, &kept.root, &cp.root)) {
            out.push(finding(
                "checkpoint",
                format!("forked: the tree of {} leaves kept before is not a prefix of this one", kept.size),
            ));
        }
        return;
    }
    if header.complete && entries.len() as u64 >= kept.size {
        let leaves: Option<Vec<Hash>> = entries[..kept.size as usize].iter().map(|e| hash_of(&e.leaf)).collect();
        if leaves.map(|l| merkle::root(&l)) != Some(kept.root) {
            out.push(finding(
                "checkpoint",
                format!("forked: the first {} leaves no longer make the root kept before", kept.size),
            ));
        }
        return;
    }
    out.push(finding(
        "checkpoint",
        format!(
            "not checked against the checkpoint of {} leaves kept before: export with `--since {}`",
            kept.size, kept.size
        ),
    ));
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
