//! Tracing setup, in one place: human-readable or JSON lines on stderr, in a file, or both.

use std::fs::File;
use std::sync::Arc;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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

/// Where log lines go, and from which level.
#[derive(Debug)]
pub struct Logs {
    pub format: LogFormat,
    /// The level when `RUST_LOG` is not set, e.g. `info` or `warn`.
    pub default_level: &'static str,
    /// Lines on stderr, written this way; `None`: not on stderr.
    pub stderr: Option<LogWriter>,
    /// Lines also appended to this file, never coloured.
    pub file: Option<File>,
}

/// Whether the user asked for a log level with `RUST_LOG`.
pub fn level_asked() -> bool {
    std::env::var_os(EnvFilter::DEFAULT_ENV).is_some_and(|value| !value.is_empty())
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber. `RUST_LOG` overrides the default level. With
/// [`LogWriter::Background`], keep the guard until the process ends: dropping it writes
/// what is still queued.
pub fn init(logs: Logs) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(logs.default_level));
    let mut layers: Vec<BoxedLayer> = Vec::new();
    let mut guard = None;
    if let Some(writer) = logs.stderr {
        // Colours at a terminal, unless NO_COLOR (https://no-color.org) is set.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
        let make_writer = match writer {
            LogWriter::Direct => BoxMakeWriter::new(std::io::stderr),
            LogWriter::Background => {
                let (writer, worker) =
                    NonBlockingBuilder::default().lossy(false).thread_name("pgflip-log").finish(std::io::stderr());
                guard = Some(worker);
                BoxMakeWriter::new(writer)
            }
        };
        layers.push(layer(logs.format, make_writer, ansi));
    }
    if let Some(file) = logs.file {
        layers.push(layer(logs.format, BoxMakeWriter::new(Arc::new(file)), false));
    }
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layers.with_filter(filter)).try_init();
    guard
}

fn layer(format: LogFormat, writer: BoxMakeWriter, ansi: bool) -> BoxedLayer {
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi);
    match format {
        LogFormat::Pretty => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    }
}
