//! Log output of the CLI: the library reports through `tracing`; this
//! decides what reaches stderr and how it looks.

use floe::text::escape;
use std::io::{IsTerminal, Write};
use tracing_subscriber::fmt::FormatFields;

/// A line on stderr, control characters escaped; a failed write is ignored.
fn say(line: &str) {
    let _ = std::io::stderr().lock().write_all(format!("{}\n", escape(line)).as_bytes());
}

/// The progress bar being drawn, if any: log lines are printed above it.
static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Registers the bar being drawn (`None`: no bar any more).
pub fn show_bar(bar: Option<&indicatif::ProgressBar>) {
    if let Ok(mut b) = BAR.lock() {
        *b = bar.filter(|b| !b.is_hidden()).cloned();
    }
}

/// On a terminal, erases the line the cursor is on (another process's bar
/// drawn there, `export -o - | import -`), so that the next line printed
/// replaces it and that process's next draw goes below.
pub fn clear_line() {
    if std::io::stderr().is_terminal() {
        let _ = std::io::stderr().lock().write_all(b"\r\x1b[2K");
    }
}

/// One log event, written to stderr when dropped: with this process's bar
/// suspended (cleared, then redrawn below the line), or on a terminal
/// without one over a line another process's bar may be on.
struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        let put = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        match bar {
            Some(b) => b.suspend(put),
            None => {
                clear_line();
                put();
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `floe: warning: ...` lines; fields as key=value.
    Text,
    /// One JSON object per line (timestamp, level, fields, message).
    Json,
}

/// Logging: the library reports through `tracing`; the CLI prints warnings by
/// default, more with -v, and whatever `RUST_LOG` selects when it is set.
pub fn init(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(v).unwrap_or_else(|e| {
            say(&format!("floe: warning: RUST_LOG is not a valid filter ({e}); using {level}"));
            EnvFilter::new(level)
        }),
        _ => EnvFilter::new(format!("{level},floe={level}")),
    };
    let b = tracing_subscriber::fmt().with_writer(|| LogLine(Vec::new())).with_env_filter(filter);
    let r = match format {
        LogFormat::Json => b.json().with_current_span(false).try_init(),
        LogFormat::Text => b
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(verbose >= 2)
            .without_time()
            .event_format(LineFormat)
            .try_init(),
    };
    if let Err(e) = r {
        say(&format!("floe: warning: cannot set up logging: {e}"));
    }
}

/// `floe: warning: message key=value ...` (the style of floe's other
/// messages), with control characters of every part escaped.
pub struct LineFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LineFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        let mut fields = String::new();
        ctx.format_fields(tracing_subscriber::fmt::format::Writer::new(&mut fields), event)?;
        writeln!(w, "floe: {level}: {}", escape(&fields))
    }
}
