#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;

struct Ev {
    seq: u64,
    instance: String,
    at: DateTime<Utc>,
    actor: String,
    role: Option<String>,
    kind: String,
    payload: Value,
    prev_hash: String,
    hash: String,
}

impl ChainedEvent for Ev {
    fn fields(&self) -> EventFields<'_> {
        EventFields {
            seq: self.seq,
            instance: &self.instance,
            at: self.at,
            actor: &self.actor,
            role: self.role.as_deref(),
            kind: &self.kind,
            payload: &self.payload,
        }
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn hash(&self) -> &str {
        &self.hash
    }
}

fn golden_payload() -> Value {
    json!({
        "step": "组成新班子",
        "count": 3,
        "ratio": 0.5,
        "nested": { "b": [1, 2.0, "x\n\"q\""], "a": null, "A": true }
    })
}

fn golden_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 8, 30, 0).unwrap() + chrono::Duration::microseconds(123_456)
}

fn golden_event(payload: &Value) -> EventFields<'_> {
    EventFields {
        seq: 1,
        instance: "c-2026-0001",
        at: golden_time(),
        actor: "街道党工委",
        role: Some("审批人"),
        kind: "step_approved",
        payload,
    }
}

/// The golden case: these bytes and hashes are the format. If this test fails, the encoding
/// changed, and every stored chain would stop verifying: make a new version instead.
#[test]
fn golden_encoding_bytes_and_hashes() {
    let payload = golden_payload();
    let event = golden_event(&payload);

    assert_eq!(
        canonical_json(&payload),
        r#"{"count":3,"nested":{"A":true,"a":null,"b":[1,2,"x\n\"q\""]},"ratio":0.5,"step":"组成新班子"}"#
    );
    assert_eq!(
        hex::encode(encode(&event)),
        concat!(
            // magic "civicflow-event-v1\0"
            "6369766963666c6f772d6576656e742d763100",
            // seq 1
            "0000000000000001",
            // instance "c-2026-0001" (11 bytes)
            "0000000b",
            "632d323032362d30303031",
            // time 2026-03-01T08:30:00.123456Z = 1772353800123456 µs
            "00064bf246ac3440",
            // actor 街道党工委 (15 bytes)
            "0000000f",
            "e8a197e98193e5859ae5b7a5e5a794",
            // role 审批人 (9 bytes)
            "00000009",
            "e5aea1e689b9e4baba",
            // kind step_approved (13 bytes)
            "0000000d",
            "737465705f617070726f766564",
            // payload, canonical JSON (98 bytes)
            "00000062",
            "7b22636f756e74223a332c226e6573746564223a7b2241223a747275652c2261223a6e756c6c2c2262223a",
            "5b312c322c22785c6e5c22715c22225d7d2c22726174696f223a302e352c2273746570223a22",
            "e7bb84e68890e696b0e78fade5ad90227d",
        )
    );
    assert_eq!(hex::encode(leaf_hash(&event)), "a7551dc1c76ec8b3c3b141b6c149baaaee2d905a89017b66e9b13a7fe8653797");
    assert_eq!(
        hex::encode(event_hash(&GENESIS, &event)),
        "4403cc4806820bc1904315b9f989a7eee15f5bb41efcbe3694d0491a2afd9c9b"
    );
}

#[test]
fn canonical_json_sorts_keys_and_normalises_numbers() {
    let cases: &[(Value, &str)] = &[
        (json!({"b": 1, "a": 2, "aa": 3, "B": 4}), r#"{"B":4,"a":2,"aa":3,"b":1}"#),
        (json!(100.0), "100"),
        (json!(-0.0), "0"),
        (json!(0.1), "0.1"),
        (json!(-7), "-7"),
        (json!(u64::MAX), "18446744073709551615"),
        (json!(1e300), "1e+300"),
        (json!(1e21), "1e+21"),
        (json!(1e20), "100000000000000000000"),
        (json!(1e-7), "1e-7"),
        (json!(-1.5e-7), "-1.5e-7"),
        (json!(1e-6), "0.000001"),
        (json!(1.5e-6), "0.0000015"),
        (json!(123.456), "123.456"),
        (json!(-2.5), "-2.5"),
        (json!(2.0_f64.powi(53)), "9007199254740992"),
        (json!(2.0_f64.powi(60)), "1152921504606847000"),
        (json!(5e-324), "5e-324"),
        (json!(f64::MAX), "1.7976931348623157e+308"),
        (json!("tab\tnul\u{0}é"), r#""tab\tnul\u0000é""#),
        (json!([]), "[]"),
        (json!({}), "{}"),
        (json!([null, false, {"z": [], "y": {}}]), r#"[null,false,{"y":{},"z":[]}]"#),
    ];
    for (value, expected) in cases {
        assert_eq!(canonical_json(value), *expected, "{value:?}");
    }
    // Numbers read back from a database that rewrote them encode as before.
    let from_db: Value = serde_json::from_str(r#"{"n": 1e2, "f": 0.10}"#).unwrap();
    assert_eq!(canonical_json(&from_db), r#"{"f":0.1,"n":100}"#);
    // 2^60 written by serde_json as a float, read back from PostgreSQL's numeric as an integer.
    let written = serde_json::to_string(&json!(2.0_f64.powi(60))).unwrap();
    let numeric: Value = serde_json::from_str("1152921504606847000").unwrap();
    assert!(numeric.is_u64());
    let reread: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(canonical_json(&reread), canonical_json(&numeric));
}

#[test]
fn no_role_and_empty_role_encode_alike_and_differ_from_a_role() {
    let payload = json!({});
    let mut event = golden_event(&payload);
    event.role = None;
    let none = encode(&event);
    event.role = Some("");
    assert_eq!(encode(&event), none);
    event.role = Some("x");
    assert_ne!(encode(&event), none);
}

#[test]
fn time_is_encoded_in_whole_microseconds() {
    let payload = json!({});
    let mut event = golden_event(&payload);
    let base = encode(&event);
    event.at = golden_time() + chrono::Duration::nanoseconds(999);
    assert_eq!(encode(&event), base);
    assert_eq!(truncate_to_micros(event.at), golden_time());
}

fn chain(n: u64) -> Vec<Ev> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|seq| {
            let mut ev = Ev {
                seq,
                instance: "i".into(),
                at: golden_time() + chrono::Duration::seconds(i64::try_from(seq).unwrap()),
                actor: "a".into(),
                role: None,
                kind: "k".into(),
                payload: json!({ "n": seq }),
                prev_hash: hex::encode(prev),
                hash: String::new(),
            };
            let hash = event_hash(&prev, &ev.fields());
            ev.hash = hex::encode(hash);
            prev = hash;
            ev
        })
        .collect()
}

#[test]
fn verify_accepts_a_sound_chain_and_an_empty_one() {
    assert_eq!(verify(&chain(3)), Ok(()));
    assert_eq!(verify(&Vec::<Ev>::new()), Ok(()));
}

#[test]
fn verify_names_the_first_changed_event() {
    let mut events = chain(4);
    events[2].payload = json!({ "n": 99 });
    let err = verify(&events).unwrap_err();
    assert_eq!((err.seq, err.field), (3, VerifyField::Hash));
    assert_eq!(err.found, events[2].hash);
    assert_ne!(err.expected, err.found);
}

#[test]
fn verify_names_a_rewritten_hash_at_the_next_event() {
    // An attacker who rewrites an event and its hash consistently breaks the next link.
    let mut events = chain(3);
    events[1].actor = "mallory".into();
    let rehash = event_hash(&[0; 32], &events[1].fields());
    let prev: [u8; 32] = hex::decode(&events[1].prev_hash).unwrap().try_into().unwrap();
    events[1].hash = hex::encode(event_hash(&prev, &events[1].fields()));
    assert_ne!(hex::encode(rehash), events[1].hash);
    let err = verify(&events).unwrap_err();
    assert_eq!((err.seq, err.field), (3, VerifyField::PrevHash));
}

#[test]
fn verify_names_a_gap() {
    let mut events = chain(3);
    events.remove(1);
    let err = verify(&events).unwrap_err();
    assert_eq!(err, VerifyError { seq: 2, field: VerifyField::Seq, expected: "2".into(), found: "3".into() });
    assert_eq!(err.to_string(), "audit chain broken at event 2: seq is `3`, expected `2`");
}

#[test]
fn canonical_floats_read_back_as_the_same_value() {
    // A fixed pseudo-random walk over f64 bit patterns (xorshift), plus the edges.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut values = vec![f64::MIN_POSITIVE, f64::EPSILON, 0.1 + 0.2, 1e21 - 65536.0, 1e-6 - 1e-22];
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push(f64::from_bits(x));
    }
    for f in values.into_iter().filter(|f| f.is_finite()) {
        let text = canonical_json(&json!(f));
        let back: f64 = text.parse().unwrap();
        assert_eq!(back.to_bits(), if f == 0.0 { 0 } else { f.to_bits() }, "{f:e} -> {text}");
        // Canonical text is a fixed point.
        let reread: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&reread), text, "{f:e}");
    }
}
