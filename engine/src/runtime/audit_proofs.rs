//! Issue 12.3: inclusion and consistency proofs of the global tree, from the leaves the store
//! keeps.
//!
//! A proof needs the roots of O(log n) subtrees, some of them half the tree. A perfect subtree
//! never changes once complete, so this node remembers the roots of those of 256 leaves and more
//! ([`NodeCache`]): the first proof over a large tree reads its leaves once, 4,096 a query, and
//! later proofs read at most two blocks of 256 leaves plus what the tree grew by.
//!
//! The walk of RFC 6962 (`audit::merkle`) asks for subtrees synchronously, while the store is
//! async: a proof is walked twice, first noting which subtrees it needs, then, once they are
//! read, answering from them.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Runtime, RuntimeError};
use crate::audit::merkle::{self, node_hash, Hash, ProofError, Subtrees};

/// The smallest perfect subtree whose root is remembered: 2^8 = 256 leaves.
const BLOCK_LEVEL: u32 = 8;
/// The largest read of leaves: 2^12 = 4,096 rows, about a megabyte in flight. A read of 65,536
/// at once (what a tree crossing 2^16 leaves asked for) held ~30 MB of rows and, on the serve
/// path, took the server's peak RSS from ~46 to ~140 MB under load.
const READ_LEVEL: u32 = 12;

/// Roots of perfect subtrees of 256 leaves and more, by (level, index at that level).
#[derive(Debug, Default)]
pub struct NodeCache {
    roots: Mutex<HashMap<(u32, u64), Hash>>,
}

impl NodeCache {
    fn get(&self, level: u32, index: u64) -> Option<Hash> {
        self.roots.lock().ok().and_then(|m| m.get(&(level, index)).copied())
    }

    fn put(&self, level: u32, index: u64, root: Hash) {
        if let Ok(mut m) = self.roots.lock() {
            m.insert((level, index), root);
        }
    }
}

/// Blocks of 256 leaves read for one proof, by block number.
type Blocks = HashMap<u64, Vec<Hash>>;

/// Notes the subtrees a walk asks for and answers with zeros (the walk's shape does not depend on
/// the hashes).
#[derive(Default)]
struct Needed(Vec<(u64, u64)>);

impl Subtrees for Needed {
    type Error = std::convert::Infallible;
    fn subtree(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error> {
        self.0.push((start, end));
        Ok([0; 32])
    }
}

/// Answers a walk from the subtrees read for it.
struct Known(HashMap<(u64, u64), Hash>);

impl Subtrees for Known {
    type Error = (u64, u64);
    fn subtree(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error> {
        self.0.get(&(start, end)).copied().ok_or((start, end))
    }
}

fn out_of_range<E>(what: String) -> impl FnOnce(ProofError<E>) -> RuntimeError {
    move |e| match e {
        ProofError::OutOfRange => RuntimeError::OutOfRange(what),
        ProofError::Source(_) => RuntimeError::Corrupt("a proof asked for a subtree it had not read".into()),
    }
}

impl Runtime {
    /// The audit path of leaf `index` in the tree of the first `size` leaves.
    pub async fn audit_inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, RuntimeError> {
        Ok(self.audit_inclusion_proofs(&[index], size).await?.pop().unwrap_or_default())
    }

    /// The audit paths of several leaves in the tree of the first `size` leaves, in their order,
    /// the tree read once for all (a page of a history, an export).
    pub async fn audit_inclusion_proofs(&self, indexes: &[u64], size: u64) -> Result<Vec<Vec<Hash>>, RuntimeError> {
        self.check_size(size).await?;
        let what = |index: u64| format!("leaf {index} is not in a tree of {size}");
        let mut needed = Needed::default();
        for &index in indexes {
            merkle::inclusion_proof(index, size, &mut needed).map_err(out_of_range(what(index)))?;
        }
        let mut known = Known(self.read_subtrees(needed.0).await?);
        indexes
            .iter()
            .map(|&index| merkle::inclusion_proof(index, size, &mut known).map_err(out_of_range(what(index))))
            .collect()
    }

    /// The proof that the tree of `first` leaves is a prefix of the tree of `second`.
    pub async fn audit_consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, RuntimeError> {
        self.check_size(second).await?;
        let what = || format!("no consistency proof from a tree of {first} to one of {second}");
        let mut needed = Needed::default();
        merkle::consistency_proof(first, second, &mut needed).map_err(out_of_range(what()))?;
        let mut known = Known(self.read_subtrees(needed.0).await?);
        merkle::consistency_proof(first, second, &mut known).map_err(out_of_range(what()))
    }

    /// The root of the tree of the first `size` leaves, from the leaves (not from the frontier a
    /// commit stored): what checkpoints are checked against before one is signed.
    pub async fn audit_root_at(&self, size: u64) -> Result<Hash, RuntimeError> {
        if size == 0 {
            return Ok(merkle::empty_root());
        }
        self.check_size(size).await?;
        Ok(self.read_subtrees(vec![(0, size)]).await?.remove(&(0, size)).unwrap_or_default())
    }

    async fn check_size(&self, size: u64) -> Result<(), RuntimeError> {
        let tree = self.store.audit_tree().await?;
        if size > tree.size {
            return Err(RuntimeError::OutOfRange(format!("the tree has {} leaves, not {size}", tree.size)));
        }
        Ok(())
    }

    async fn read_subtrees(&self, mut ranges: Vec<(u64, u64)>) -> Result<HashMap<(u64, u64), Hash>, RuntimeError> {
        // Proofs of neighbouring leaves ask for the same subtrees.
        ranges.sort_unstable();
        ranges.dedup();
        let mut out = HashMap::with_capacity(ranges.len());
        // The blocks of 256 leaves read for this proof: its small subtrees near one leaf all lie
        // in one or two blocks, each read once.
        let mut blocks = Blocks::new();
        for (start, end) in ranges {
            let root = self.range_root(start, end, &mut blocks).await?;
            out.insert((start, end), root);
        }
        Ok(out)
    }

    /// The root of leaves `start..end` as RFC 6962 builds it: split at the largest power of two
    /// below the length; each perfect, aligned part from [`Runtime::perfect_root`].
    async fn range_root(&self, start: u64, end: u64, blocks: &mut Blocks) -> Result<Hash, RuntimeError> {
        // The perfect parts, left to right, then folded from the right as the RFC's splits nest.
        let mut parts = Vec::new();
        let mut at = start;
        while at < end {
            let len = end - at;
            let mut size = if len.is_power_of_two() { len } else { 1 << (63 - len.leading_zeros()) };
            // An unaligned start (not met in the RFC's walks) is taken in smaller aligned parts.
            while !at.is_multiple_of(size) {
                size >>= 1;
            }
            parts.push(self.perfect_root(size.trailing_zeros(), at / size, blocks).await?);
            at += size;
        }
        let mut parts = parts.into_iter().rev();
        let last = parts.next().unwrap_or_else(merkle::empty_root);
        Ok(parts.fold(last, |right, left| node_hash(&left, &right)))
    }

    /// The root of the perfect subtree of 2^`level` leaves at `index` (leaves
    /// `index·2^level .. (index+1)·2^level`).
    async fn perfect_root(&self, level: u32, index: u64, blocks: &mut Blocks) -> Result<Hash, RuntimeError> {
        if level >= BLOCK_LEVEL {
            if let Some(root) = self.audit_nodes.get(level, index) {
                return Ok(root);
            }
        }
        // From its two halves when it is too large for one read, or when its left half is
        // remembered already (the tree grew into its right half since): only what was not read
        // before is read, never more than 2^READ_LEVEL leaves a query.
        if level > READ_LEVEL || (level > BLOCK_LEVEL && self.audit_nodes.get(level - 1, 2 * index).is_some()) {
            let left = Box::pin(self.perfect_root(level - 1, 2 * index, blocks)).await?;
            let right = Box::pin(self.perfect_root(level - 1, 2 * index + 1, blocks)).await?;
            let root = node_hash(&left, &right);
            self.audit_nodes.put(level, index, root);
            return Ok(root);
        }
        let start = index << level;
        let count = 1u64 << level;
        if level < BLOCK_LEVEL {
            let block = start >> BLOCK_LEVEL;
            let from = (start - (block << BLOCK_LEVEL)) as usize;
            if blocks.get(&block).is_none_or(|b| b.len() < from + count as usize) {
                // The whole block as far as it goes (a block at the tree's end may be short).
                let read = self.read_leaf_hashes_upto(block << BLOCK_LEVEL, 1 << BLOCK_LEVEL).await?;
                blocks.insert(block, read);
            }
            let leaves = blocks.get(&block).map(|b| b.as_slice()).unwrap_or_default();
            let part = leaves.get(from..from + count as usize).ok_or_else(|| {
                RuntimeError::Corrupt(format!(
                    "the audit log has no leaf {}",
                    start + leaves.len().saturating_sub(from) as u64
                ))
            })?;
            return Ok(merkle::root(part));
        }
        let leaves = self.read_leaf_hashes(start, count).await?;
        // Remember every block of 256 and what they make up, to this level.
        let blocks: Vec<Hash> = leaves.chunks(1 << BLOCK_LEVEL).map(merkle::root).collect();
        Ok(self.combine_up(blocks, BLOCK_LEVEL, start >> BLOCK_LEVEL))
    }

    /// Pairs up the roots of consecutive perfect subtrees of one `level` (from `first` on, a
    /// power of two of them) into one root, remembering every root on the way.
    fn combine_up(&self, mut roots: Vec<Hash>, mut level: u32, mut first: u64) -> Hash {
        loop {
            for (i, r) in roots.iter().enumerate() {
                self.audit_nodes.put(level, first + i as u64, *r);
            }
            if roots.len() <= 1 {
                return roots.first().copied().unwrap_or_else(merkle::empty_root);
            }
            roots = roots.chunks(2).map(|p| if p.len() == 2 { node_hash(&p[0], &p[1]) } else { p[0] }).collect();
            level += 1;
            first /= 2;
        }
    }

    /// Up to `count` leaf hashes from index `start`, in order: fewer where the log ends.
    async fn read_leaf_hashes_upto(&self, start: u64, count: u32) -> Result<Vec<Hash>, RuntimeError> {
        let leaves = self.store.audit_leaves(start, count).await?;
        let mut out = Vec::with_capacity(leaves.len());
        for (i, leaf) in leaves.iter().enumerate() {
            if leaf.index != start + i as u64 {
                return Err(RuntimeError::Corrupt(format!("the audit log has no leaf {}", start + i as u64)));
            }
            out.push(leaf.leaf);
        }
        Ok(out)
    }

    /// Exactly `count` leaf hashes from index `start`, in order.
    async fn read_leaf_hashes(&self, start: u64, count: u64) -> Result<Vec<Hash>, RuntimeError> {
        let mut out = Vec::with_capacity(count as usize);
        while (out.len() as u64) < count {
            let from = start + out.len() as u64;
            let want = u32::try_from(count - out.len() as u64).unwrap_or(u32::MAX).min(1 << READ_LEVEL);
            let leaves = self.store.audit_leaves(from, want).await?;
            if leaves.is_empty() {
                return Err(RuntimeError::Corrupt(format!("the audit log has no leaf {from}")));
            }
            for (i, leaf) in leaves.iter().enumerate() {
                if leaf.index != from + i as u64 {
                    return Err(RuntimeError::Corrupt(format!("the audit log has no leaf {}", from + i as u64)));
                }
                out.push(leaf.leaf);
            }
        }
        Ok(out)
    }
}
