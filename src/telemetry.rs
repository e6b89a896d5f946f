//! Tracing setup, in one place: human-readable or JSON lines on stderr.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// How log lines reach stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogWriter {
    /// Written by the thread that logs (commands that end on their own).
    Direct,
    /// Handed to a thread of their own, so that a slow stderr (a file whose writes wait
    /// for the disk, a pipe to a busy log collector) never holds up the thread that logs:
    /// for the proxy, whose worker threads serve many sessions each. Lines are never
    /// dropped; a logging thread waits only when 128,000 lines are queued.
    Background,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level `info`. With
/// [`LogWriter::Background`], keep the guard until the process ends: dropping it writes
/// what is still queued.
pub fn init(format: LogFormat, writer: LogWriter) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (make_writer, guard) = match writer {
        LogWriter::Direct => (tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr), None),
        LogWriter::Background => {
            let (writer, guard) =
                NonBlockingBuilder::default().lossy(false).thread_name("pgflip-log").finish(std::io::stderr());
            (tracing_subscriber::fmt::writer::BoxMakeWriter::new(writer), Some(guard))
        }
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(make_writer).with_ansi(ansi);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}
