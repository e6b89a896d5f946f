//! End-to-end comparison on one machine: `pgbench -S` straight to PostgreSQL, through
//! PgBouncer (session mode) and through `pgflip proxy`, each over TCP and over its
//! Unix-domain socket, in interleaved rounds.
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

use common::caught;
use pgbench::{Endpoint, Load, QueryMode};
use pgbouncer::PgBouncer;
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

/// What pgbench talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Direct,
    PgBouncer,
    Pgflip,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Direct, Kind::PgBouncer, Kind::Pgflip];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::PgBouncer => "PgBouncer",
            Kind::Pgflip => "pgflip",
        }
    }
}

/// How pgbench reaches it. The proxies reach PostgreSQL over TCP either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP on 127.0.0.1.
    Tcp,
    /// The target's Unix-domain socket (`-h DIR`).
    Unix,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Unix];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

/// A place pgbench connects to, or why it cannot.
pub struct Target {
    pub kind: Kind,
    pub transport: Transport,
    pub endpoint: Option<Endpoint>,
    /// Log of the server or proxy listening there, quoted when a run against it fails.
    pub log: Option<PathBuf>,
    pub failure: Option<String>,
}

impl Target {
    /// A target from its start-up outcome: where it listens and its log, or why it did not start.
    fn new(kind: Kind, transport: Transport, started: Result<(Endpoint, PathBuf), &String>) -> Target {
        match started {
            Ok((endpoint, log)) => Target { kind, transport, endpoint: Some(endpoint), log: Some(log), failure: None },
            Err(reason) => Target { kind, transport, endpoint: None, log: None, failure: Some(reason.clone()) },
        }
    }

    /// `pgflip/unix`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.transport.as_str())
    }
}

/// Every kind over every transport, TCP first.
pub type Targets = Vec<Target>;

/// The index of `kind` over `transport` in [`Targets`].
pub fn index(kind: Kind, transport: Transport) -> usize {
    let t = Transport::ALL.iter().position(|&x| x == transport).expect("a transport");
    let k = Kind::ALL.iter().position(|&x| x == kind).expect("a kind");
    t * Kind::ALL.len() + k
}

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
    pgbench::initialize(&Endpoint::tcp(cluster.port()), SCALE)?;
    let bouncer = PgBouncer::start(cluster.port(), POOL_SIZE);
    let proxy = start_pgflip(cluster.port());

    let server_log = cluster.dir().join("server.log");
    let mut targets: Targets = Vec::new();
    for transport in Transport::ALL {
        let at = |port: u16, dir: &std::path::Path| match transport {
            Transport::Tcp => Endpoint::tcp(port),
            Transport::Unix => Endpoint::unix(dir, port),
        };
        targets.push(Target::new(Kind::Direct, transport, Ok((at(cluster.port(), cluster.dir()), server_log.clone()))));
        targets.push(Target::new(
            Kind::PgBouncer,
            transport,
            bouncer.as_ref().map(|b| (at(b.port(), b.dir()), b.log_path())),
        ));
        targets.push(Target::new(
            Kind::Pgflip,
            transport,
            proxy.as_ref().map(|p| (at(p.port(), p.unix_dir()), p.log_path())),
        ));
    }
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
    let count = targets.len();
    let mut samples = Vec::new();
    for round in 0..settings.rounds {
        for mode in QueryMode::ALL {
            for target in rotated(round, count) {
                let figures = measure(&mut targets[target], &load(mode, CLIENTS, THREADS, settings.secs));
                if let Some(figures) = figures {
                    samples.push(Sample { round, mode, target, tps: figures.tps });
                }
            }
        }
    }

    println!("\n1-client latency: -M simple -c 1 -j 1, {} s per target", settings.secs);
    let mut latency = vec![None; count];
    for target in rotated(settings.rounds, count) {
        latency[target] =
            measure(&mut targets[target], &load(QueryMode::Simple, 1, 1, settings.secs)).map(|f| f.latency_ms);
    }

    report::print_raw(&targets, &samples, settings.rounds);
    report::print_throughput(&samples, &settings);
    report::print_latency(&targets, &latency);
    report::print_failures(&targets);
    Ok(targets.iter().all(|target| target.failure.is_none()))
}

/// Target indices in the order of `round`: each round starts one target later.
fn rotated(round: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |i| (round + i) % count)
}

/// Runs one pgbench against `target` unless it already failed; a failure is recorded on it.
fn measure(target: &mut Target, load: &Load) -> Option<pgbench::Figures> {
    let endpoint = target.endpoint.clone().filter(|_| target.failure.is_none())?;
    match pgbench::select_only(&endpoint, load) {
        Ok(figures) => {
            println!(
                "  {:<15} {:<8} -c {:<2} {:>10.1} tps {:>8.3} ms",
                target.name(),
                load.mode.as_str(),
                load.clients,
                figures.tps,
                figures.latency_ms
            );
            Some(figures)
        }
        Err(reason) => {
            println!("  {:<15} {:<8} -c {:<2} FAILED", target.name(), load.mode.as_str(), load.clients);
            let args = pgbench::select_only_args(&endpoint, load).join(" ");
            let mut failure = format!("pgbench {args}: {reason}");
            if let Some(log) = &target.log {
                failure.push_str(&format!("\n{}:\n{}", log.display(), support::tail_file(log, 30)));
            }
            target.failure = Some(failure);
            None
        }
    }
}

/// Starts pgflip in front of the cluster, listening on TCP and on a Unix-domain socket,
/// and checks a `SELECT 1` passes through it.
fn start_pgflip(pg_port: u16) -> Result<Proxy, String> {
    let url = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres?sslmode=disable");
    let builder = ProxyBuilder::default().upstream("blue", &url).active("blue").unix_socket();
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
