//! End-to-end comparison on one machine: `pgbench -S` straight to PostgreSQL, through
//! PgBouncer (session mode) and through `pgflip proxy`, in interleaved rounds.
//!
//! Run with `cargo bench --bench e2e`. `PGFLIP_BENCH_SECS` (default 10) sets the length
//! of each pgbench run and `PGFLIP_BENCH_ROUNDS` (default 3) the number of rounds. A target
//! that fails to start or to serve is reported and makes the run exit non-zero.

#[path = "common/mod.rs"]
mod common;
#[path = "e2e/pgbench.rs"]
mod pgbench;
#[path = "e2e/pgbouncer.rs"]
mod pgbouncer;
#[path = "e2e/report.rs"]
mod report;
#[path = "../tests/support/mod.rs"]
mod support;

use pgbench::{Load, QueryMode};
use pgbouncer::PgBouncer;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use support::{psql, Cluster, ClusterOptions, Proxy, ProxyBuilder};

/// pgbench scale factor: 1 million accounts, about 150 MB, held in shared buffers.
const SCALE: u32 = 10;
/// Clients and threads of the throughput runs.
const CLIENTS: u32 = 8;
const THREADS: u32 = 2;
/// PgBouncer's server pool; at least the client count so nobody queues for a connection.
const POOL_SIZE: u32 = 20;
/// Length of the warm-up run that also checks each target serves queries.
const WARM_UP_SECS: u64 = 2;

/// Index of each target in [`Targets`]; also the column order of the report.
pub const DIRECT: usize = 0;
pub const PGBOUNCER: usize = 1;
pub const PGFLIP: usize = 2;

/// A place pgbench connects to, or why it cannot.
pub struct Target {
    pub name: &'static str,
    pub port: Option<u16>,
    /// Log of the server or proxy listening on `port`, quoted when a run against it fails.
    pub log: Option<PathBuf>,
    pub failure: Option<String>,
}

impl Target {
    /// A target from its start-up outcome: its port and log, or why it did not start.
    fn new(name: &'static str, started: Result<(u16, PathBuf), &String>) -> Target {
        match started {
            Ok((port, log)) => Target { name, port: Some(port), log: Some(log), failure: None },
            Err(reason) => Target { name, port: None, log: None, failure: Some(reason.clone()) },
        }
    }
}

pub type Targets = [Target; 3];

/// One throughput run's result.
pub struct Sample {
    pub round: usize,
    pub mode: QueryMode,
    pub target: usize,
    pub tps: f64,
}

/// Run length and round count, from the environment.
pub struct Settings {
    pub secs: u64,
    pub rounds: usize,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let secs = common::positive_var("PGFLIP_BENCH_SECS", 10)?;
        let rounds = common::positive_var("PGFLIP_BENCH_ROUNDS", 3)?;
        Ok(Settings { secs, rounds: rounds as usize })
    }
}

fn main() -> ExitCode {
    if !common::measuring("e2e") {
        return ExitCode::SUCCESS;
    }
    common::exit("e2e", run())
}

/// Runs everything; `Ok(false)` when a target failed but the others were measured.
fn run() -> Result<bool, String> {
    let settings = Settings::from_env()?;
    if !std::path::Path::new(pgbouncer::PGBOUNCER_BIN).exists() {
        return Err(format!(
            "PgBouncer not found at {}: install it with `apt-get install pgbouncer`",
            pgbouncer::PGBOUNCER_BIN
        ));
    }
    report::print_machine(&pgbouncer::version());

    // Declared in this order so that the proxies stop before the cluster does.
    let cluster = caught(|| Cluster::start_with(ClusterOptions::default().conf("shared_buffers = 256MB")))?;
    println!("loading: pgbench -i -s {SCALE} ...");
    pgbench::initialize(cluster.port(), SCALE)?;
    let bouncer = PgBouncer::start(cluster.port(), POOL_SIZE);
    let proxy = start_pgflip(cluster.port());

    let mut targets: Targets = [
        Target::new("direct", Ok((cluster.port(), cluster.dir().join("server.log")))),
        Target::new("PgBouncer", bouncer.as_ref().map(|b| (b.port(), b.log_path()))),
        Target::new("pgflip", proxy.as_ref().map(|p| (p.port(), p.log_path()))),
    ];
    report::print_configs(bouncer.as_ref().ok().map(PgBouncer::ini), proxy.as_ref().ok().map(Proxy::pid));
    report::print_failures(&targets);

    let load = |mode, clients, threads, secs| Load { mode, clients, threads, secs };
    println!("\nwarm-up: {WARM_UP_SECS} s per target, -M simple -c {CLIENTS} -j {THREADS}");
    for target in targets.iter_mut() {
        measure(target, &load(QueryMode::Simple, CLIENTS, THREADS, WARM_UP_SECS));
    }

    println!(
        "\nthroughput: {} rounds x {} s per mode and target, -c {CLIENTS} -j {THREADS}, order rotated each round",
        settings.rounds, settings.secs
    );
    let mut samples = Vec::new();
    for round in 0..settings.rounds {
        for mode in QueryMode::ALL {
            for target in rotated(round) {
                let figures = measure(&mut targets[target], &load(mode, CLIENTS, THREADS, settings.secs));
                if let Some(figures) = figures {
                    samples.push(Sample { round, mode, target, tps: figures.tps });
                }
            }
        }
    }

    println!("\n1-client latency: -M simple -c 1 -j 1, {} s per target", settings.secs);
    let mut latency = [None; 3];
    for target in rotated(settings.rounds) {
        latency[target] =
            measure(&mut targets[target], &load(QueryMode::Simple, 1, 1, settings.secs)).map(|f| f.latency_ms);
    }

    report::print_raw(&targets, &samples, settings.rounds);
    report::print_throughput(&targets, &samples, &settings);
    report::print_latency(&targets, &latency);
    report::print_failures(&targets);
    Ok(targets.iter().all(|target| target.failure.is_none()))
}

/// Target indices in the order of `round`: each round starts one target later.
fn rotated(round: usize) -> impl Iterator<Item = usize> {
    (0..3).map(move |i| (round + i) % 3)
}

/// Runs one pgbench against `target` unless it already failed; a failure is recorded on it.
fn measure(target: &mut Target, load: &Load) -> Option<pgbench::Figures> {
    let port = target.port.filter(|_| target.failure.is_none())?;
    match pgbench::select_only(port, load) {
        Ok(figures) => {
            println!(
                "  {:<9} {:<8} -c {:<2} {:>10.1} tps {:>8.3} ms",
                target.name,
                load.mode.as_str(),
                load.clients,
                figures.tps,
                figures.latency_ms
            );
            Some(figures)
        }
        Err(reason) => {
            println!("  {:<9} {:<8} -c {:<2} FAILED", target.name, load.mode.as_str(), load.clients);
            let args = pgbench::select_only_args(port, load).join(" ");
            let mut failure = format!("pgbench {args}: {reason}");
            if let Some(log) = &target.log {
                failure.push_str(&format!("\n{}:\n{}", log.display(), support::tail_file(log, 30)));
            }
            target.failure = Some(failure);
            None
        }
    }
}

/// Starts pgflip in front of the cluster and checks a `SELECT 1` passes through it.
fn start_pgflip(pg_port: u16) -> Result<Proxy, String> {
    let url = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres?sslmode=disable");
    let builder = ProxyBuilder::default().upstream("blue", &url).active("blue");
    let proxy = caught(|| builder.spawn()).map_err(|e| format!("starting {}: {e}", env!("CARGO_BIN_EXE_pgflip")))?;
    let answer = caught(|| psql(&proxy.conninfo("postgres", "postgres"), "SELECT 1"))?;
    if !answer.success() || answer.stdout.trim() != "1" {
        return Err(format!(
            "SELECT 1 through pgflip failed: {}\npgflip output:\n{}",
            answer.stderr.trim(),
            support::tail_file(&proxy.log_path(), 30)
        ));
    }
    Ok(proxy)
}

/// Runs `f`, turning a panic of the shared test support into an error message. The
/// message is reported by the caller, so the panic hook stays quiet meanwhile.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())
    })
}
