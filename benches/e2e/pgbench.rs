//! pgbench runs against one target, bounded in time, and the figures read from their
//! summary: TPS (without initial connection time) and average latency.

use crate::support::{clients::run_with_timeout, pg_bin, PgbenchSummary};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Extra time a run may take beyond its `-T`, for connecting and the final report.
const RUN_GRACE: Duration = Duration::from_secs(60);

/// pgbench's `-M` query mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryMode {
    Simple,
    Prepared,
}

impl QueryMode {
    pub const ALL: [QueryMode; 2] = [QueryMode::Simple, QueryMode::Prepared];

    pub fn as_str(self) -> &'static str {
        match self {
            QueryMode::Simple => "simple",
            QueryMode::Prepared => "prepared",
        }
    }
}

/// The shape of one select-only run.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub mode: QueryMode,
    pub clients: u32,
    pub threads: u32,
    pub secs: u64,
}

/// What one successful run reported.
#[derive(Clone, Copy, Debug)]
pub struct Figures {
    pub tps: f64,
    pub latency_ms: f64,
}

/// Where a target listens: libpq's host (an address, or a socket's directory) and port.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// TCP on 127.0.0.1:`port`.
    pub fn tcp(port: u16) -> Endpoint {
        Endpoint { host: "127.0.0.1".into(), port }
    }

    /// The Unix-domain socket `dir/.s.PGSQL.port`.
    pub fn unix(dir: &Path, port: u16) -> Endpoint {
        Endpoint { host: dir.display().to_string(), port }
    }

    /// pgbench's connection flags.
    fn flags(&self) -> Vec<String> {
        ["-h", &self.host, "-p", &self.port.to_string(), "-U", "postgres"].map(String::from).to_vec()
    }
}

/// `pgbench -i -s <scale>` directly against the cluster at `endpoint`.
pub fn initialize(endpoint: &Endpoint, scale: u32) -> Result<(), String> {
    let mut args = vec!["-i".to_string(), "-q".into(), "-s".into(), scale.to_string()];
    args.extend(endpoint.flags());
    args.push("postgres".into());
    let out = run(&args, Duration::from_secs(600))?;
    if !out.success() {
        return Err(format!("pgbench -i failed ({}):\n{}", out.status, out.stderr.trim_end()));
    }
    Ok(())
}

/// The pgbench arguments of a select-only run against `endpoint` (for printing too).
pub fn select_only_args(endpoint: &Endpoint, load: &Load) -> Vec<String> {
    let mut args = ["-n", "-S", "-M", load.mode.as_str()].map(String::from).to_vec();
    args.extend(["-c".into(), load.clients.to_string(), "-j".into(), load.threads.to_string()]);
    args.extend(["-T".into(), load.secs.to_string()]);
    args.extend(endpoint.flags());
    args.push("postgres".into());
    args
}

/// Runs `pgbench -n -S` against `endpoint`; an error says what went wrong, with pgbench's output.
pub fn select_only(endpoint: &Endpoint, load: &Load) -> Result<Figures, String> {
    let out = run(&select_only_args(endpoint, load), Duration::from_secs(load.secs) + RUN_GRACE)?;
    let detail = || format!("stdout:\n{}\nstderr:\n{}", out.stdout.trim_end(), tail(&out.stderr, 20));
    if !out.success() {
        return Err(format!("pgbench exited with {}\n{}", out.status, detail()));
    }
    match PgbenchSummary::parse(&out.stdout) {
        Some(summary) if summary.failed > 0 => {
            return Err(format!("{} failed transactions\n{}", summary.failed, detail()));
        }
        Some(summary) if summary.processed == 0 => return Err(format!("no transaction processed\n{}", detail())),
        Some(_) => {}
        None => return Err(format!("no pgbench summary\n{}", detail())),
    }
    match (parse_tps(&out.stdout), parse_latency_ms(&out.stdout)) {
        (Some(tps), Some(latency_ms)) => Ok(Figures { tps, latency_ms }),
        _ => Err(format!("no tps or latency line\n{}", detail())),
    }
}

fn run(args: &[String], timeout: Duration) -> Result<crate::support::CmdOutput, String> {
    let mut cmd = Command::new(pg_bin().join("pgbench"));
    cmd.args(args);
    crate::caught(|| run_with_timeout(&mut cmd, None, timeout))
}

/// `tps = 1234.5 (without initial connection time)`; before PostgreSQL 14 the line said
/// `(excluding connections establishing)`.
fn parse_tps(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("tps = "))
        .find(|rest| rest.contains("without initial connection time") || rest.contains("excluding connections"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// `latency average = 0.123 ms`.
fn parse_latency_ms(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("latency average = "))
        .find_map(|rest| rest.strip_suffix(" ms")?.trim().parse().ok())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
