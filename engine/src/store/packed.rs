//! The compact, versioned encoding of a snapshot in SQLite's `snapshots.body` (issue 10.1: "a
//! snapshot … in a compact versioned encoding").
//!
//! A snapshot is the state's JSON, ~2.4 kB for a five-step chain and mostly the same field names
//! over and over: with 2 kB pages it did not fit its row's page, so every snapshot written took
//! an overflow page besides (and freed the old one). LZ4 makes it ~440 bytes, written and read
//! in microseconds. The body is a BLOB:
//!
//! ```text
//! [format: 1 byte = 1] [length of the JSON text: u32, little-endian] [LZ4 block of the JSON text]
//! ```
//!
//! A body written before (TEXT, the JSON itself) reads as it is; a new format takes the next
//! byte, and a reader refuses one it does not know rather than guess. PostgreSQL keeps JSON in
//! its `jsonb` column: it compresses a large value itself (TOAST).

use super::StoreError;

/// The first byte of a body in LZ4 (the only packed format so far).
const LZ4: u8 = 1;

/// The most bytes LZ4 can make of one byte of a block (a match's length grows by 255 a byte), so
/// a body claiming more than this many times its block's size is damaged: a corrupt length must
/// not make the reader allocate gigabytes.
const MAX_RATIO: usize = 256;

/// `json` packed for `snapshots.body` (a state's JSON is far below the 4 GiB the length can say).
pub fn pack(json: &str) -> Vec<u8> {
    let length = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut body = vec![0; 5 + lz4_flex::block::get_maximum_output_size(json.len())];
    body[0] = LZ4;
    body[1..5].copy_from_slice(&length.to_le_bytes());
    // The buffer is the bound LZ4 gives for this input, so compressing into it cannot fail.
    let written = lz4_flex::block::compress_into(json.as_bytes(), &mut body[5..]).unwrap_or(0);
    body.truncate(5 + written);
    body
}

/// The JSON text of a stored body: a packed one unpacked, an older TEXT one as it is.
pub fn unpack(body: Body<'_>) -> Result<std::borrow::Cow<'_, str>, StoreError> {
    let bytes = match body {
        Body::Text(text) => return Ok(std::borrow::Cow::Borrowed(text)),
        Body::Blob(bytes) => bytes,
    };
    let corrupt = |why: &str| StoreError::Corrupt(format!("a stored snapshot {why}"));
    let (&format, rest) = bytes.split_first().ok_or_else(|| corrupt("is empty"))?;
    if format != LZ4 {
        return Err(corrupt(&format!("is in format {format}, which this version does not read")));
    }
    let (length, block) = rest.split_at_checked(4).ok_or_else(|| corrupt("is cut short"))?;
    let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]) as usize;
    if length > block.len().saturating_mul(MAX_RATIO).saturating_add(MAX_RATIO) {
        return Err(corrupt(&format!("claims {length} bytes of text from a block of {} bytes", block.len())));
    }
    let text = lz4_flex::block::decompress(block, length).map_err(|e| corrupt(&format!("does not unpack: {e}")))?;
    if text.len() != length {
        return Err(corrupt(&format!("unpacks to {} bytes, not the {length} it claims", text.len())));
    }
    String::from_utf8(text).map(std::borrow::Cow::Owned).map_err(|_| corrupt("unpacks to text that is not UTF-8"))
}

/// A `snapshots.body` as SQLite holds it: JSON text (written before the packed format) or a
/// packed BLOB.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    Text(&'a str),
    Blob(&'a [u8]),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;

    #[test]
    fn a_packed_snapshot_unpacks_to_its_text() {
        let json =
            r#"{"status":"running","nodes":{"s0":{"status":"done"},"s1":{"status":"done"},"s2":{"status":"open"}}}"#;
        let body = pack(json);
        assert_eq!(body[0], LZ4);
        assert_eq!(u32::from_le_bytes([body[1], body[2], body[3], body[4]]) as usize, json.len());
        assert!(body.len() < json.len(), "{} bytes packed from {}", body.len(), json.len());
        assert_eq!(unpack(Body::Blob(&body)).unwrap(), json);
        assert_eq!(unpack(Body::Blob(&pack(""))).unwrap(), "");
        // As compressible as text gets: still within what a block can claim.
        let same = "a".repeat(1 << 20);
        assert_eq!(unpack(Body::Blob(&pack(&same))).unwrap(), same);
    }

    #[test]
    fn a_text_body_written_before_reads_as_it_is() {
        assert_eq!(unpack(Body::Text(r#"{"status":"running"}"#)).unwrap(), r#"{"status":"running"}"#);
    }

    #[test]
    fn a_damaged_or_unknown_body_is_refused_with_what_is_wrong() {
        let message = |bytes: &[u8]| match unpack(Body::Blob(bytes)) {
            Err(StoreError::Corrupt(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(&[]), "a stored snapshot is empty");
        assert_eq!(message(&[2, 0, 0, 0, 0]), "a stored snapshot is in format 2, which this version does not read");
        assert_eq!(message(&[LZ4, 5, 0]), "a stored snapshot is cut short");
        assert_eq!(
            message(&[LZ4, 0xff, 0xff, 0xff, 0xff]),
            "a stored snapshot claims 4294967295 bytes of text from a block of 0 bytes"
        );
        let mut longer = pack("{\"status\":\"running\"}");
        longer[1] += 1;
        assert_eq!(message(&longer), "a stored snapshot unpacks to 20 bytes, not the 21 it claims");
        let mut cut = pack("{\"status\":\"running\"}");
        cut.truncate(cut.len() - 3);
        assert!(message(&cut).starts_with("a stored snapshot does not unpack: "), "{}", message(&cut));
    }
}
