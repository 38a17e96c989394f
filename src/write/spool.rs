//! The record writer's spool: compressed blocks of keyspaces that cannot go
//! into the archive yet, because the format puts keyspaces in name order
//! (§12) while a caller may write them in any order.
//!
//! Frames are kept in memory up to a limit ([`DEFAULT_MEMORY_LIMIT`] unless
//! configured), then moved to one anonymous temporary file that every spooled
//! keyspace shares. The file is created with `tempfile::tempfile_in`: mode
//! 0600, and unlinked from the start (`O_TMPFILE` on Linux, removed right
//! after creation elsewhere), so it never shows in the directory and
//! disappears with its handle: when the writer finishes, fails or is dropped,
//! and also when the process dies. Memory besides the in-memory part stays at
//! one frame plus about 50 bytes per spooled block of bookkeeping.

use crate::format::block::BlockHeader;
use crate::write::EncodedBlock;
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Spooled frames kept in memory before the spool moves to a temporary file.
pub const DEFAULT_MEMORY_LIMIT: usize = 8 << 20;

/// One spooled block: its header and where its frame lies in the spool.
#[derive(Debug)]
struct SpooledBlock {
    header: BlockHeader,
    offset: u64,
    key_bytes: u64,
    value_bytes: u64,
    /// The block's first record start, for the key index (§8.2).
    first_key: Option<Vec<u8>>,
    first_offset: u32,
}

/// The blocks of one spooled keyspace, in sequence order and contiguous in
/// the spool, with the keyspace's last key.
#[derive(Debug, Default)]
pub(crate) struct SpooledKeyspace {
    blocks: Vec<SpooledBlock>,
    last_key: Option<Vec<u8>>,
}

enum Backing {
    Memory(Vec<u8>),
    File(BufWriter<File>),
}

/// Where spooled frames go.
pub(crate) struct Spool {
    dir: Option<PathBuf>,
    memory_limit: usize,
    backing: Backing,
    len: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = if matches!(self.backing, Backing::File(_)) { "file" } else { "memory" };
        f.debug_struct("Spool").field("dir", &self.dir).field("len", &self.len).field("in", &on).finish()
    }
}

const SPOOL_IO: &str = "the record writer's temporary spool file";

impl Spool {
    /// An empty spool: nothing is allocated or created until a frame comes.
    pub(crate) fn new() -> Spool {
        Spool { dir: None, memory_limit: DEFAULT_MEMORY_LIMIT, backing: Backing::Memory(Vec::new()), len: 0 }
    }

    /// Creates the temporary file in `dir` instead of `std::env::temp_dir()`.
    pub(crate) fn set_dir(&mut self, dir: PathBuf) {
        self.dir = Some(dir);
    }

    /// Keeps at most `bytes` of frames in memory (0: always a file).
    pub(crate) fn set_memory_limit(&mut self, bytes: usize) {
        self.memory_limit = bytes;
    }

    /// Whether the spool has moved to a temporary file.
    pub(crate) fn on_file(&self) -> bool {
        matches!(self.backing, Backing::File(_))
    }

    fn append(&mut self, frame: &[u8]) -> Result<u64> {
        let offset = self.len;
        if let Backing::Memory(m) = &self.backing {
            if m.len() + frame.len() > self.memory_limit {
                let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
                let f = tempfile::tempfile_in(&dir)
                    .map_err(|e| Error::io(format!("creating a temporary spool file in {}", dir.display()), e))?;
                let mut w = BufWriter::with_capacity(1 << 20, f);
                w.write_all(m).map_err(|e| Error::io(format!("writing {SPOOL_IO}"), e))?;
                self.backing = Backing::File(w);
            }
        }
        match &mut self.backing {
            Backing::Memory(m) => m.extend_from_slice(frame),
            Backing::File(w) => w.write_all(frame).map_err(|e| Error::io(format!("writing {SPOOL_IO}"), e))?,
        }
        self.len += frame.len() as u64;
        Ok(offset)
    }

    /// Appends a block of `ks`.
    pub(crate) fn push(&mut self, ks: &mut SpooledKeyspace, b: &mut EncodedBlock) -> Result<()> {
        let offset = self.append(&b.frame)?;
        ks.blocks.push(SpooledBlock {
            header: b.header,
            offset,
            key_bytes: b.key_bytes,
            value_bytes: b.value_bytes,
            first_key: b.first_key.take(),
            first_offset: b.first_offset,
        });
        if b.last_key.is_some() {
            ks.last_key = b.last_key.take();
        }
        Ok(())
    }

    /// Hands the blocks of `ks` to `put` in order, as keyspace `keyspace` of
    /// the table, each with the keyspace's first key on its first block and
    /// last key on its last (which is how the index takes them). `frame` is a
    /// reusable buffer.
    pub(crate) fn replay(
        &mut self,
        ks: SpooledKeyspace,
        keyspace: u32,
        frame: &mut Vec<u8>,
        mut put: impl FnMut(&EncodedBlock) -> Result<()>,
    ) -> Result<()> {
        let n = ks.blocks.len();
        let mut last_key = ks.last_key;
        let mut block = |j: usize, sb: &SpooledBlock, data: &mut dyn FnMut(&mut Vec<u8>) -> Result<()>| {
            frame.clear();
            frame.resize(sb.header.frame_len as usize, 0);
            data(frame)?;
            let mut header = sb.header;
            header.keyspace = keyspace;
            let b = EncodedBlock {
                header,
                frame: std::mem::take(frame),
                key_bytes: sb.key_bytes,
                value_bytes: sb.value_bytes,
                first_key: sb.first_key.clone(),
                first_offset: sb.first_offset,
                last_key: if j + 1 == n { last_key.take() } else { None },
            };
            let r = put(&b);
            *frame = b.frame;
            r
        };
        match &mut self.backing {
            Backing::Memory(m) => {
                for (j, sb) in ks.blocks.iter().enumerate() {
                    let at = sb.offset as usize;
                    let src = m.get(at..at + sb.header.frame_len as usize).ok_or_else(|| {
                        Error::InvalidArgument(format!("internal: spooled block at {at} lies outside the spool"))
                    })?;
                    block(j, sb, &mut |f| {
                        f.copy_from_slice(src);
                        Ok(())
                    })?;
                }
            }
            Backing::File(w) => {
                let Some(start) = ks.blocks.first().map(|b| b.offset) else { return Ok(()) };
                w.flush().map_err(|e| Error::io(format!("writing {SPOOL_IO}"), e))?;
                let mut f: &File = w.get_ref();
                f.seek(SeekFrom::Start(start)).map_err(|e| Error::io(format!("reading {SPOOL_IO}"), e))?;
                let mut r = BufReader::with_capacity(1 << 20, f);
                for (j, sb) in ks.blocks.iter().enumerate() {
                    block(j, sb, &mut |f| r.read_exact(f).map_err(|e| Error::io(format!("reading {SPOOL_IO}"), e)))?;
                }
                drop(r);
                // Later frames are appended at the end again.
                f.seek(SeekFrom::End(0)).map_err(|e| Error::io(format!("seeking in {SPOOL_IO}"), e))?;
            }
        }
        Ok(())
    }
}
