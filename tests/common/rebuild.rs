//! Rebuilding an archive section by section (format-spec §2, §3): bodies
//! grown with appended fields, bytes inserted between blocks, CRCs fixed and
//! every absolute offset (index block entries, trailer) shifted, so the result
//! differs from a valid archive only in what the test asked for.

#![allow(dead_code)]

use floe::format::frames::{read_data_item, read_section, DataItem, InMemory};
use floe::format::index::Index;
use floe::format::section::{encode_section, tags, Section, FLAG_REQUIRED};
use floe::format::trailer::Trailer;
use std::collections::BTreeMap;

/// What to change while rebuilding.
/// Bytes to append to the body of a section, by tag and per-tag count.
pub type Grow<'a> = &'a dyn Fn(&[u8; 4], usize) -> Option<Vec<u8>>;

#[derive(Default)]
pub struct Edits<'a> {
    /// Bytes appended to the body of the `n`-th section (0-based, counted per
    /// tag) with this tag: `grow(tag, n)`. The index is `INDX` 0.
    pub grow: Option<Grow<'a>>,
    /// Bytes inserted right after block `i`'s data frame (verbatim: the
    /// test's garbage or a whole section).
    pub after_block: BTreeMap<usize, Vec<u8>>,
}

/// Rebuilds the valid `archive` with `edits` applied.
pub fn rebuild(archive: &[u8], edits: &Edits<'_>) -> Vec<u8> {
    let mut counts: BTreeMap<[u8; 4], usize> = BTreeMap::new();
    let mut grown = |s: Section<'_>| -> Vec<u8> {
        let n = counts.entry(s.tag).or_default();
        let mut body = s.body.to_vec();
        if let Some(extra) = edits.grow.and_then(|g| g(&s.tag, *n)) {
            body.extend_from_slice(&extra);
        }
        *n += 1;
        encode_section(s.tag, s.flags, &body)
    };
    let mut r = InMemory(archive);
    let h = read_section(&mut r, 0).unwrap();
    let k = read_section(&mut r, h.end()).unwrap();
    let mut out = grown(h.section());
    out.extend_from_slice(&grown(k.section()));
    let header = floe::format::header::Header::decode(&h.section()).unwrap();
    let data_start = k.end();
    let mut offsets = Vec::new();
    let mut parts = Vec::new();
    let mut pos = data_start;
    let isec = loop {
        let item = read_data_item(&mut r, pos).unwrap();
        pos = item.end();
        match item {
            DataItem::Block { ref section, .. } => {
                offsets.push(out.len() as u64);
                out.extend_from_slice(&grown(section.section()));
                out.extend_from_slice(&archive[item.frame_offset() as usize..item.end() as usize]);
                if let Some(b) = edits.after_block.get(&(offsets.len() - 1)) {
                    out.extend_from_slice(b);
                }
            }
            DataItem::Skipped(ref s) => out.extend_from_slice(&grown(s.section())),
            DataItem::KeyIndex(ref s) => {
                let sec = grown(s.section());
                parts.push((out.len() as u64, sec.len() as u32));
                out.extend_from_slice(&sec);
            }
            DataItem::Index(s) => break s,
        }
    };
    let mut index = Index::decode(&isec.section(), header.keyspace_count, data_start, isec.offset).unwrap();
    assert_eq!(index.blocks.len(), offsets.len());
    for (b, o) in index.blocks.iter_mut().zip(offsets) {
        b.offset = o;
    }
    assert_eq!(index.key_index.len(), parts.len());
    for (p, (o, size)) in index.key_index.iter_mut().zip(parts) {
        p.offset = o;
        p.size = size;
    }
    let index_offset = out.len() as u64;
    let mut body = index.encode();
    if let Some(extra) = edits.grow.and_then(|g| g(&tags::INDEX, 0)) {
        body.extend_from_slice(&extra);
    }
    out.extend_from_slice(&encode_section(tags::INDEX, FLAG_REQUIRED, &body));
    let t = Trailer {
        index_offset,
        index_size: out.len() as u64 - index_offset,
        archive_size: out.len() as u64 + 60,
        block_count: index.blocks.len() as u64,
    };
    out.extend_from_slice(&t.encode());
    out
}

/// `archive` with `extra` appended to the body of every section whose tag is in `which`.
pub fn grow_sections(archive: &[u8], which: &[[u8; 4]], extra: &[u8]) -> Vec<u8> {
    let grow = |t: &[u8; 4], _: usize| which.contains(t).then(|| extra.to_vec());
    rebuild(archive, &Edits { grow: Some(&grow), ..Default::default() })
}
