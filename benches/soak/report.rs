//! The soak's report: the settings, a line a minute, and at the end the load, the
//! switches, the faults, the errors by kind, the ledger check and the sidecar's footprint.

use crate::faults::Fault;
use crate::ledger::LedgerCheck;
use crate::load::{ClientError, ClientLog};
use crate::process::{self, Sample};
use crate::switches::SwitchCall;
use crate::Settings;
use std::collections::BTreeMap;
use std::time::Duration;

/// Memory the sidecar may hold at the end beyond what it held at the start: what its
/// allocator keeps after the busiest moment (a switch doubles the connections).
const RSS_SLACK_KIB: u64 = 8 * 1024;
/// Descriptors beyond the start's: a client in the middle of connecting again.
const FD_SLACK: usize = 2;

pub fn print_settings(settings: &Settings) {
    println!("pgflip soak");
    crate::common::print_machine();
    println!(
        "settings:   {} s of load, {} sessions, a switch every {} ms, a fault halfway between",
        settings.duration.as_secs(),
        settings.clients,
        settings.switch_every.as_millis()
    );
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn clock(at: Duration) -> String {
    format!("{}:{:02}", at.as_secs() / 60, at.as_secs() % 60)
}

pub fn print_progress(at: Duration, commits: u64, calls: &[SwitchCall], faults: &[Fault], last: Option<&Sample>) {
    let done = calls.iter().filter(|call| call.problem().is_none()).count();
    let (rss, fds) = last.map_or(("?".into(), "?".into()), |s| (mib(s.rss_kib), s.fds.to_string()));
    println!(
        "{:>6}  commits {commits:>8}  switches {done}/{}  faults {}  pgflip rss {rss}  fds {fds}",
        clock(at),
        calls.len(),
        faults.len()
    );
}

/// Everything the report is made of.
pub struct Outcome<'a> {
    pub settings: &'a Settings,
    pub load_secs: f64,
    pub logs: &'a [ClientLog],
    pub calls: &'a [SwitchCall],
    pub faults: &'a [Fault],
    pub ledger: &'a LedgerCheck,
    pub samples: &'a [Sample],
}

impl Outcome<'_> {
    /// Prints the report; true when nothing failed.
    pub fn print(&self) -> bool {
        self.print_load();
        let switches_clean = self.print_switches();
        let faults_clean = self.print_faults();
        let errors_clean = self.print_errors();
        let ledger_clean = self.print_ledger();
        let footprint_flat = self.print_footprint();
        let clean = switches_clean && faults_clean && errors_clean && ledger_clean && footprint_flat;
        println!("\nverdict: {}", if clean { "clean" } else { "FAILED" });
        clean
    }

    fn print_load(&self) {
        let commits: usize = self.logs.iter().map(|log| log.acked.len()).sum();
        let reconnects: u64 = self.logs.iter().map(|log| log.reconnects).sum();
        println!("\n== load");
        println!(
            "{} sessions for {:.0} s: {commits} commits acknowledged ({:.0}/s), {reconnects} reconnections",
            self.settings.clients,
            self.load_secs,
            commits as f64 / self.load_secs
        );
    }

    fn print_switches(&self) -> bool {
        let done: Vec<_> = self.calls.iter().filter(|call| call.problem().is_none()).collect();
        let mut held: Vec<u64> = done.iter().filter_map(|call| call.outcome.as_ref().ok()?.held_ms).collect();
        held.sort_unstable();
        let moved: usize = done.iter().filter_map(|call| Some(call.outcome.as_ref().ok()?.moved)).sum();
        println!("\n== switches");
        println!("{} of {} done, {moved} session moves", done.len(), self.calls.len());
        if let (Some(median), Some(max)) = (held.get(held.len() / 2), held.last()) {
            println!("clients held: median {median} ms, longest {max} ms");
        }
        for call in self.calls.iter().filter(|call| call.problem().is_some()) {
            println!("  FAILED at {} to {}: {}", clock(call.sent), call.to, call.problem().unwrap_or_default());
        }
        done.len() == self.calls.len()
    }

    fn print_faults(&self) -> bool {
        let mut by_kind: BTreeMap<_, (usize, Vec<&str>)> = BTreeMap::new();
        for fault in self.faults {
            let entry = by_kind.entry(fault.kind).or_default();
            match &fault.outcome {
                Ok(_) => entry.0 += 1,
                Err(why) => entry.1.push(why),
            }
        }
        println!("\n== faults");
        for (kind, (done, failed)) in &by_kind {
            let example = self.faults.iter().find(|f| f.kind == *kind).and_then(|f| f.outcome.as_ref().ok());
            println!("{:<28} {done:>4}  (e.g. {})", kind.name(), example.map_or("-", String::as_str));
            for why in failed {
                println!("  FAILED: {why}");
            }
        }
        by_kind.values().all(|(_, failed)| failed.is_empty())
    }

    fn explanation(&self, error: &ClientError) -> Option<&'static str> {
        // The latest fault that could have done it: a restart's aftermath can reach into
        // the next fault's time.
        self.faults.iter().rev().find(|fault| fault.explains(&error.kind, error.at)).map(|fault| fault.kind.name())
    }

    fn print_errors(&self) -> bool {
        let mut by_kind: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let mut unexplained = Vec::new();
        for error in self.logs.iter().flat_map(|log| &log.errors) {
            let cause = self.explanation(error);
            *by_kind.entry((error.kind.as_str(), cause.unwrap_or("UNEXPLAINED"))).or_default() += 1;
            if cause.is_none() {
                unexplained.push(error);
            }
        }
        println!("\n== errors the load's clients saw");
        if by_kind.is_empty() {
            println!("none");
        }
        for ((kind, cause), count) in &by_kind {
            println!("{count:>6}  {kind:<20} {cause}");
        }
        for error in unexplained.iter().take(10) {
            println!("  at {} client {}: {}", clock(error.at), error.client, error.message);
        }
        unexplained.is_empty()
    }

    fn print_ledger(&self) -> bool {
        let l = self.ledger;
        println!("\n== commits");
        println!("ledger rows: blue {}, green {}", l.rows[0], l.rows[1]);
        println!(
            "lost {}, on both sides {}, unexpected {}; in doubt {} (of which committed {})",
            l.lost.len(),
            l.twice.len(),
            l.unexpected.len(),
            l.in_doubt,
            l.in_doubt_committed
        );
        println!(
            "torn transactions: {}; rows of abandoned transactions kept: {}; rogue clients' backends left: {}",
            if l.torn.is_empty() { "none".to_string() } else { l.torn.join("; ") },
            l.abandoned_rows,
            l.rogue_backends
        );
        for (client, seq) in l.lost.iter().take(10) {
            println!("  LOST: client {client} seq {seq}");
        }
        l.clean()
    }

    fn print_footprint(&self) -> bool {
        let (Some(start), Some(end)) = (self.samples.first(), self.samples.last()) else {
            println!("\nno samples of pgflip");
            return false;
        };
        let max_rss = self.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let max_fds = self.samples.iter().map(|s| s.fds).max().unwrap_or(0);
        println!("\n== pgflip");
        println!(
            "rss: start {}, end {}, highest {} ({} samples)",
            mib(start.rss_kib),
            mib(end.rss_kib),
            mib(max_rss),
            self.samples.len()
        );
        println!("open file descriptors: start {}, end {}, highest {}", start.fds, end.fds, max_fds);
        let flat = process::flat(start, end, RSS_SLACK_KIB, FD_SLACK);
        println!(
            "{}",
            if flat {
                "flat: back where it started".to_string()
            } else {
                format!("NOT FLAT: more than {} or {FD_SLACK} descriptors above the start", mib(RSS_SLACK_KIB))
            }
        );
        flat
    }
}
