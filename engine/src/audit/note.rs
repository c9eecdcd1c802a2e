//! Issue 12.2: signed checkpoints of the global tree, in the formats transparency logs share so
//! that an auditor's own tools read them:
//!
//! - **signed note** (C2SP `signed-note`, Go's `golang.org/x/mod/sumdb/note`): a text ending in a
//!   newline, a blank line, then one line per signature, `— NAME BASE64(KEYHASH ‖ SIGNATURE)`,
//!   where `KEYHASH` is the first 4 bytes of `SHA-256(NAME ‖ "\n" ‖ 0x01 ‖ PUBLIC KEY)` and the
//!   Ed25519 signature is over the text (every byte up to the blank line's newline, excluded).
//! - **keys**: the verifier key `NAME+KEYHASH(hex)+BASE64(0x01 ‖ PUBLIC KEY)` and the signer key
//!   `PRIVATE+KEY+NAME+KEYHASH(hex)+BASE64(0x01 ‖ SEED)`.
//! - **checkpoint** (C2SP `tlog-checkpoint`): the note's text is `ORIGIN\nSIZE\nBASE64(ROOT)\n`.
//!
//! Pure: no files, no clock, no randomness (a new key's seed is given by the caller).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The signature type byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;

/// What a key, a note or a checkpoint's text gets wrong; the message says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    Key(&'static str),
    #[error("malformed note: {0}")]
    Note(&'static str),
    #[error("the note carries no signature by `{0}` that verifies with its key")]
    Signature(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
}

/// A key name must be non-empty UTF-8 with no whitespace and no `+` (signed-note).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The 4-byte key hash that names a key inside a signature.
fn key_hash(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A log's signing key: its name (the checkpoints' signer) and its Ed25519 key.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed.
        f.debug_struct("NoteSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer from a name and a 32-byte Ed25519 seed (the caller draws it from the OS).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<NoteSigner, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("the name must be non-empty, without spaces or `+`"));
        }
        Ok(NoteSigner { name: name.to_owned(), key: SigningKey::from_bytes(&seed) })
    }

    /// Reads the signer-key form `PRIVATE+KEY+NAME+HASH+BASE64(0x01 ‖ SEED)`.
    pub fn parse(text: &str) -> Result<NoteSigner, NoteError> {
        let rest = text.trim_end().strip_prefix("PRIVATE+KEY+").ok_or(NoteError::Key("no `PRIVATE+KEY+` prefix"))?;
        let (name, hash, data) = split_key(rest)?;
        let bytes = BASE64.decode(data).map_err(|_| NoteError::Key("the key data is not base64"))?;
        let (&kind, seed) = bytes.split_first().ok_or(NoteError::Key("empty key data"))?;
        if kind != ED25519 {
            return Err(NoteError::Key("not an Ed25519 key"));
        }
        let seed: [u8; 32] = seed.try_into().map_err(|_| NoteError::Key("an Ed25519 seed is 32 bytes"))?;
        let signer = NoteSigner::from_seed(name, seed)?;
        if signer.key_hash() != hash {
            return Err(NoteError::Key("the key hash does not match the name and key"));
        }
        Ok(signer)
    }

    /// The signer-key form (a secret: written to a file of mode 0600, never logged).
    pub fn to_key_text(&self) -> String {
        let mut data = vec![ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}+{}", self.name, hex::encode(self.key_hash()), BASE64.encode(data))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), key: self.key.verifying_key() }
    }

    fn key_hash(&self) -> [u8; 4] {
        key_hash(&self.name, &self.key.verifying_key())
    }

    /// Signs `text` (which must end in a newline) into a signed note with one signature.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut data = self.key_hash().to_vec();
        data.extend_from_slice(&signature.to_bytes());
        Ok(format!("{text}\n\u{2014} {} {}\n", self.name, BASE64.encode(data)))
    }
}

/// A log's public key, as an auditor keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Reads the verifier-key form `NAME+HASH+BASE64(0x01 ‖ PUBLIC KEY)`.
    pub fn parse(text: &str) -> Result<NoteVerifier, NoteError> {
        let (name, hash, data) = split_key(text.trim())?;
        if !valid_name(name) {
            return Err(NoteError::Key("the name must be non-empty, without spaces or `+`"));
        }
        let bytes = BASE64.decode(data).map_err(|_| NoteError::Key("the key data is not base64"))?;
        let (&kind, public) = bytes.split_first().ok_or(NoteError::Key("empty key data"))?;
        if kind != ED25519 {
            return Err(NoteError::Key("not an Ed25519 key"));
        }
        let public: [u8; 32] = public.try_into().map_err(|_| NoteError::Key("an Ed25519 public key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::Key("not a valid Ed25519 public key"))?;
        if key_hash(name, &key) != hash {
            return Err(NoteError::Key("the key hash does not match the name and key"));
        }
        Ok(NoteVerifier { name: name.to_owned(), key })
    }

    /// The verifier-key form.
    pub fn to_key_text(&self) -> String {
        let mut data = vec![ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(key_hash(&self.name, &self.key)), BASE64.encode(data))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a signed note: its text, when one of its signatures is this key's and verifies.
    /// Signatures by other keys are allowed (a witness's cosignature) and ignored.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let split = note.rfind("\n\n").ok_or(NoteError::Note("no blank line before the signatures"))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        check_text(text)?;
        if signatures.is_empty() || !signatures.ends_with('\n') {
            return Err(NoteError::Note("the signature lines must end in a newline"));
        }
        let hash = key_hash(&self.name, &self.key);
        for line in signatures.lines() {
            let rest =
                line.strip_prefix("\u{2014} ").ok_or(NoteError::Note("a signature line must begin with `— `"))?;
            let (name, data) = rest.split_once(' ').ok_or(NoteError::Note("a signature line is `— NAME SIGNATURE`"))?;
            if name != self.name {
                continue;
            }
            let bytes = BASE64.decode(data).map_err(|_| NoteError::Note("a signature is not base64"))?;
            if bytes.len() != 4 + 64 || bytes[..4] != hash {
                continue;
            }
            let Ok(signature) = Signature::from_slice(&bytes[4..]) else { continue };
            if self.key.verify_strict(text.as_bytes(), &signature).is_ok() {
                return Ok(text);
            }
        }
        Err(NoteError::Signature(self.name.clone()))
    }
}

/// `NAME+HASH+DATA` → its parts, the hash as 4 bytes.
fn split_key(text: &str) -> Result<(&str, [u8; 4], &str), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::Key("a key is `NAME+HASH+DATA`"));
    };
    let hash = hex::decode(hash).ok().and_then(|h| <[u8; 4]>::try_from(h).ok());
    let hash = hash.ok_or(NoteError::Key("the key hash is 8 hex digits"))?;
    Ok((name, hash, data))
}

/// A note's text: non-empty UTF-8, ending in a newline, no blank line at its end, no control
/// characters but newlines.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Note("the text must end in a newline"));
    }
    if text.ends_with("\n\n") || text == "\n" {
        return Err(NoteError::Note("the text must not end in a blank line"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Note("the text holds a control character"));
    }
    Ok(())
}

/// The tree a checkpoint commits to: the log's origin (its name), how many leaves, the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint's text (C2SP tlog-checkpoint): `ORIGIN\nSIZE\nBASE64(ROOT)\n`.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root))
    }

    /// Reads a checkpoint's text (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.lines();
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(NoteError::Checkpoint("no origin line"))?;
        let size = lines.next().ok_or(NoteError::Checkpoint("no tree size line"))?;
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
            return Err(NoteError::Checkpoint("the tree size is not a decimal number"));
        }
        let size = size.parse().map_err(|_| NoteError::Checkpoint("the tree size is too large"))?;
        let root = lines.next().ok_or(NoteError::Checkpoint("no root hash line"))?;
        let root = BASE64.decode(root).ok().and_then(|r| Hash::try_from(r).ok());
        let root = root.ok_or(NoteError::Checkpoint("the root hash is not 32 bytes of base64"))?;
        Ok(Checkpoint { origin: origin.to_owned(), size, root })
    }

    /// Signs this checkpoint into a signed note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        signer.sign(&self.to_text())
    }

    /// Opens a signed checkpoint with the log's key.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse(verifier.open(note)?)
    }
}

/// Base64 as these formats write it (standard alphabet, padded), for proofs served beside them.
pub fn base64_encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// The inverse of [`base64_encode`].
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    // The example of Go's golang.org/x/mod/sumdb/note documentation (the format's reference
    // implementation): Ed25519 signatures are deterministic, so signing must give these bytes.
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn the_reference_example_signs_and_opens_byte_for_byte() {
        let signer = NoteSigner::parse(SKEY).unwrap();
        assert_eq!(signer.to_key_text(), SKEY);
        assert_eq!(signer.verifier().to_key_text(), VKEY);
        let note = signer.sign(TEXT).unwrap();
        assert_eq!(note, format!("{TEXT}\n{SIG}"));
        let verifier = NoteVerifier::parse(VKEY).unwrap();
        assert_eq!(verifier.open(&note).unwrap(), TEXT);
    }

    #[test]
    fn a_changed_text_signature_or_key_does_not_open() {
        let verifier = NoteVerifier::parse(VKEY).unwrap();
        let note = format!("{TEXT}\n{SIG}");
        let changed = note.replacen("problem,", "problem;", 1);
        assert_eq!(verifier.open(&changed), Err(NoteError::Signature("PeterNeumann".into())));
        let other = NoteSigner::from_seed("PeterNeumann", [7; 32]).unwrap();
        assert_eq!(other.verifier().open(&note), Err(NoteError::Signature("PeterNeumann".into())));
        // A second signature by another key (a witness) does not stop the log's from opening.
        let cosigned = format!("{note}\u{2014} witness AAAAAAAA\n");
        assert_eq!(verifier.open(&cosigned).unwrap(), TEXT);
        assert_eq!(verifier.open(TEXT), Err(NoteError::Note("no blank line before the signatures")));
        // Every one-byte change to the keys is refused.
        let mut bytes = VKEY.as_bytes().to_vec();
        for i in 0..bytes.len() {
            bytes[i] = bytes[i].wrapping_add(1);
            if let Ok(k) = std::str::from_utf8(&bytes) {
                assert!(NoteVerifier::parse(k).is_err(), "{k}");
            }
            bytes[i] = bytes[i].wrapping_sub(1);
        }
        assert!(NoteSigner::parse(&SKEY.replace("c74f20a3", "c74f20a4")).is_err());
    }

    #[test]
    fn a_checkpoint_reads_back_and_refuses_what_is_not_one() {
        let signer = NoteSigner::from_seed("civicflow.test", [1; 32]).unwrap();
        let cp = Checkpoint { origin: "civicflow.test/log".into(), size: 1_234, root: [9; 32] };
        assert_eq!(cp.to_text(), "civicflow.test/log\n1234\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n");
        let note = cp.sign(&signer).unwrap();
        assert_eq!(Checkpoint::open(&note, &signer.verifier()).unwrap(), cp);
        assert_eq!(
            Checkpoint::parse("o\n012\nAA==\n"),
            Err(NoteError::Checkpoint("the tree size is not a decimal number"))
        );
        assert_eq!(
            Checkpoint::parse("o\n1\nAA==\n"),
            Err(NoteError::Checkpoint("the root hash is not 32 bytes of base64"))
        );
        assert_eq!(Checkpoint::parse("o\n"), Err(NoteError::Checkpoint("no tree size line")));
    }
}
