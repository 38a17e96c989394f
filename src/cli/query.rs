//! `floe get` and `floe cat`: looking inside an archive without restoring it.

use super::{emit, ok_doc};
use clap::Args;
use floe::text::escape;
use floe::Error;
use std::io::Write;

#[derive(Args)]
pub struct GetArgs {
    /// The archive (path, file:// or s3:// URL).
    archive: String,
    /// The keyspace.
    keyspace: String,
    /// The key: UTF-8 text, or hex with --hex.
    key: String,
    /// The key argument is hex.
    #[arg(long)]
    hex: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CatFormat {
    /// One JSON object per record.
    Jsonl,
    /// keyspace<TAB>key_hex<TAB>value_hex.
    Tsv,
}

#[derive(Args)]
pub struct CatArgs {
    /// The archive (path, file:// or s3:// URL).
    archive: String,
    /// Only this keyspace (repeatable); all by default. Records still come in archive order.
    #[arg(long = "keyspace", short = 'k')]
    keyspaces: Vec<String>,
    #[command(flatten)]
    range: RangeArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CatFormat::Jsonl)]
    format: CatFormat,
}

/// One key range of every chosen keyspace: the flags `cat`, `export` and
/// `import` share.
#[derive(Args)]
pub struct RangeArgs {
    /// Only keys starting with P: the range [P, the successor of P).
    #[arg(long, value_name = "P", conflicts_with_all = ["from", "to"])]
    prefix: Option<String>,
    /// Only keys >= A (inclusive).
    #[arg(long, value_name = "A")]
    from: Option<String>,
    /// Only keys < B (exclusive).
    #[arg(long, value_name = "B")]
    to: Option<String>,
    /// Key arguments (--prefix, --from, --to) are hex.
    #[arg(long)]
    hex: bool,
}

impl RangeArgs {
    /// The range these flags give (every key when none is given). An empty
    /// one is not refused here: export and import refuse it
    /// ([`floe::KeyRange::check`]), `cat` prints nothing.
    pub fn key_range(&self) -> Result<floe::KeyRange, Error> {
        Ok(match &self.prefix {
            Some(p) => floe::KeyRange::prefix(&key_arg("--prefix", p, self.hex)?),
            None => floe::KeyRange::between(
                self.from.as_deref().map(|f| key_arg("--from", f, self.hex)).transpose()?,
                self.to.as_deref().map(|t| key_arg("--to", t, self.hex)).transpose()?,
            ),
        })
    }
}

/// A key argument: its UTF-8 bytes, or decoded hex with `--hex`.
fn key_arg(what: &str, s: &str, hex: bool) -> Result<Vec<u8>, Error> {
    if !hex {
        return Ok(s.as_bytes().to_vec());
    }
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "{what} '{}' is not hex ({why}); with --hex every key argument is hex digits, two per byte (e.g. 6b31 for \
             \"k1\")",
            escape(s)
        ))
    };
    if !s.len().is_multiple_of(2) {
        return Err(bad("odd number of digits"));
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p).ok().and_then(|d| u8::from_str_radix(d, 16).ok()).ok_or_else(|| bad("bad digit"))
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    let mut v = Vec::with_capacity(b.len() * 2);
    push_hex(&mut v, b);
    String::from_utf8_lossy(&v).into_owned()
}

/// The two lower-case hex digits of every byte.
const HEX: [[u8; 2]; 256] = {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [D[i >> 4], D[i & 15]];
        i += 1;
    }
    t
};

fn push_hex(out: &mut Vec<u8>, b: &[u8]) {
    let start = out.len();
    out.resize(start + b.len() * 2, 0);
    if let Some(dst) = out.get_mut(start..) {
        for (d, &x) in dst.chunks_exact_mut(2).zip(b) {
            d.copy_from_slice(&HEX[usize::from(x)]);
        }
    }
}

fn stdout_err(e: std::io::Error) -> Error {
    Error::io("writing to standard output", e)
}

/// `floe get`: the exit code (0 found, [`super::exit::NOT_FOUND`] absent).
pub fn get(a: GetArgs, json: bool) -> Result<u8, Error> {
    let key = key_arg("KEY", &a.key, a.hex)?;
    let archive = floe::store::open_archive(&a.archive)?;
    let value = archive.get(&a.keyspace, &key)?;
    match (value, json) {
        (Some(v), false) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&v).and_then(|()| out.flush()).map_err(stdout_err)?;
        }
        (Some(v), true) => {
            let mut doc = serde_json::json!({
                "command": "get", "found": true, "keyspace": a.keyspace, "key_hex": hex(&key), "value_hex": hex(&v),
            });
            if let Ok(s) = std::str::from_utf8(&v) {
                doc["value"] = s.into();
            }
            emit(&ok_doc(doc))?;
        }
        (None, _) => {
            if json {
                emit(&ok_doc(serde_json::json!({
                    "command": "get", "found": false, "keyspace": a.keyspace, "key_hex": hex(&key),
                })))?;
            }
            let shown = if a.hex { a.key.clone() } else { format!("'{}'", escape(&a.key)) };
            let line = format!("floe: not found: key {shown} in keyspace '{}' of {}", a.keyspace, a.archive);
            // Nowhere left to report a failed write to standard error.
            let _ = std::io::stderr().lock().write_all(format!("{}\n", escape(&line)).as_bytes());
            return Ok(super::exit::NOT_FOUND);
        }
    }
    Ok(0)
}

/// `floe cat`: streams the selected records to standard output.
pub fn cat(a: CatArgs) -> Result<(), Error> {
    let range = a.range.key_range()?;
    let archive = floe::store::open_archive(&a.archive)?;
    let mut chosen = Vec::new();
    for name in &a.keyspaces {
        chosen.push(archive.keyspace_named(name)?);
    }
    let from = range.from.as_ref().map(Vec::as_slice);
    let to = range.to.as_ref().map(Vec::as_slice);
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut line = Vec::new();
    for (k, entry) in archive.keyspaces().iter().enumerate() {
        if !chosen.is_empty() && !chosen.contains(&k) {
            continue;
        }
        // The keyspace's name, rendered once.
        let name = match a.format {
            CatFormat::Jsonl => serde_json::to_string(&entry.name)
                .map_err(|e| Error::Internal(format!("cannot render a keyspace name as JSON: {e}")))?,
            CatFormat::Tsv => escape(&entry.name).into_owned(),
        };
        let mut r = floe::RangeCursor::new(&archive, k, from, to)?;
        while let Some(rec) = r.next()? {
            line.clear();
            match a.format {
                CatFormat::Jsonl => jsonl(&mut line, &name, rec.key, rec.value)?,
                CatFormat::Tsv => {
                    line.extend_from_slice(name.as_bytes());
                    line.push(b'\t');
                    push_hex(&mut line, rec.key);
                    line.push(b'\t');
                    push_hex(&mut line, rec.value);
                    line.push(b'\n');
                }
            }
            out.write_all(&line).map_err(stdout_err)?;
        }
    }
    out.flush().map_err(stdout_err)
}

/// One jsonl record: `{"keyspace","key_hex","value_hex"}` plus `key` and
/// `value` when they are valid UTF-8.
fn jsonl(line: &mut Vec<u8>, name_json: &str, key: &[u8], value: &[u8]) -> Result<(), Error> {
    line.extend_from_slice(b"{\"keyspace\":");
    line.extend_from_slice(name_json.as_bytes());
    line.extend_from_slice(b",\"key_hex\":\"");
    push_hex(line, key);
    line.extend_from_slice(b"\",\"value_hex\":\"");
    push_hex(line, value);
    line.push(b'"');
    for (field, b) in [(&b",\"key\":"[..], key), (b",\"value\":", value)] {
        if let Ok(s) = std::str::from_utf8(b) {
            line.extend_from_slice(field);
            serde_json::to_writer(&mut *line, s)
                .map_err(|e| Error::Internal(format!("cannot render a record as JSON: {e}")))?;
        }
    }
    line.extend_from_slice(b"}\n");
    Ok(())
}
