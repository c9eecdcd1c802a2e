//! Issue 10.1: the state of hot instances kept in memory, so that a command does not read and
//! parse the instance's snapshot again. Bounded by bytes (an estimate of each state's size) and
//! evicted least-recently-used.
//!
//! The cache serves **commands only**: a stale entry (another node, or another runtime on the
//! same store, committed since) costs one lost compare-and-set at commit, after which the
//! runtime drops the entry and decides again on a fresh load. Reads for people (pages, `GET`)
//! keep going to the store, where a stale answer would not be caught.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use serde_json::Value;

use crate::core::State;
use crate::store::InstanceRecord;

/// The default bound of [`InstanceCache`]: 8 MiB of estimated state (about a thousand small
/// instances: what a node acts on in a moment, not every instance it holds).
pub const DEFAULT_CACHE_BYTES: usize = 8 << 20;

/// An instance's record (its snapshot `Null`) and state as a command decides on them, shared
/// with the cache.
pub type CommandCopy = Arc<(InstanceRecord, State)>;

/// Hot instances' records (without their snapshot) and states.
#[derive(Debug)]
pub struct InstanceCache {
    inner: Mutex<Inner>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    entries: LruCache<String, Entry>,
    bytes: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    cached: CommandCopy,
    bytes: usize,
}

/// What an [`InstanceCache`] holds and has served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

impl InstanceCache {
    /// A cache of at most `capacity` estimated bytes; 0 keeps nothing.
    pub fn new(capacity: usize) -> Self {
        InstanceCache {
            inner: Mutex::new(Inner { entries: LruCache::unbounded(), bytes: 0 }),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every change is one call).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The instance's record and state as this runtime last committed or loaded them.
    pub fn get(&self, id: &str) -> Option<CommandCopy> {
        let found = self.lock().entries.get(id).map(|e| e.cached.clone());
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// What the cache holds for `id`, without counting it as served or refreshing its place.
    pub fn peek(&self, id: &str) -> Option<CommandCopy> {
        self.lock().entries.peek(id).map(|e| e.cached.clone())
    }

    /// The estimated bytes of what the cache holds for `id`.
    pub fn bytes_of(&self, id: &str) -> Option<usize> {
        self.lock().entries.peek(id).map(|e| e.bytes)
    }

    /// Keeps `record` (its snapshot dropped) and `state`, of `bytes` estimated bytes, unless the
    /// cache already holds a later version; evicts the least recently used past the bound.
    /// Returns the copy (kept or not), for the caller to decide on.
    pub fn put(&self, mut record: InstanceRecord, state: State, bytes: usize) -> CommandCopy {
        record.snapshot = Value::Null;
        let copy: CommandCopy = Arc::new((record, state));
        let id = &copy.0.id;
        if bytes > self.capacity {
            self.remove(id);
            return copy;
        }
        let mut inner = self.lock();
        if inner.entries.peek(id).is_some_and(|e| e.cached.0.version > copy.0.version) {
            return copy;
        }
        if let Some(old) = inner.entries.put(id.clone(), Entry { cached: copy.clone(), bytes }) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
        while inner.bytes > self.capacity {
            let Some((_, evicted)) = inner.entries.pop_lru() else { break };
            inner.bytes -= evicted.bytes;
        }
        drop(inner);
        copy
    }

    /// Keeps an instance read from the store ([`crate::store::Store::load_states`]), its size
    /// estimated from its snapshot's length.
    pub fn put_loaded(&self, loaded: crate::store::LoadedState) -> CommandCopy {
        let bytes = estimated_bytes(loaded.state.nodes.len(), loaded.snapshot_bytes);
        self.put(loaded.record, loaded.state, bytes)
    }

    /// Forgets an instance (its commit lost a race: what is cached is stale).
    pub fn remove(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(old) = inner.entries.pop(id) {
            inner.bytes -= old.bytes;
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            entries: inner.entries.len(),
            bytes: inner.bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

/// An estimate of the memory a state takes, from its snapshot. A state's nodes are shared
/// `NodeState`s (480 bytes and an `Arc`'s two counters each) under a persistent B-tree whose
/// chunks hold 16 keys and pointers, about two thirds full once split; the text its strings hold
/// comes on top. Measured (`cargo run --release -p civicflow-engine --example state_size`: 50,000 states
/// parsed from one snapshot, resident size per state, issue 10.2): 1.4 kB for one step, 2.6 kB
/// for five, 29.5 kB for fifty; this gives 1.7, 4.8 and 42 kB — over, never under.
/// `nodes` is the state's number of nodes, `text` the bytes of text it holds (a commit passes
/// its snapshot's JSON length, and so does a state read from the store: an over-estimate, field
/// names are not stored).
pub fn estimated_bytes(nodes: usize, text: usize) -> usize {
    const CHUNK: usize = 16;
    let chunks = (nodes * 3 / 2).div_ceil(CHUNK).max(1);
    let chunk_bytes = CHUNK * (std::mem::size_of::<String>() + std::mem::size_of::<usize>()) + 64;
    std::mem::size_of::<State>()
        + nodes * (std::mem::size_of::<crate::core::NodeState>() + 16)
        + chunks * chunk_bytes
        + text
}

/// The bytes of the strings a snapshot holds (keys included), and a word or four for every
/// element of a list or map (acts, parameters, values).
pub fn text_bytes(value: &Value) -> usize {
    const PER_ELEMENT: usize = 32;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(|v| PER_ELEMENT + text_bytes(v)).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| PER_ELEMENT + k.len() + text_bytes(v)).sum(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn record(id: &str, version: u64) -> InstanceRecord {
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 8, 0, 0).unwrap();
        InstanceRecord {
            id: id.into(),
            policy_name: "p".into(),
            policy_hash: "h".into(),
            version,
            status: "running".into(),
            snapshot: serde_json::json!({ "large": "x".repeat(100) }),
            snapshot_version: version,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn evicts_the_least_recently_used_past_its_bytes_and_keeps_the_latest_version() {
        let cache = InstanceCache::new(250);
        cache.put(record("a", 1), State::new(), 100);
        cache.put(record("b", 1), State::new(), 100);
        assert!(cache.get("a").is_some()); // a is now the most recently used
        cache.put(record("c", 1), State::new(), 100);
        assert!(cache.get("b").is_none(), "b was the least recently used");
        let a = cache.get("a").unwrap();
        assert_eq!((a.0.version, &a.0.snapshot), (1, &Value::Null));
        assert_eq!(cache.stats(), CacheStats { entries: 2, bytes: 200, hits: 2, misses: 1 });

        // An older version never replaces a newer one; a newer one does.
        cache.put(record("a", 3), State::new(), 50);
        cache.put(record("a", 2), State::new(), 50);
        assert_eq!(cache.get("a").unwrap().0.version, 3);
        assert_eq!(cache.stats().bytes, 150);
        // Larger than the whole cache: not kept, and an older copy is dropped.
        cache.put(record("c", 2), State::new(), 251);
        assert!(cache.get("c").is_none());
        cache.remove("a");
        assert_eq!((cache.stats().entries, cache.stats().bytes), (0, 0));
    }

    #[test]
    fn the_estimate_counts_the_node_tree_and_the_text() {
        let base = std::mem::size_of::<State>();
        let node = std::mem::size_of::<crate::core::NodeState>() + 16;
        let chunk = 16 * (std::mem::size_of::<String>() + std::mem::size_of::<usize>()) + 64;
        assert_eq!(estimated_bytes(0, 0), base + chunk);
        // Two nodes take one chunk.
        assert_eq!(estimated_bytes(2, 100), base + 2 * node + chunk + 100);
        // Twenty nodes: 30 slots, two chunks.
        assert_eq!(estimated_bytes(20, 1000), base + 20 * node + 2 * chunk + 1000);
        // The text an event adds: the keys and strings, 32 an element.
        let two = serde_json::json!({ "nodes": { "a": { "def": "a" }, "b": { "def": "b" } } });
        assert_eq!(text_bytes(&two), (32 + 5) + 2 * (32 + 1 + 32 + 3 + 1));
    }
}
