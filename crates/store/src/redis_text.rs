//! A run's object definitions as Redis keeps them: LZ4-compressed behind a marker (the users'
//! bench's: 20 bytes per object instead of 117-131), read back whether compressed or written
//! plain by an older version.

use super::StoreError;

/// What a compressed text starts with: never the start of a JSON text.
const MARKER: &[u8] = b"\0lz4\0";

/// `text`, compressed, with the marker and its size in front.
pub(crate) fn pack(text: &str) -> Vec<u8> {
    let mut packed = MARKER.to_vec();
    packed.extend(lz4_flex::compress_prepend_size(text.as_bytes()));
    packed
}

/// The text `stored` holds: compressed by [`pack`], or the plain text an older version wrote.
pub(crate) fn unpack(stored: Vec<u8>, key: &str) -> Result<String, StoreError> {
    let corrupt = |why: String| StoreError::Decode(format!("{key}: {why}"));
    let bytes = match stored.strip_prefix(MARKER) {
        Some(packed) => lz4_flex::decompress_size_prepended(packed)
            .map_err(|e| corrupt(format!("not LZ4 ({e})")))?,
        None => stored,
    };
    String::from_utf8(bytes).map_err(|e| corrupt(format!("not UTF-8 ({e})")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_packed_text_unpacks_whole_and_smaller() {
        let text = format!(
            "[{}]",
            (0..1000)
                .map(|i| format!("{{\"IdObjet\":{i},\"Zone\":\"1-Raw\",\"IdObjet_Parent\":null}}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let packed = pack(&text);
        assert!(
            packed.len() * 3 < text.len(),
            "{} of {}",
            packed.len(),
            text.len()
        );
        assert_eq!(unpack(packed, "k").unwrap(), text);
    }

    #[test]
    fn a_plain_text_an_older_version_wrote_reads_as_it_is() {
        assert_eq!(
            unpack(b"[{\"IdObjet\":1}]".to_vec(), "k").unwrap(),
            "[{\"IdObjet\":1}]"
        );
        assert_eq!(unpack(Vec::new(), "k").unwrap(), "");
    }

    #[test]
    fn a_damaged_value_is_an_error_naming_its_key() {
        let mut packed = pack("[1,2,3]");
        packed.truncate(packed.len() - 2);
        let e = unpack(packed, "orch:run:r:graph").unwrap_err().to_string();
        assert!(e.contains("orch:run:r:graph"), "{e}");
        let e = unpack(vec![0xff, 0xfe], "k").unwrap_err().to_string();
        assert!(e.contains("UTF-8"), "{e}");
    }
}
