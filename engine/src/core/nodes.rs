//! An instance's runtime nodes by key, in a persistent map (issue 10.2).
//!
//! `decide` works on a copy of the state and throws it away on a refusal. With a `BTreeMap`
//! that copy cost O(nodes) per command (~0.3 ms on a 1,000-step instance). Here the copy shares
//! the whole tree: it costs O(1), and changing a node copies only the path to it (O(log n) keys
//! and `Arc`s) and, once, that node. Serialized exactly as the `BTreeMap` was (a JSON object in
//! key order), so stored snapshots read back unchanged.

use std::fmt;
use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::NodeState;

/// Runtime nodes by key: the IR id, or `id[i]` for the i-th fan-out copy.
#[derive(Clone, Default)]
pub struct Nodes(OrdMap<String, Arc<NodeState>>);

impl Nodes {
    pub fn new() -> Nodes {
        Nodes(OrdMap::new())
    }

    pub fn get(&self, key: &str) -> Option<&NodeState> {
        self.0.get(key).map(Arc::as_ref)
    }

    /// The node to change: copied first if another state still shares it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut NodeState> {
        self.0.get_mut(key).map(Arc::make_mut)
    }

    pub fn insert(&mut self, key: String, node: NodeState) {
        self.0.insert(key, Arc::new(node));
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &NodeState)> + '_ {
        self.into_iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> + '_ {
        self.0.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &NodeState> + '_ {
        self.0.values().map(Arc::as_ref)
    }

    /// The fan-out copies of `def` (keys `def[i]`), in key order, found by range rather than by
    /// a walk over every node.
    pub fn copies_of<'a>(&'a self, def: &'a str) -> impl Iterator<Item = (&'a String, &'a NodeState)> + 'a {
        // `[` is 0x5B and `\\` 0x5C: every `def[…` key sorts between the two bounds.
        let (from, to) = (format!("{def}["), format!("{def}\\"));
        self.0.range(from..to).map(|(k, n)| (k, n.as_ref())).filter(move |(_, n)| n.def == def && n.element.is_some())
    }

    /// The keys whose node differs between `self` and `other` (added, removed or changed).
    /// Subtrees the two maps share are skipped unvisited, so a state and the one a command made
    /// of it compare in O(changed · log n).
    pub fn changed_keys(&self, other: &Nodes) -> Vec<String> {
        self.0
            .diff(&other.0)
            .map(|d| match d {
                imbl::ordmap::DiffItem::Add(k, _) | imbl::ordmap::DiffItem::Remove(k, _) => k.clone(),
                imbl::ordmap::DiffItem::Update { new: (k, _), .. } => k.clone(),
            })
            .collect()
    }

    /// Changes every node (each copied first if shared).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut NodeState)) {
        let keys: Vec<String> = self.0.keys().cloned().collect();
        for k in keys {
            if let Some(n) = self.0.get_mut(&k) {
                f(Arc::make_mut(n));
            }
        }
    }
}

/// An entry as callers see it: the node itself, not its `Arc`.
type Entry<'a> = (&'a String, &'a NodeState);

fn entry<'a>((k, n): (&'a String, &'a Arc<NodeState>)) -> Entry<'a> {
    (k, n.as_ref())
}

impl<'a> IntoIterator for &'a Nodes {
    type Item = Entry<'a>;
    type IntoIter = std::iter::Map<
        imbl::ordmap::Iter<'a, String, Arc<NodeState>, imbl::shared_ptr::DefaultSharedPtr>,
        fn((&'a String, &'a Arc<NodeState>)) -> Entry<'a>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(entry as fn(_) -> _)
    }
}

/// Like `BTreeMap`'s: panics on a key that is not there (for tests; code uses [`Nodes::get`]).
impl std::ops::Index<&str> for Nodes {
    type Output = NodeState;

    fn index(&self, key: &str) -> &NodeState {
        &self.0[key]
    }
}

impl FromIterator<(String, NodeState)> for Nodes {
    fn from_iter<I: IntoIterator<Item = (String, NodeState)>>(iter: I) -> Self {
        Nodes(iter.into_iter().map(|(k, n)| (k, Arc::new(n))).collect())
    }
}

impl PartialEq for Nodes {
    fn eq(&self, other: &Nodes) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl fmt::Debug for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Nodes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Nodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Nodes, D::Error> {
        let map = std::collections::BTreeMap::<String, NodeState>::deserialize(d)?;
        Ok(map.into_iter().collect())
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    fn node(def: &str) -> NodeState {
        NodeState::new(def, None)
    }

    #[test]
    fn a_copy_changed_leaves_the_original_and_serializes_as_a_map_in_key_order() {
        let mut a: Nodes = [("b".to_string(), node("b")), ("a".to_string(), node("a"))].into_iter().collect();
        let mut b = a.clone();
        b.get_mut("a").expect("a is there").round = 7;
        b.remove("b");
        assert_eq!((a.get("a").map(|n| n.round), a.len()), (Some(0), 2));
        assert_eq!((b.get("a").map(|n| n.round), b.len()), (Some(7), 1));
        let text = serde_json::to_string(&a).expect("serializes");
        assert!(text.starts_with(r#"{"a":{"def":"a""#), "{text}");
        let back: Nodes = serde_json::from_str(&text).expect("parses");
        assert!(back == a);
        a.for_each_mut(|n| n.round += 1);
        assert_eq!(a.values().map(|n| n.round).collect::<Vec<_>>(), vec![1, 1]);
        assert!(back != a);
    }
}
