//! The controller's progress lines: what a person running `pgflip cutover` reads (each
//! phase as it starts and ends, the preflight report, the write pause, the validation's
//! checks), apart from the log.

use std::fmt::Display;
use std::io::{IsTerminal, Write};

/// Where progress lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// On stdout: `pgflip cutover`.
    Stdout,
    /// Into the log at info (target `pgflip::progress`): when something else tells the
    /// story, as `pgflip demo` does.
    Log,
}

impl Progress {
    /// One line (or a block of lines) of progress.
    pub fn line(self, text: impl Display) {
        match self {
            Progress::Stdout => println!("{text}"),
            Progress::Log => tracing::info!(target: "pgflip::progress", "{text}"),
        }
    }

    /// A line that replaces itself as it changes, on a terminal only; `false` when there is
    /// none to draw it on (the caller logs now and then instead).
    pub fn live(self, text: impl Display) -> bool {
        if !self.is_live() {
            return false;
        }
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r{text}   ");
        let _ = out.flush();
        true
    }

    /// Ends a live line, if one was drawn.
    pub fn end_live(self) {
        if self.is_live() {
            println!();
        }
    }

    fn is_live(self) -> bool {
        self == Progress::Stdout && std::io::stdout().is_terminal()
    }
}
