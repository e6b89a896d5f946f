//! What the application saw during the demo, as a summary for people and as JSON
//! (`--report FILE.json`).

use std::time::Duration;

use serde::Serialize;

use super::workload::Op;

#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: String,
    pub ok: bool,
    /// The PostgreSQL version blue ran (`15.14`), from `postgres --version`.
    pub blue_version: String,
    /// The PostgreSQL version green ran: its own installation's with `--green-pg-bin`.
    pub green_version: String,
    /// Why the run did not finish, when it did not.
    pub failure: Option<String>,
    /// Journals whose COMMIT the writers saw acknowledged.
    pub committed_writes: usize,
    /// Acknowledged journals missing (or incomplete) on the database serving at the end,
    /// looked up one by one.
    pub lost_writes: usize,
    /// The first lost journal ids.
    pub lost_keys: Vec<i64>,
    pub reads: usize,
    /// Reads of the dashboard readers, on the sidecars' standby listener.
    pub standby_reads: usize,
    /// The databases the first dashboard reader was answered by, in order: the standby
    /// while one replicates, the serving one otherwise (before the catch-up, after promote).
    pub standby_served_by: Vec<String>,
    /// Errors the clients saw (each ends its client: no retries, no reconnects).
    pub client_errors: usize,
    pub client_error_messages: Vec<String>,
    /// The longest any operation waited during any flip, in ms.
    pub max_stall_ms: f64,
    /// The longest write pause of any flip, in ms.
    pub write_pause_ms: u64,
    pub flips: Vec<Flip>,
    /// How long each validation held the application to take its consistent point, in ms.
    pub validation_pauses_ms: Vec<u64>,
    pub phases: Vec<PhaseTime>,
    /// The upstream every sidecar served at the end ("mixed" when they disagree).
    pub final_active: String,
    pub seconds: f64,
    /// The detailed log, kept when the demo did not pass.
    pub log: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Flip {
    pub to: String,
    pub write_pause_ms: u64,
    /// The longest any operation waited while this flip ran, in ms.
    pub max_stall_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    pub name: String,
    pub seconds: f64,
}

/// The longest of `ops` that overlapped `window` (times since the load's epoch), in ms.
pub fn max_stall<'a>(ops: impl IntoIterator<Item = &'a Op>, window: (Duration, Duration)) -> f64 {
    ops.into_iter()
        .filter(|op| op.started <= window.1 && op.started + op.latency >= window.0)
        .map(|op| op.latency.as_secs_f64() * 1e3)
        .fold(0.0, f64::max)
}

impl Report {
    /// The summary printed at the end.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("\n== pgflip demo ({} seed): {} ==\n", self.seed, if self.ok { "OK" } else { "FAILED" }));
        if let Some(failure) = &self.failure {
            out.push_str(&format!("failure:          {failure}\n"));
        }
        out.push_str(&format!(
            "versions:         blue PostgreSQL {}, green PostgreSQL {}\n",
            self.blue_version, self.green_version
        ));
        out.push_str(&format!("committed writes: {} journals (and {} reads)\n", self.committed_writes, self.reads));
        out.push_str(&format!("lost writes:      {}", self.lost_writes));
        if !self.lost_keys.is_empty() {
            out.push_str(&format!(" (journal ids {:?})", self.lost_keys));
        }
        out.push_str(&format!("\nclient errors:    {}\n", self.client_errors));
        if self.standby_reads > 0 {
            out.push_str(&format!(
                "standby reads:    {} (dashboard readers), answered by {}\n",
                self.standby_reads,
                self.standby_served_by.join(" -> ")
            ));
        }
        for message in &self.client_error_messages {
            out.push_str(&format!("  {message}\n"));
        }
        for flip in &self.flips {
            out.push_str(&format!(
                "flip to {:<6}    write pause {} ms, longest client wait {:.0} ms\n",
                flip.to, flip.write_pause_ms, flip.max_stall_ms
            ));
        }
        for pause in &self.validation_pauses_ms {
            out.push_str(&format!("validation point  fleet paused {pause} ms\n"));
        }
        out.push_str(&format!("final active:     {}\n", self.final_active));
        out.push_str("phases:          ");
        for phase in &self.phases {
            out.push_str(&format!(" {} {:.1}s", phase.name, phase.seconds));
        }
        out.push_str(&format!("\ntotal:            {:.1} s\n", self.seconds));
        if let Some(log) = &self.log {
            out.push_str(&format!("log (kept):       {log}\n"));
        }
        out
    }
}
