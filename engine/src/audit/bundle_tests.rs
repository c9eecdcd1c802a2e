#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::audit::note::NoteSigner;

/// The example log of docs/audit/: two instances of the election's handover, five events.
fn example_events() -> Vec<(String, u64, EventRecord)> {
    let at = |m: u32| Utc.with_ymd_and_hms(2026, 3, 2, 1, m, 0).single().unwrap();
    let raw = [
        ("c-1", at(0), "王", Some("承办"), "instance_started", json!({ "params": { "社区名称": "东湖社区" } })),
        ("c-1", at(1), "王", Some("承办"), "step_completed", json!({ "step": "受理", "data": { "户数": 1600 } })),
        ("c-2", at(2), "李", Some("承办"), "instance_started", json!({ "params": { "社区名称": "西湖社区" } })),
        ("c-1", at(3), "周", Some("审核科"), "step_approved", json!({ "step": "审核", "comment": "同意" })),
        ("c-2", at(4), "timer", None, "step_overdue", json!({ "step": "受理" })),
    ];
    let mut prev: BTreeMap<&str, (u64, String)> = BTreeMap::new();
    raw.into_iter()
        .map(|(instance, at, actor, role, kind, payload)| {
            let (seq, prev_hash) = prev.get(instance).map_or((1, hex::encode(GENESIS)), |(s, h)| (s + 1, h.clone()));
            let mut event = EventRecord {
                at,
                actor: actor.into(),
                role: role.map(Into::into),
                kind: kind.into(),
                payload,
                prev_hash: prev_hash.clone(),
                hash: String::new(),
            };
            let p: Hash = hex::decode(&prev_hash).unwrap().try_into().unwrap();
            event.hash = hex::encode(chain_hash(&p, &leaf_hash(&event.fields(instance, seq))));
            prev.insert(instance, (seq, event.hash.clone()));
            (instance.to_string(), seq, event)
        })
        .collect()
}

fn signer() -> NoteSigner {
    NoteSigner::from_seed("civicflow.example/audit", [42; 32]).unwrap()
}

fn leaves(events: &[(String, u64, EventRecord)]) -> Vec<Hash> {
    events.iter().map(|(i, s, e)| merkle::leaf_hash(&encode(&e.fields(i, *s)))).collect()
}

/// A bundle of the example log: every leaf, or one instance's with proofs; `since` adds a
/// consistency proof from that size.
fn bundle_of(instance: Option<&str>, size: usize, since: Option<u64>) -> String {
    let events = example_events();
    let all = leaves(&events);
    let tree = &all[..size];
    let cp = Checkpoint { origin: "civicflow.example/audit".into(), size: size as u64, root: merkle::root(tree) };
    let scope = Scope { instance: instance.map(Into::into), ..Scope::default() };
    let since = since.map(|m| Since {
        size: m,
        hashes: merkle::consistency_proof(m, size as u64, &mut &tree[..])
            .unwrap()
            .iter()
            .map(|h| base64_encode(h))
            .collect(),
    });
    let header = Header {
        format: FORMAT.into(),
        checkpoint: cp.sign(&signer()).unwrap(),
        complete: scope.is_everything(),
        scope,
        exported_at: Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).single().unwrap(),
        since,
        state: None,
    };
    let mut out = serde_json::to_string(&header).unwrap() + "\n";
    for (index, (i, s, e)) in events.iter().enumerate().take(size) {
        if instance.is_some_and(|want| want != i) {
            continue;
        }
        let mut entry = Entry::new(index as u64, i, *s, &all[index], Some(e.clone()));
        if !header.complete {
            let proof = merkle::inclusion_proof(index as u64, size as u64, &mut &tree[..]).unwrap();
            entry.proof = Some(proof.iter().map(|h| base64_encode(h)).collect());
        }
        out += &(serde_json::to_string(&entry).unwrap() + "\n");
    }
    out
}

fn check(bundle: &str, kept: Option<&Kept>) -> Vec<String> {
    verify(bundle, &signer().verifier(), kept).findings.iter().map(ToString::to_string).collect()
}

const GOLDEN_BUNDLE: &str = include_str!("../../../docs/audit/example-bundle.jsonl");
const GOLDEN_KEY: &str = include_str!("../../../docs/audit/example-key.pub");

#[test]
fn the_golden_bundle_is_the_example_and_verifies() {
    let made = bundle_of(Some("c-1"), 5, None);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/audit");
        std::fs::write(format!("{dir}/example-bundle.jsonl"), &made).unwrap();
        std::fs::write(format!("{dir}/example-key.pub"), signer().verifier().to_key_text() + "\n").unwrap();
    }
    assert_eq!(made, GOLDEN_BUNDLE, "the bundle format changed: run with UPDATE_GOLDEN=1 and document it");
    let key = NoteVerifier::parse(GOLDEN_KEY).unwrap();
    assert_eq!(key.to_key_text(), signer().verifier().to_key_text());
    let report = verify(GOLDEN_BUNDLE, &key, None);
    assert_eq!(report.findings, vec![]);
    assert_eq!((report.leaves, report.events, report.instances), (3, 3, 1));
    assert_eq!(report.checkpoint.map(|c| c.size), Some(5));
}

#[test]
fn a_whole_log_and_one_instance_verify() {
    let whole = verify(&bundle_of(None, 5, None), &signer().verifier(), None);
    assert_eq!((whole.findings.len(), whole.leaves, whole.events, whole.instances), (0, 5, 5, 2));
    assert_eq!(check(&bundle_of(Some("c-2"), 5, None), None), Vec::<String>::new());
}

#[test]
fn a_changed_byte_names_the_event_and_the_field() {
    let bundle = bundle_of(Some("c-1"), 5, None);
    // In the event as shown: the actor of c-1/3.
    let shown = bundle.replacen(r#""actor":"周""#, r#""actor":"吴""#, 1);
    assert_eq!(
        check(&shown, None),
        [
            "event c-1/3 (leaf 3): field `actor` is `吴` in the event but `周` in its encoding",
            "event c-1/3 (leaf 3): its chain hash does not match its content",
        ]
    );
    // In the payload: a number.
    let shown = bundle.replacen(r#""户数":1600"#, r#""户数":1601"#, 1);
    assert_eq!(
        check(&shown, None)[0],
        r#"event c-1/2 (leaf 1): field `payload` is `{"data":{"户数":1601},"step":"受理"}` in the event but `{"data":{"户数":1600},"step":"受理"}` in its encoding"#
    );
    // In the encoding: its last byte.
    let line = bundle.lines().nth(2).unwrap();
    let mut entry: Entry = serde_json::from_str(line).unwrap();
    let mut bytes = base64_decode(entry.encoding.as_deref().unwrap()).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    entry.encoding = Some(base64_encode(&bytes));
    let changed = bundle.replace(line, &serde_json::to_string(&entry).unwrap());
    assert_eq!(
        check(&changed, None),
        [
            "event c-1/2 (leaf 1): field `payload` is `{\"data\":{\"户数\":1600},\"step\":\"受理\"}` in the event but `{\"data\":{\"户数\":1600},\"step\":\"受理\"|` in its encoding",
            "event c-1/2 (leaf 1): its encoding does not hash to its leaf",
        ]
    );
}

#[test]
fn a_deleted_missing_or_truncated_event_is_named() {
    let whole = bundle_of(None, 5, None);
    let lines: Vec<&str> = whole.lines().collect();
    // The last line gone: the bundle is shorter than the signed tree.
    let cut = lines[..5].join("\n");
    assert_eq!(check(&cut, None), ["bundle: truncated: the checkpoint signs 5 leaves, the bundle holds 4"]);
    // A middle line gone (c-1/2, leaf 1).
    let gap = [&lines[..2], &lines[3..]].concat().join("\n");
    assert_eq!(
        check(&gap, None),
        [
            "event c-2/1 (leaf 2): out of place: the bundle's leaf 1 should be here",
            "event c-1/3 (leaf 3): out of place: the bundle's leaf 2 should be here",
            "event c-2/2 (leaf 4): out of place: the bundle's leaf 3 should be here",
            "bundle: truncated: the checkpoint signs 5 leaves, the bundle holds 4",
            "instance c-1: event 2 is not in the log",
        ]
    );
    // An event's record gone from the history, its leaf kept: deleted, and here the end cut.
    let one = bundle_of(Some("c-2"), 5, None);
    let last = one.lines().last().unwrap();
    let mut entry: Entry = serde_json::from_str(last).unwrap();
    (entry.event, entry.encoding) = (None, None);
    let deleted = one.replace(last, &serde_json::to_string(&entry).unwrap());
    assert_eq!(
        check(&deleted, None),
        [
            "event c-2/2 (leaf 4): in the log, but its record is gone from the history (deleted)",
            "instance c-2: its history was cut: event 2 is in the log but not in the history",
        ]
    );
}

#[test]
fn a_bad_signature_a_rollback_and_a_fork_are_named() {
    let bundle = bundle_of(Some("c-1"), 5, None);
    let other = NoteSigner::from_seed("civicflow.example/audit", [7; 32]).unwrap().verifier();
    let forged = verify(&bundle, &other, None);
    assert_eq!(
        forged.findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["checkpoint: the note carries no signature by `civicflow.example/audit` that verifies with its key: nothing in the bundle can be trusted"]
    );
    let all = leaves(&example_events());
    // Kept before: the tree of 5; shown now: the tree of 3.
    let older = bundle_of(Some("c-1"), 3, None);
    let kept5 = Kept { size: 5, root: merkle::root(&all) };
    assert_eq!(
        check(&older, Some(&kept5)),
        ["checkpoint: rolled back: it signs 3 leaves, fewer than the 5 of a checkpoint kept before"]
    );
    // Kept: another root for 5 leaves.
    let other_root = Kept { size: 5, root: merkle::root(&all[..4]) };
    assert_eq!(
        check(&bundle, Some(&other_root)),
        ["checkpoint: forked: a checkpoint kept before signs another root for 5 leaves"]
    );
    // Kept: the tree of 3. Without a proof from it, not checked (a fault); with one, it holds;
    // a whole-log bundle needs none.
    let kept3 = Kept { size: 3, root: merkle::root(&all[..3]) };
    assert_eq!(
        check(&bundle, Some(&kept3)),
        ["checkpoint: not checked against the checkpoint of 3 leaves kept before: export with `--since 3`"]
    );
    assert_eq!(check(&bundle_of(Some("c-1"), 5, Some(3)), Some(&kept3)), Vec::<String>::new());
    assert_eq!(check(&bundle_of(None, 5, None), Some(&kept3)), Vec::<String>::new());
    let forked3 = Kept { size: 3, root: merkle::root(&all[1..4]) };
    assert_eq!(
        check(&bundle_of(Some("c-1"), 5, Some(3)), Some(&forked3)),
        ["checkpoint: forked: the tree of 3 leaves kept before is not a prefix of this one"]
    );
}

#[test]
fn an_event_not_in_the_signed_tree_is_named() {
    // c-1's entries proved against the tree of 5, shown with the checkpoint of 4.
    let five = bundle_of(Some("c-1"), 5, None);
    let four = bundle_of(Some("c-1"), 4, None);
    let header4 = four.lines().next().unwrap();
    let mixed = five.replacen(five.lines().next().unwrap(), header4, 1);
    assert_eq!(
        check(&mixed, None),
        [
            "event c-1/1 (leaf 0): not in the signed tree of 4 leaves: its proof does not lead to the checkpoint's root",
            "event c-1/2 (leaf 1): not in the signed tree of 4 leaves: its proof does not lead to the checkpoint's root",
            "event c-1/3 (leaf 3): not in the signed tree of 4 leaves: its proof does not lead to the checkpoint's root",
        ]
    );
}
