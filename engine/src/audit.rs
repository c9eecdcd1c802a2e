//! The audit chain: a canonical, versioned encoding of an event and the per-instance hash chain
//! over it.
//!
//! Every stored event carries the hash of the event before it and its own hash, so that anyone
//! holding the events can recompute the chain and find the first event that was changed, removed
//! or inserted. The hash is taken over [`encode`], never over the database's JSON text: the
//! database may reorder object keys (PostgreSQL `jsonb` does), rewrite numbers (`1e2` comes back
//! as `100`) or change whitespace, and none of that may change a hash.
//!
//! # Encoding, version 1
//!
//! `encode(event)` is the byte string
//!
//! | part | bytes |
//! |---|---|
//! | magic | `civicflow-event-v1\0` (19 bytes, [`ENCODING_MAGIC`]) |
//! | seq | u64, big-endian (8 bytes) |
//! | instance | u32 big-endian length, then UTF-8 |
//! | time | i64 big-endian, microseconds since 1970-01-01T00:00:00Z (8 bytes) |
//! | actor | u32 big-endian length, then UTF-8 |
//! | role | u32 big-endian length, then UTF-8; the empty string when the event has no role |
//! | kind | u32 big-endian length, then UTF-8 |
//! | payload | u32 big-endian length, then the payload as canonical JSON ([`canonical_json`]) |
//!
//! Times are truncated to whole microseconds (the precision PostgreSQL stores); the store
//! truncates before it hashes and stores, so a stored event always re-encodes to the same bytes.
//! A role of `Some("")` encodes like no role; the store stores it as no role.
//!
//! Canonical JSON: no whitespace; object keys sorted by their UTF-8 bytes (that is, by code
//! point); strings with `"`, `\` and the control characters below U+0020 escaped (`\b \f \n \r \t`
//! short, the rest as `\u00xx` with lower-case hex) and every other character written as itself
//! in UTF-8; integers (JSON numbers that serde_json reads as `u64` or `i64`) in decimal, exactly;
//! every other number as the `f64` it reads as, written as ECMAScript's `Number.prototype.toString`
//! writes it (as RFC 8785, JSON Canonicalization Scheme, does): the shortest digits that read back
//! as the same `f64`, plain for decimal exponents from -6 to 20 (`0.5`, `100`,
//! `1152921504606847000`, `0.000001`), `1e-7` and `1e+21` style outside them, `-0` as `0`.
//! So a float that holds an integer encodes like that integer, and a number that a database
//! rewrote (`1e2` → `100`, `2.50` → `2.5`) encodes as before. The float formatting is written
//! out here, not left to a library whose output could change with a version.
//!
//! A change to any of this is a new version with a new magic string; version 1 stays readable
//! for as long as chains written with it exist. The golden test in this module's tests pins the
//! bytes and the hash of one event.
//!
//! # Chain
//!
//! `leaf_i = SHA-256(encode(event_i))`, and per instance `h_0 = 32 zero bytes`,
//! `h_i = SHA-256(h_{i-1} ‖ leaf_i)`. Event `i` stores `h_{i-1}` as its `prev_hash` and `h_i` as
//! its `hash`, both as lower-case hex.
//!
//! # The global tree and its checkpoints
//!
//! Every event is also a leaf of one append-only Merkle tree over all instances, in commit order
//! ([`merkle`], RFC 6962): its leaf hash is `SHA-256(0x00 ‖ encode(event))` and its interior
//! nodes `SHA-256(0x01 ‖ left ‖ right)`, so an auditor who checks a chain with this module checks
//! an inclusion proof against the same bytes. The tree's checkpoints are signed notes ([`note`]);
//! [`bundle`] is the self-contained export an auditor verifies offline, and [`replay`] the check
//! of a stored state against its events. `docs/audit.md` describes the formats.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The first bytes of every version-1 encoding: names the format and its version.
pub const ENCODING_MAGIC: &[u8] = b"civicflow-event-v1\0";

/// The hash before the first event of every instance (`h_0`): 32 zero bytes.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields of an event that the encoding covers, borrowed from wherever the event lives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventFields<'a> {
    /// Position in the instance's log, from 1.
    pub seq: u64,
    /// The instance the event belongs to.
    pub instance: &'a str,
    /// When the event happened (encoded in whole microseconds).
    pub at: DateTime<Utc>,
    /// The acting principal.
    pub actor: &'a str,
    /// The role the principal acted in, if any.
    pub role: Option<&'a str>,
    /// The event's kind, e.g. `step_approved`.
    pub kind: &'a str,
    /// The event's data.
    pub payload: &'a Value,
}

/// An event as stored with its chain hashes; [`verify`] checks a sequence of these.
pub trait ChainedEvent {
    /// The encoded fields.
    fn fields(&self) -> EventFields<'_>;
    /// The stored hash of the previous event (lower-case hex).
    fn prev_hash(&self) -> &str;
    /// The stored hash of this event (lower-case hex).
    fn hash(&self) -> &str;
}

/// Which part of a stored event disagrees with the recomputed chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyField {
    /// The event is not at the position the chain expects (a gap, a repeat, or missing events).
    Seq,
    /// The stored `prev_hash` is not the hash of the event before it.
    PrevHash,
    /// The stored `hash` is not the hash recomputed from the event's content.
    Hash,
}

/// The first event of a chain that does not match its recomputation.
///
/// `expected` is what the recomputation says, `found` what is stored: hashes in lower-case hex,
/// or sequence numbers in decimal when `field` is [`VerifyField::Seq`] (`found` is `missing` when
/// the log ends before the instance's version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at event {seq}: {field} is `{found}`, expected `{expected}`")]
pub struct VerifyError {
    /// The sequence number of the first event that does not match.
    pub seq: u64,
    /// What does not match.
    pub field: VerifyField,
    /// The recomputed value.
    pub expected: String,
    /// The stored value.
    pub found: String,
}

impl fmt::Display for VerifyField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerifyField::Seq => "seq",
            VerifyField::PrevHash => "prev_hash",
            VerifyField::Hash => "hash",
        })
    }
}

/// Truncates a time to whole microseconds, the precision of the encoding and of the stores.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// The canonical version-1 encoding of an event (see the module documentation).
pub fn encode(event: &EventFields<'_>) -> Vec<u8> {
    encode_with_payload(event, &canonical_json(event.payload))
}

/// [`encode`] with the payload's canonical text made beforehand (`payload` must be
/// [`canonical_json`]`(event.payload)`): the stores' commit path has it from
/// [`crate::store::EventPayload`], made where the event was decided, not in the group committer.
pub(crate) fn encode_with_payload(event: &EventFields<'_>, payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        ENCODING_MAGIC.len()
            + 16
            + 5 * 4
            + event.instance.len()
            + event.actor.len()
            + event.role.map_or(0, str::len)
            + event.kind.len()
            + payload.len(),
    );
    out.extend_from_slice(ENCODING_MAGIC);
    out.extend_from_slice(&event.seq.to_be_bytes());
    put_bytes(&mut out, event.instance.as_bytes());
    out.extend_from_slice(&event.at.timestamp_micros().to_be_bytes());
    put_bytes(&mut out, event.actor.as_bytes());
    put_bytes(&mut out, event.role.unwrap_or("").as_bytes());
    put_bytes(&mut out, event.kind.as_bytes());
    put_bytes(&mut out, payload.as_bytes());
    out
}

/// An encoding read back into its fields (the payload as its canonical JSON text), for an
/// auditor's tool to say which field of an event differs from its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub seq: u64,
    pub instance: String,
    /// Microseconds since 1970-01-01T00:00:00Z.
    pub at_micros: i64,
    pub actor: String,
    /// The empty string when the event has no role.
    pub role: String,
    pub kind: String,
    pub payload: String,
}

impl Decoded {
    /// The fields as `(name, value as text)`, in encoding order.
    pub fn fields(&self) -> [(&'static str, String); 7] {
        [
            ("seq", self.seq.to_string()),
            ("instance", self.instance.clone()),
            (
                "at",
                DateTime::from_timestamp_micros(self.at_micros)
                    .map_or_else(|| self.at_micros.to_string(), |t| t.to_rfc3339()),
            ),
            ("actor", self.actor.clone()),
            ("role", self.role.clone()),
            ("kind", self.kind.clone()),
            ("payload", self.payload.clone()),
        ]
    }
}

/// Reads a version-1 encoding back; `Err` names what is malformed.
pub fn decode(bytes: &[u8]) -> Result<Decoded, &'static str> {
    struct Cursor<'a>(&'a [u8]);
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
            if self.0.len() < n {
                return Err("the encoding ends early");
            }
            let (head, tail) = self.0.split_at(n);
            self.0 = tail;
            Ok(head)
        }
        fn eight(&mut self) -> Result<[u8; 8], &'static str> {
            self.take(8)?.try_into().map_err(|_| "the encoding ends early")
        }
        fn text(&mut self) -> Result<String, &'static str> {
            let len: [u8; 4] = self.take(4)?.try_into().map_err(|_| "the encoding ends early")?;
            let bytes = self.take(u32::from_be_bytes(len) as usize)?;
            String::from_utf8(bytes.to_vec()).map_err(|_| "a field is not UTF-8")
        }
    }
    let mut c = Cursor(bytes.strip_prefix(ENCODING_MAGIC).ok_or("not a civicflow-event-v1 encoding")?);
    let seq = u64::from_be_bytes(c.eight()?);
    let instance = c.text()?;
    let at_micros = i64::from_be_bytes(c.eight()?);
    let (actor, role, kind, payload) = (c.text()?, c.text()?, c.text()?, c.text()?);
    if !c.0.is_empty() {
        return Err("bytes after the payload");
    }
    Ok(Decoded { seq, instance, at_micros, actor, role, kind, payload })
}

/// `SHA-256(encode(event))`.
pub fn leaf_hash(event: &EventFields<'_>) -> [u8; 32] {
    Sha256::digest(encode(event)).into()
}

/// `SHA-256(prev ‖ leaf)`: one link of the chain.
pub fn chain_hash(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// [`event_hash`] of an event given as its encoding ([`encode_with_payload`]), which the
/// commit path also hashes as the event's leaf in the global tree.
pub(crate) fn event_hash_of_encoding(prev: &[u8; 32], encoding: &[u8]) -> [u8; 32] {
    chain_hash(prev, &Sha256::digest(encoding).into())
}

/// The hash of `event` given the hash of the event before it: `chain_hash(prev, leaf_hash(event))`.
pub fn event_hash(prev: &[u8; 32], event: &EventFields<'_>) -> [u8; 32] {
    event_hash_of_encoding(prev, &encode(event))
}

/// Recomputes the chain of one instance's events, in order from seq 1, and names the first event
/// whose position, `prev_hash` or `hash` does not match.
///
/// An empty sequence verifies. Events must be given from the start of the log: the first must be
/// seq 1 with `prev_hash` = 64 zeros.
pub fn verify<'a, E, I>(events: I) -> Result<(), VerifyError>
where
    E: ChainedEvent + 'a,
    I: IntoIterator<Item = &'a E>,
{
    let mut prev = GENESIS;
    let mut expected_seq: u64 = 1;
    for event in events {
        let fields = event.fields();
        if fields.seq != expected_seq {
            return Err(VerifyError {
                seq: expected_seq,
                field: VerifyField::Seq,
                expected: expected_seq.to_string(),
                found: fields.seq.to_string(),
            });
        }
        let prev_hex = hex::encode(prev);
        if event.prev_hash() != prev_hex {
            return Err(VerifyError {
                seq: fields.seq,
                field: VerifyField::PrevHash,
                expected: prev_hex,
                found: event.prev_hash().to_owned(),
            });
        }
        let hash = event_hash(&prev, &fields);
        let hash_hex = hex::encode(hash);
        if event.hash() != hash_hex {
            return Err(VerifyError {
                seq: fields.seq,
                field: VerifyField::Hash,
                expected: hash_hex,
                found: event.hash().to_owned(),
            });
        }
        prev = hash;
        expected_seq = expected_seq.saturating_add(1);
    }
    Ok(())
}

/// The canonical JSON text of a value (see the module documentation).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // INVARIANT: no field reaches 4 GiB (a payload that large cannot be stored either); the
    // saturation only keeps this total.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(f) = n.as_f64() {
                write_float(out, f);
            } else {
                // Only reachable with serde_json's `arbitrary_precision`: keep its text.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_canonical(out, item);
            }
            out.push('}');
        }
    }
}

/// Writes a float as ECMAScript's `Number.prototype.toString` does (RFC 8785 §3.2.2.3): the
/// shortest digits that read back as the same `f64`, in plain notation for decimal exponents
/// from -6 to 20 and in `d.ddde±x` notation outside them; `-0` as `0`.
fn write_float(out: &mut String, f: f64) {
    if f == 0.0 {
        out.push('0');
        return;
    }
    if !f.is_finite() {
        // A serde_json Value never holds one; keep the encoding total all the same.
        out.push_str("null");
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.2345e-7`, `1e300`, `5e-1`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i64 = exponent.parse().unwrap_or(0);
    // The value is 0.DIGITS × 10^n, with k digits.
    let k = digits.len() as i64;
    let n = exponent + 1;
    if f < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

pub mod bundle;
pub mod merkle;
pub mod note;
pub mod replay;
#[cfg(test)]
mod tests;
