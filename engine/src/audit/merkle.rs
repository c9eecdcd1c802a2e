//! Merkle tree hashing of RFC 6962 §2.1 (as kept by RFC 9162 §2.1): the groundwork of issue 12's
//! global, append-only log of every event. Pure: hashes in, hashes out.
//!
//! - [`leaf_hash`] and [`node_hash`] domain-separate leaves (`0x00`) from interior nodes (`0x01`).
//! - [`Frontier`] appends a leaf in O(log n) keeping only the roots of the perfect subtrees along
//!   the right edge (what a store keeps to go on appending), and gives the tree's root.
//! - [`inclusion_proof`] and [`consistency_proof`] build the audit paths of RFC 6962 §2.1.1 and
//!   §2.1.2 from any source of subtree hashes ([`Subtrees`]), so a store can answer from the
//!   interior hashes it keeps rather than hold every leaf in memory.
//! - [`verify_inclusion`] and [`verify_consistency`] are RFC 9162 §2.1.3.2 and §2.1.4.2, the
//!   checks an offline verifier runs.
//!
//! Written here rather than taken from a crate: the Rust crates for RFC 6962 trees (`ct-merkle`
//! and the like) build proofs over a tree they hold whole in memory; this log lives in the
//! database and its proofs must come from stored subtree hashes.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (`n >= 2`): where RFC 6962 splits a tree of `n`.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of a tree over `leaves` (leaf hashes), computed whole: O(n). For tests, small trees
/// and the offline verifier of a bundle that holds every leaf.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// An append-only tree as its size and the roots of the perfect subtrees along its right edge,
/// largest first (one per bit set in the size): all a log needs to append and to give its root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// A frontier as stored: `peaks` must be one hash per bit set in `size`, largest first.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Option<Frontier> {
        (size.count_ones() as usize == peaks.len()).then_some(Frontier { size, peaks })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees along the right edge, largest first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf hash: O(log n) hashes (one per trailing one bit of the old size).
    pub fn push(&mut self, leaf: Hash) {
        let mut merged = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let Some(left) = self.peaks.pop() else { break };
            merged = node_hash(&left, &merged);
            size >>= 1;
        }
        self.peaks.push(merged);
        self.size += 1;
    }

    /// The tree's root: the peaks folded from the right.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else { return empty_root() };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// Where proofs get subtree hashes: the root of the leaves `start..end` (`start < end`), as a
/// store keeps them or computes them from what it keeps.
pub trait Subtrees {
    type Error;
    fn subtree(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error>;
}

/// Leaf hashes held in memory are a source of subtree hashes (O(n) a subtree).
impl Subtrees for &[Hash] {
    type Error = std::convert::Infallible;

    fn subtree(&mut self, start: u64, end: u64) -> Result<Hash, Self::Error> {
        Ok(root(&self[start as usize..end as usize]))
    }
}

/// Why a proof cannot be built.
#[derive(Debug, PartialEq, Eq)]
pub enum ProofError<E> {
    /// The index or sizes do not name a proof of this tree (`index >= size`, `first > second`,
    /// `first == 0`).
    OutOfRange,
    /// The source of subtree hashes failed.
    Source(E),
}

/// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 6962 §2.1.1),
/// nearest the leaf first.
pub fn inclusion_proof<S: Subtrees>(index: u64, size: u64, tree: &mut S) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let mut path = Vec::new();
    let (mut start, mut end, mut m) = (0u64, size, index);
    // Walk down from the root, noting the sibling subtree at each level, then reverse.
    while end - start > 1 {
        let k = split(end - start);
        if m < k {
            path.push(tree.subtree(start + k, end).map_err(ProofError::Source)?);
            end = start + k;
        } else {
            path.push(tree.subtree(start, start + k).map_err(ProofError::Source)?);
            start += k;
            m -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The proof that the tree of `first` leaves is a prefix of the tree of `second` (RFC 6962
/// §2.1.2), `0 < first <= second`; empty when they are equal.
pub fn consistency_proof<S: Subtrees>(
    first: u64,
    second: u64,
    tree: &mut S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if first == 0 || first > second {
        return Err(ProofError::OutOfRange);
    }
    let mut proof = Vec::new();
    // SUBPROOF(m, D[start:end], b), walked down iteratively; the hashes come out root side
    // first, so they are reversed at the end.
    let (mut start, mut end, mut m, mut whole) = (0u64, second, first, true);
    loop {
        let n = end - start;
        if m == n {
            if !whole {
                proof.push(tree.subtree(start, end).map_err(ProofError::Source)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            proof.push(tree.subtree(start + k, end).map_err(ProofError::Source)?);
            end = start + k;
        } else {
            proof.push(tree.subtree(start, start + k).map_err(ProofError::Source)?);
            start += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 §2.1.3.2: whether `proof` shows `leaf` (a leaf hash) at `index` in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: whether `proof` shows the tree of `first` leaves (root `first_root`) to be
/// a prefix of the tree of `second` leaves (root `second_root`).
pub fn verify_consistency(first: u64, second: u64, proof: &[Hash], first_root: &Hash, second_root: &Hash) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((head, rest)) = path.split_first() else { return false };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*head, *head);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *first_root && sr == *second_root && s == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    /// The leaves of the certificate-transparency test tree (RFC 6962's reference
    /// implementation's test data, reused by Trillian and transparency-dev).
    fn ct_leaves() -> Vec<Hash> {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        data.iter().map(|d| leaf_hash(d)).collect()
    }

    /// RFC 6962 §2.1's definition, written a second time and as plainly as it reads, with the
    /// split as the RFC words it (the largest power of two smaller than n).
    fn mth(d: &[Hash]) -> Hash {
        let n = d.len();
        if n == 0 {
            return empty_root();
        }
        if n == 1 {
            return d[0];
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        node_hash(&mth(&d[..k]), &mth(&d[k..]))
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("event {i}").as_bytes())).collect()
    }

    #[test]
    fn the_ct_test_tree_has_its_published_roots() {
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let l = ct_leaves();
        let mut frontier = Frontier::new();
        for (n, want) in expected.iter().enumerate() {
            frontier.push(l[n]);
            assert_eq!(hex::encode(root(&l[..=n])), *want, "root of {} leaves", n + 1);
            assert_eq!(hex::encode(frontier.root()), *want, "frontier of {} leaves", n + 1);
        }
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn the_frontier_and_the_whole_root_agree_with_the_definition_at_every_size() {
        let l = leaves(130);
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), mth(&[]));
        for n in 1..=l.len() {
            frontier.push(l[n - 1]);
            assert_eq!(frontier.size(), n as u64);
            assert_eq!(frontier.peaks().len(), (n as u64).count_ones() as usize);
            assert_eq!(frontier.root(), mth(&l[..n]), "size {n}");
            assert_eq!(root(&l[..n]), mth(&l[..n]), "size {n}");
        }
        let stored = Frontier::from_parts(frontier.size(), frontier.peaks().to_vec()).unwrap();
        assert_eq!(stored, frontier);
        assert_eq!(Frontier::from_parts(3, vec![[0; 32]]), None);
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_changed_one_does_not() {
        let l = leaves(40);
        for size in 1..=l.len() as u64 {
            let tree = &l[..size as usize];
            let r = mth(tree);
            for index in 0..size {
                let proof = inclusion_proof(index, size, &mut &tree[..]).unwrap();
                assert!(verify_inclusion(&l[index as usize], index, size, &proof, &r), "{index} of {size}");
                // Another leaf, another place, another tree, a changed hash: refused.
                let other = l[((index + 1) % size) as usize];
                assert!(size == 1 || !verify_inclusion(&other, index, size, &proof, &r));
                assert!(size == 1 || !verify_inclusion(&l[index as usize], (index + 1) % size, size, &proof, &r));
                // Against the root of a longer tree (the checkpoint binds the size to the root).
                let longer = mth(&l[..(size as usize + 1).min(l.len())]);
                assert!(
                    size as usize == l.len() || !verify_inclusion(&l[index as usize], index, size, &proof, &longer)
                );
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_hash(first, first);
                    assert!(!verify_inclusion(&l[index as usize], index, size, &bad, &r));
                }
            }
        }
        assert_eq!(inclusion_proof(3, 3, &mut &l[..3]), Err(ProofError::OutOfRange));
        assert!(!verify_inclusion(&l[0], 0, 0, &[], &empty_root()));
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewritten_prefix_does_not() {
        let l = leaves(40);
        for second in 1..=l.len() as u64 {
            let r2 = mth(&l[..second as usize]);
            for first in 1..=second {
                let r1 = mth(&l[..first as usize]);
                let proof = consistency_proof(first, second, &mut &l[..second as usize]).unwrap();
                assert!(verify_consistency(first, second, &proof, &r1, &r2), "{first} -> {second}");
                if first < second {
                    // A first tree with one leaf rewritten is not a prefix of the second.
                    let mut forged = l[..first as usize].to_vec();
                    forged[0] = leaf_hash(b"forged");
                    assert!(!verify_consistency(first, second, &proof, &mth(&forged), &r2), "{first} -> {second}");
                    assert!(proof.is_empty() || !verify_consistency(first, second, &proof[1..], &r1, &r2));
                }
            }
        }
        assert_eq!(consistency_proof(0, 3, &mut &l[..3]), Err(ProofError::OutOfRange));
        assert_eq!(consistency_proof(4, 3, &mut &l[..4]), Err(ProofError::OutOfRange));
    }

    #[test]
    fn proofs_of_the_ct_test_tree_match_rfc_6962s_examples() {
        // RFC 6962 §2.1.3 draws the tree of 7 leaves d0..d6 with leaves a, b, c, d, e, f, j,
        // nodes g = (a, b), h = (c, d), i = (e, f), k = (g, h), l = (i, j). The audit path of d3
        // is [c, g, l]; of d0 [b, h, l]; of d6 [i, k].
        let l = ct_leaves();
        let proof = inclusion_proof(3, 7, &mut &l[..7]).unwrap();
        assert_eq!(proof, vec![l[2], root(&l[0..2]), root(&l[4..7])]);
        assert_eq!(inclusion_proof(0, 7, &mut &l[..7]).unwrap(), vec![l[1], root(&l[2..4]), root(&l[4..7])]);
        assert_eq!(inclusion_proof(6, 7, &mut &l[..7]).unwrap(), vec![root(&l[4..6]), root(&l[0..4])]);
        // §2.1.3: the consistency proof between the trees of 3 and 7 leaves is [c, d, g, l].
        let proof = consistency_proof(3, 7, &mut &l[..7]).unwrap();
        assert_eq!(proof, vec![l[2], l[3], root(&l[0..2]), root(&l[4..7])]);
        // Between 4 and 7: [l] (the first tree's root is the verifier's own).
        assert_eq!(consistency_proof(4, 7, &mut &l[..7]).unwrap(), vec![root(&l[4..7])]);
        // Between 6 and 7: [i, j, k].
        assert_eq!(consistency_proof(6, 7, &mut &l[..7]).unwrap(), vec![root(&l[4..6]), l[6], root(&l[0..4])]);
    }
}
