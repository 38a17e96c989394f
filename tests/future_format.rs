//! Format-spec §10, the rules that let old readers meet newer archives:
//! unknown optional sections are skipped (and listed by inspect), unknown
//! required sections, other major versions and unknown required feature bits
//! are refused with exit code 4 and a message naming what was found; newer
//! minor versions, appended header fields and optional feature bits are
//! accepted; unknown keyspace options follow §5.1. Fields appended to the
//! body of every section (FLOE, KSTB, BLKH, INDX, an unknown optional one) are
//! accepted by every reader and import alike; the trailer alone never grows.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;
#[path = "common/rebuild.rs"]
mod rebuild;

use common::*;
use floe::format::options::{KeyspaceOptions, UnknownOption, OPTION_REQUIRED};
use floe::import::{import_file, import_stream, ImportOptions};
use floe::progress::NoProgress;
use floe::read::{verify_stream, Archive};
use std::collections::BTreeMap;
use std::path::Path;

fn model() -> Model {
    let mut m = Model::new();
    m.insert(
        "alpha".into(),
        (0..50u32).map(|i| (format!("k{i:03}").into_bytes(), vec![i as u8; i as usize * 100])).collect(),
    );
    m.insert("beta".into(), BTreeMap::new());
    m.insert("gamma".into(), [(b"g".to_vec(), b"gv".to_vec())].into());
    m
}

/// Everything accepts the archive: library readers, both imports, the CLI.
fn accepted_everywhere(bytes: &[u8], want: &Model, dir: &Path) {
    let a = Archive::from_bytes(bytes, "a").unwrap();
    a.verify(false, &NoProgress).unwrap();
    a.verify(true, &NoProgress).unwrap();
    // Read by ranges, as from an object store.
    let r = Archive::from_bytes(Ranged::new(bytes), "r").unwrap();
    r.verify(false, &NoProgress).unwrap();
    r.verify(true, &NoProgress).unwrap();
    verify_stream(bytes, "s", true, &NoProgress).unwrap();
    verify_stream(bytes, "s", false, &NoProgress).unwrap();
    let f = dir.join("ok.floe");
    std::fs::write(&f, bytes).unwrap();
    let t1 = dir.join("db1");
    import_file(&f, &t1, &ImportOptions::default(), &NoProgress).unwrap();
    assert_models_eq(&read_db_at(&t1), want);
    let t2 = dir.join("db2");
    import_stream(bytes, "s", &t2, &ImportOptions::default(), &NoProgress).unwrap();
    assert_models_eq(&read_db_at(&t2), want);
    assert_code(&floe(&["verify", p(&f)]), 0);
    assert_code(&floe_stdin(&["verify", "-"], &f), 0);
    let t3 = dir.join("db3");
    assert_code(&floe(&["import", "-q", p(&f), p(&t3)]), 0);
    assert_models_eq(&read_db_at(&t3), want);
}

/// Every reader and import refuses with "needs a newer floe"; CLI exit 4; all
/// messages contain every string of `needles`; nothing is left behind.
fn refused_as_too_new(bytes: &[u8], needles: &[&str], dir: &Path) {
    let check = |e: floe::Error, who: &str| {
        let msg = e.to_string();
        assert!(e.format_error().is_some_and(|f| f.is_unsupported()), "{who}: not an 'unsupported' error: {msg}");
        for n in needles {
            assert!(msg.contains(n), "{who}: message does not contain {n:?}: {msg}");
        }
    };
    check(Archive::from_bytes(bytes, "a").and_then(|a| a.verify(false, &NoProgress)).unwrap_err(), "Archive");
    check(verify_stream(bytes, "s", false, &NoProgress).unwrap_err(), "verify_stream");
    check(verify_stream(bytes, "s", true, &NoProgress).unwrap_err(), "verify_stream --quick");
    let f = dir.join("new.floe");
    std::fs::write(&f, bytes).unwrap();
    let t = dir.join("db");
    check(import_file(&f, &t, &ImportOptions::default(), &NoProgress).unwrap_err(), "import_file");
    check(import_stream(bytes, "s", &t, &ImportOptions::default(), &NoProgress).unwrap_err(), "import_stream");
    assert!(!t.exists());
    for args in
        [vec!["verify", p(&f)], vec!["verify", "--quick", p(&f)], vec!["inspect", p(&f)], vec!["import", p(&f), p(&t)]]
    {
        let o = floe(&args);
        assert_code(&o, 4);
        for n in needles {
            assert!(stderr(&o).contains(n), "floe {args:?}: stderr lacks {n:?}: {}", stderr(&o));
        }
    }
    for args in [vec!["verify", "-"], vec!["import", "-", p(&t)]] {
        let o = floe_stdin(&args, &f);
        assert_code(&o, 4);
        for n in needles {
            assert!(stderr(&o).contains(n), "floe {args:?}: stderr lacks {n:?}: {}", stderr(&o));
        }
    }
    assert!(!t.exists(), "refused import left a target");
    assert_eq!(dir_names(dir), vec!["new.floe".to_string()], "refused import left files");
}

#[test]
fn optional_unknown_sections_are_skipped_and_listed() {
    let m = model();
    let bytes = write_archive(&m, 4096, &BTreeMap::new(), Some((*b"XTRA", 0)));
    let dir = tempdir();
    accepted_everywhere(&bytes, &m, dir.path());
    let a = Archive::from_bytes(bytes.as_slice(), "a").unwrap();
    let skipped = a.skipped_sections();
    assert_eq!(skipped.len(), m.len() + 1, "{skipped:?}");
    assert!(skipped.iter().all(|(t, _)| t == "XTRA"));
    // The offsets are real: each points at a section whose tag is XTRA.
    for (_, off) in skipped {
        assert_eq!(&bytes[*off as usize + 12..*off as usize + 16], b"XTRA");
    }
    let f = dir.path().join("ok.floe");
    let o = floe(&["inspect", p(&f)]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("skipped") && text.contains("XTRA"), "{text}");
    assert!(text.contains(&format!("offset {}", skipped[0].1)), "{text}");
    let o = floe(&["inspect", "--json", p(&f)]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let s = v["skipped_sections"].as_array().unwrap();
    assert_eq!(s.len(), skipped.len());
    assert_eq!(s[0]["tag"], "XTRA");
    assert_eq!(s[0]["offset"], skipped[0].1);

    // Flag bits 1-31 are ignored: still optional.
    let bytes = write_archive(&m, 4096, &BTreeMap::new(), Some((*b"XTRA", 0xFFFF_FFFE)));
    let dir = tempdir();
    accepted_everywhere(&bytes, &m, dir.path());
}

#[test]
fn required_unknown_section_is_refused_naming_the_tag() {
    let bytes = write_archive(&model(), 4096, &BTreeMap::new(), Some((*b"XTRA", 1)));
    let first = {
        // The first XTRA section follows the keyspace table.
        let h = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize + 8;
        h + u32::from_le_bytes(bytes[h + 4..h + 8].try_into().unwrap()) as usize + 8
    };
    assert_eq!(&bytes[first + 12..first + 16], b"XTRA");
    let dir = tempdir();
    refused_as_too_new(&bytes, &["'XTRA'", &format!("offset {first}")], dir.path());
}

#[test]
fn other_major_versions_are_refused_naming_the_version() {
    let m = model();
    let good = write_archive(&m, 4096, &BTreeMap::new(), None);
    let v2 = rewrite_header(&good, |h| {
        h.format_major = 2;
        h.format_minor = 3;
    });
    let dir = tempdir();
    refused_as_too_new(&v2, &["2.3", "1.x"], dir.path());
    // A v2 header may look nothing like v1 after its version fields: refuse
    // on the version, not on whatever follows.
    let mut body = 2u16.to_le_bytes().to_vec();
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(b"\xff\xff\xff");
    let v2short = replace_header_body(&good, &body);
    let dir = tempdir();
    refused_as_too_new(&v2short, &["2.0"], dir.path());
    // Major 0 is not 1 either.
    let v0 = rewrite_header(&good, |h| {
        h.format_major = 0;
        h.format_minor = 0;
    });
    let dir = tempdir();
    refused_as_too_new(&v0, &["0.0"], dir.path());
}

#[test]
fn unknown_required_feature_bits_are_refused_naming_the_bits() {
    let good = write_archive(&model(), 4096, &BTreeMap::new(), None);
    let bad = rewrite_header(&good, |h| h.required_features = 1 << 7);
    let dir = tempdir();
    refused_as_too_new(&bad, &["0x80"], dir.path());
    let bad = rewrite_header(&good, |h| h.required_features = 1 << 63 | 1);
    let dir = tempdir();
    refused_as_too_new(&bad, &["0x8000000000000001"], dir.path());
}

#[test]
fn newer_minor_optional_features_and_appended_fields_are_accepted() {
    let m = model();
    let good = write_archive(&m, 4096, &BTreeMap::new(), None);
    let newer = rewrite_header(&good, |h| {
        h.format_minor = 7;
        h.optional_features = u64::MAX;
    });
    let dir = tempdir();
    accepted_everywhere(&newer, &m, dir.path());
    // Fields appended to the header body by a future minor version (§3: readers
    // ignore body bytes beyond the fields they know).
    let sec = floe::format::section::decode_section(&good, 0).unwrap();
    let mut h = floe::format::header::Header::decode(&sec).unwrap();
    h.format_minor = 1;
    let mut body = h.encode();
    body.extend_from_slice(b"fields from format 1.1");
    let grown = grow_header(&good, &body);
    let dir2 = tempdir();
    accepted_everywhere(&grown, &m, dir2.path());
    assert_eq!(inspect_version(&grown, dir2.path()), "1.1");
    let o = inspect_version(&newer, dir.path());
    assert_eq!(o, "1.7");
}

/// Replaces the header by one with `body`, shifting every absolute offset
/// (index block entries, trailer) so the archive stays valid.
fn grow_header(archive: &[u8], body: &[u8]) -> Vec<u8> {
    use floe::format::section::{decode_section, encode_section, tags, FLAG_REQUIRED};
    use floe::format::trailer::Trailer;
    let a = Archive::from_bytes(archive, "g").unwrap();
    let old_len = decode_section(archive, 0).unwrap().total_len as usize;
    let mut out = encode_section(tags::HEADER, FLAG_REQUIRED, body);
    let delta = (out.len() - old_len) as u64;
    let t = *a.trailer();
    let mut index = a.index().clone();
    for b in &mut index.blocks {
        b.offset += delta;
    }
    for part in &mut index.key_index {
        part.offset += delta;
    }
    out.extend_from_slice(&archive[old_len..t.index_offset as usize]);
    let isec = encode_section(tags::INDEX, FLAG_REQUIRED, &index.encode());
    assert_eq!(isec.len() as u64, t.index_size);
    out.extend_from_slice(&isec);
    let nt = Trailer {
        index_offset: t.index_offset + delta,
        index_size: t.index_size,
        archive_size: t.archive_size + delta,
        block_count: t.block_count,
    };
    out.extend_from_slice(&nt.encode());
    out
}

fn inspect_version(bytes: &[u8], dir: &Path) -> String {
    let f = dir.join("v.floe");
    std::fs::write(&f, bytes).unwrap();
    let o = floe(&["inspect", "--json", p(&f)]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["format_version"].as_str().unwrap().to_owned()
}

#[test]
fn unknown_keyspace_options_follow_the_required_bit() {
    let m = model();
    let mut optional = BTreeMap::new();
    optional.insert(
        "gamma".to_owned(),
        KeyspaceOptions { unknown: vec![UnknownOption { tag: 200, value: b"future".to_vec() }], ..Default::default() },
    );
    let bytes = write_archive(&m, 4096, &optional, None);
    let dir = tempdir();
    accepted_everywhere(&bytes, &m, dir.path());
    let s = import_file(&dir.path().join("ok.floe"), &dir.path().join("db4"), &ImportOptions::default(), &NoProgress)
        .unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("200") && w.contains("gamma")), "{:?}", s.warnings);
    let o = floe(&["import", p(&dir.path().join("ok.floe")), p(&dir.path().join("db5"))]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("warning") && stderr(&o).contains("200"), "{}", stderr(&o));

    let mut required = BTreeMap::new();
    required.insert(
        "gamma".to_owned(),
        KeyspaceOptions {
            unknown: vec![UnknownOption { tag: OPTION_REQUIRED | 201, value: vec![] }],
            ..Default::default()
        },
    );
    let bytes = write_archive(&m, 4096, &required, None);
    // Readers that only read records ignore options (§5.1).
    let a = Archive::from_bytes(bytes.as_slice(), "a").unwrap();
    a.verify(false, &NoProgress).unwrap();
    verify_stream(bytes.as_slice(), "s", false, &NoProgress).unwrap();
    // Importers refuse to recreate that keyspace, naming the keyspace and id.
    let dir = tempdir();
    let f = dir.path().join("r.floe");
    std::fs::write(&f, &bytes).unwrap();
    let t = dir.path().join("db");
    let e = import_file(&f, &t, &ImportOptions::default(), &NoProgress).unwrap_err().to_string();
    assert!(e.contains("gamma") && e.contains("201"), "{e}");
    let e = import_stream(bytes.as_slice(), "s", &t, &ImportOptions::default(), &NoProgress).unwrap_err().to_string();
    assert!(e.contains("gamma") && e.contains("201"), "{e}");
    let o = floe(&["import", p(&f), p(&t)]);
    assert_code(&o, 4);
    assert!(stderr(&o).contains("201"), "{}", stderr(&o));
    assert!(!t.exists());
    // Importing only the other keyspaces is fine.
    let s = import_file(
        &f,
        &t,
        &{
            let mut o = ImportOptions::default();
            o.keyspaces = Some(vec!["alpha".into()]);
            o
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(s.keyspaces, 1);
    assert_no_temporaries(dir.path());
}

/// A later minor version may append fields to the body of any section (§3,
/// §10): readers take every size from the section's own `frame_size`. The
/// random-access reader once assumed a block header is 52 bytes, so it refused
/// (and the streaming reader accepted) an archive whose block headers grew.
#[test]
fn appended_fields_in_every_section_are_accepted_by_every_reader() {
    use floe::format::section::tags;
    let m = model();
    let good = write_archive(&m, 4096, &BTreeMap::new(), Some((*b"XTRA", 0)));
    let a = Archive::from_bytes(good.as_slice(), "g").unwrap();
    assert!(a.index().blocks.len() >= 5, "{} blocks", a.index().blocks.len());
    let extra = b"fields of format 1.1, ignored by 1.0 readers";
    let cases: [(&str, &[[u8; 4]]); 7] = [
        ("FLOE", &[tags::HEADER]),
        ("KSTB", &[tags::KEYSPACES]),
        ("BLKH", &[tags::BLOCK]),
        ("INDX", &[tags::INDEX]),
        ("XTRA", &[*b"XTRA"]),
        ("all", &[tags::HEADER, tags::KEYSPACES, tags::BLOCK, tags::INDEX, *b"XTRA"]),
        ("none", &[]),
    ];
    for (what, which) in cases {
        let grown = rebuild::grow_sections(&good, which, extra);
        if which.is_empty() {
            assert_eq!(grown, good, "rebuilding without edits must reproduce the archive");
            continue;
        }
        assert!(grown.len() > good.len(), "{what}");
        let dir = tempdir();
        accepted_everywhere(&grown, &m, dir.path());
        // The grown block headers are really there, and readers report the
        // same blocks as in the original.
        let g = Archive::from_bytes(grown.as_slice(), "g").unwrap();
        assert_eq!(g.index().blocks.len(), a.index().blocks.len(), "{what}");
        if which.contains(&tags::BLOCK) {
            for e in &g.index().blocks {
                let size = u32::from_le_bytes(grown[e.offset as usize + 4..e.offset as usize + 8].try_into().unwrap());
                assert_eq!(size as usize, 12 + 32 + extra.len(), "{what}");
            }
        }
    }
    // Only one block header grown (the third): offsets after it shift, those before do not.
    let grow = |t: &[u8; 4], n: usize| (*t == tags::BLOCK && n == 2).then(|| extra.to_vec());
    let one = rebuild::rebuild(&good, &rebuild::Edits { grow: Some(&grow), ..Default::default() });
    let dir = tempdir();
    accepted_everywhere(&one, &m, dir.path());
}

/// §9: the trailer is exactly 60 bytes in every 1.x version (readers find it
/// at end of file − 60), so it can never grow: a trailer with appended fields
/// or another `frame_size` is refused by every reader, naming the trailer.
#[test]
fn the_trailer_never_grows() {
    use floe::format::section::{encode_section, tags, FLAG_REQUIRED};
    let good = write_archive(&model(), 4096, &BTreeMap::new(), None);
    let n = good.len();
    let t = *Archive::from_bytes(good.as_slice(), "g").unwrap().trailer();
    // Fields appended before end_magic (which stays last) and after it.
    for before_magic in [true, false] {
        let mut body = good[n - 40..n - 8].to_vec();
        if before_magic {
            body.extend_from_slice(b"appended");
            body.extend_from_slice(&floe::format::trailer::END_MAGIC);
        } else {
            body.extend_from_slice(&floe::format::trailer::END_MAGIC);
            body.extend_from_slice(b"appended");
        }
        let mut b = good[..n - 60].to_vec();
        let archive_size = (n + 8) as u64;
        body[16..24].copy_from_slice(&archive_size.to_le_bytes());
        b.extend_from_slice(&encode_section(tags::TRAILER, FLAG_REQUIRED, &body));
        assert_eq!(b.len() as u64, archive_size);
        let errs = all_readers_refuse(&b, &format!("grown trailer (before magic: {before_magic})"));
        assert!(errs.iter().all(|e| e.contains("trailer")), "{errs:?}");
        imports_fail_cleanly(&b, "grown trailer");
    }
    // frame_size other than 52, CRC made valid over the 60 bytes.
    for size in [44u32, 53, 40 + 12 + 8] {
        if size == 52 {
            continue;
        }
        let mut b = good.clone();
        b[n - 56..n - 52].copy_from_slice(&size.to_le_bytes());
        let crc = floe::format::section::section_crc(&b[n - 60..]);
        b[n - 52..n - 48].copy_from_slice(&crc.to_le_bytes());
        let errs = all_readers_refuse(&b, &format!("trailer frame_size {size}"));
        assert!(errs.iter().all(|e| e.contains("frame_size")), "{errs:?}");
        imports_fail_cleanly(&b, "trailer frame_size");
    }
    assert_eq!(t.archive_size, n as u64);
}
