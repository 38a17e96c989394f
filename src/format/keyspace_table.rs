//! §5 the keyspace table section (`KSTB`).

use super::codec::{Dec, Put};
use super::limits::{MAX_KEYSPACES, MAX_NAME};
use super::options::KeyspaceOptions;
use super::section::{tags, Section};
use super::{FormatError, Result};

/// One keyspace: its name and the options to recreate it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyspaceEntry {
    /// The keyspace's name (1 to 255 bytes of UTF-8).
    pub name: String,
    /// The options it was created with.
    pub options: KeyspaceOptions,
}

/// Checks a keyspace name against §1.1 (used by writers and readers).
pub fn check_name(name: &[u8]) -> std::result::Result<&str, String> {
    if name.is_empty() {
        return Err("keyspace name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("keyspace name is {} bytes, the limit is {MAX_NAME}", name.len()));
    }
    std::str::from_utf8(name).map_err(|e| format!("keyspace name is not valid UTF-8: {e}"))
}

/// Checks a keyspace table before it is written (§5, §1.1): at most 2^16
/// entries, each name valid, names strictly ascending (so unique). The
/// decoder refuses a table that breaks these rules with the same checks.
pub fn check_entries(entries: &[KeyspaceEntry]) -> std::result::Result<(), String> {
    if entries.len() as u64 > u64::from(MAX_KEYSPACES) {
        return Err(format!("{} keyspaces exceed the format limit of {MAX_KEYSPACES}", entries.len()));
    }
    for (i, k) in entries.iter().enumerate() {
        check_name(k.name.as_bytes()).map_err(|m| format!("keyspace #{i}: {m}"))?;
        if let Some(prev) = i.checked_sub(1).and_then(|p| entries.get(p)) {
            if prev.name.as_bytes() >= k.name.as_bytes() {
                return Err(format!(
                    "keyspaces must be given in strictly ascending name order without duplicates ('{}' then '{}')",
                    prev.name, k.name
                ));
            }
        }
    }
    Ok(())
}

/// Encodes the section body. The caller guarantees names are valid and
/// sorted ([`check_entries`]).
pub fn encode(entries: &[KeyspaceEntry]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_u32(entries.len() as u32);
    for e in entries {
        b.put_bytes16(e.name.as_bytes());
        let o = e.options.encode();
        b.put_u32(o.len() as u32);
        b.extend_from_slice(&o);
    }
    b
}

/// Decodes and validates the keyspace table (§11 item 4).
pub fn decode(sec: &Section<'_>, expected_count: u32) -> Result<Vec<KeyspaceEntry>> {
    sec.expect_tag(tags::KEYSPACES)?;
    let mut d = Dec::new(sec.body, sec.body_offset(), "keyspace table");
    let at = d.offset();
    let count = d.u32("count")?;
    if count != expected_count || count > MAX_KEYSPACES {
        return Err(FormatError::corrupt(
            "keyspace table",
            at,
            format!("count {count} does not match the header's keyspace_count {expected_count}"),
        ));
    }
    // Each entry takes at least 7 bytes: bound the allocation by the section size.
    if u64::from(count) * 7 > d.remaining() as u64 {
        return Err(FormatError::corrupt(
            "keyspace table",
            at,
            format!("{count} keyspaces cannot fit in {} bytes", d.remaining()),
        ));
    }
    let mut out: Vec<KeyspaceEntry> = Vec::with_capacity(count as usize);
    for i in 0..count {
        let at = d.offset();
        let name = d.bytes16("name")?;
        let name =
            check_name(name).map_err(|m| FormatError::corrupt("keyspace table", at, format!("keyspace #{i}: {m}")))?;
        if let Some(prev) = out.last() {
            if prev.name.as_bytes() >= name.as_bytes() {
                let why = if prev.name == name { "duplicate keyspace name" } else { "keyspace names out of order" };
                return Err(FormatError::corrupt(
                    "keyspace table",
                    at,
                    format!("keyspace #{i} '{name}': {why} (after '{}')", prev.name),
                ));
            }
        }
        let olen = d.u32("options_len")? as usize;
        let obase = d.offset();
        let obytes = d.take(olen, "options")?;
        let options = KeyspaceOptions::decode(obytes, obase)?;
        out.push(KeyspaceEntry { name: name.to_owned(), options });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::section::{decode_section, encode_section, FLAG_REQUIRED};

    fn sec(entries: &[KeyspaceEntry]) -> Vec<u8> {
        encode_section(tags::KEYSPACES, FLAG_REQUIRED, &encode(entries))
    }
    fn ks(n: &str) -> KeyspaceEntry {
        KeyspaceEntry { name: n.into(), options: KeyspaceOptions::default() }
    }

    #[test]
    fn round_trip() {
        let e = vec![ks("a"), ks("b"), ks(&"z".repeat(255))];
        let s = sec(&e);
        assert_eq!(decode(&decode_section(&s, 0).unwrap(), 3).unwrap(), e);
    }

    #[test]
    fn duplicates_order_and_names_are_checked() {
        for bad in [vec![ks("a"), ks("a")], vec![ks("b"), ks("a")], vec![ks("")], vec![ks(&"x".repeat(256))]] {
            let s = sec(&bad);
            let n = bad.len() as u32;
            assert!(decode(&decode_section(&s, 0).unwrap(), n).is_err(), "{bad:?}");
            // A writer is refused the same tables before writing anything.
            assert!(check_entries(&bad).is_err(), "{bad:?}");
        }
        check_entries(&[ks("a"), ks("b"), ks(&"z".repeat(255))]).unwrap();
        let e = check_entries(&[ks("b"), ks("a")]).unwrap_err();
        assert!(e.contains("strictly ascending name order without duplicates ('b' then 'a')"), "{e}");
        let many: Vec<KeyspaceEntry> = (0..=MAX_KEYSPACES).map(|i| ks(&format!("{i:06}"))).collect();
        assert!(check_entries(&many).unwrap_err().contains("exceed the format limit of 65536"));
        check_entries(&many[..MAX_KEYSPACES as usize]).unwrap();
        let s = sec(&[ks("a")]);
        assert!(decode(&decode_section(&s, 0).unwrap(), 2).is_err());
        // Invalid UTF-8 name.
        let mut b = Vec::new();
        b.put_u32(1);
        b.put_bytes16(&[0xff, 0xfe]);
        b.put_u32(0);
        let s = encode_section(tags::KEYSPACES, FLAG_REQUIRED, &b);
        let e = decode(&decode_section(&s, 0).unwrap(), 1).unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }
}
