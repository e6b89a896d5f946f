//! `pgflip demo`: the whole runbook on throwaway local clusters with an application
//! running through sidecars, and a report of what that application saw.
//!
//! Blue and green are fresh clusters under a temporary directory, green's possibly from
//! another PostgreSQL installation (`--green-pg-bin`: a major-version upgrade); blue gets
//! the BAS ledger of `seeds/`. Sidecars (this binary's `proxy`) serve blue; writers and readers
//! run through them. The plan is `deploy/examples/plan.toml` pointed at all that; the
//! controller runs it phase by phase (with `--rollback`: cutover, rollback, cutover
//! again), then promotes green. At the end every acknowledged journal is looked up on the
//! database that serves. Everything is stopped and deleted on exit, Ctrl-C included
//! (every resource is dropped with the demo's future).

mod error;
mod files;
mod plan;
mod postgres;
mod report;
mod runbook;
mod sidecars;
mod story;
mod versions;
mod workdir;
mod workload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

pub use error::DemoError;
use postgres::{LocalCluster, Programs, RunAs};
pub use report::Report;
use report::{Flip, PhaseTime};
use runbook::Runbook;
use versions::ServerVersion;
use workload::ClientLog;

/// Which data set blue starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Seed {
    /// seeds/seed_small.sql: 4 organisations, about 41,000 ledger lines.
    Small,
    /// seeds/seed_spike.sql: an end-of-quarter spike, about 1.4 million ledger lines.
    Spike,
}

impl Seed {
    fn file(self) -> &'static str {
        match self {
            Seed::Small => "seed_small.sql",
            Seed::Spike => "seed_spike.sql",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Seed::Small => "small",
            Seed::Spike => "spike",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The data set blue starts with.
    #[arg(long, value_enum, default_value_t = Seed::Small)]
    pub seed: Seed,
    /// After the cutover, flip back to blue and forward to green again before promoting.
    #[arg(long)]
    pub rollback: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Sidecars, as an application's pods would have.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub sidecars: u16,
    /// Clients posting journals, each one connection that is never retried.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub writers: u16,
    /// Clients reading account balances.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub readers: u16,
    /// Dashboard readers on the sidecars' standby listener (read-only, on the database that
    /// is not serving, as role ledger_reader).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub standby_readers: u16,
    /// How long each validation window lasts: seconds, or a number with a unit (500ms,
    /// 8s, 2m), from 1 s to 1 h.
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = parse_window)]
    pub window: Duration,
    /// The directory of initdb, pg_ctl, postgres and psql (default: PATH, then the
    /// newest /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// The directory of the server programs green runs from (initdb, pg_ctl, postgres) when
    /// it is another PostgreSQL installation than blue's, to show a major-version upgrade:
    /// the same major as blue or newer. The client programs stay those of --pg-bin.
    #[arg(long, value_name = "DIR")]
    pub green_pg_bin: Option<PathBuf>,
    /// A shell command run after each flip to green and before its validation, with
    /// PGHOST, PGPORT, PGUSER and PGDATABASE pointing at green as its superuser: a way to
    /// see the validation and the report catch a fault.
    #[arg(long, value_name = "COMMAND")]
    pub before_validate: Option<String>,
}

/// The demo before it runs: PostgreSQL found and its versions read, its directory made,
/// its log file open.
pub struct Demo {
    args: DemoArgs,
    installs: Installs,
    run_as: RunAs,
    root: workdir::WorkDir,
}

/// Where each side's PostgreSQL comes from and which version it is.
struct Installs {
    /// `--pg-bin` or the one found: blue's server and every client program.
    bin: PathBuf,
    /// Green's server programs: `--green-pg-bin`, else `bin`.
    green_bin: PathBuf,
    blue_version: ServerVersion,
    green_version: ServerVersion,
}

impl Demo {
    /// Finds PostgreSQL, reads which version each side would run (refusing blue older than
    /// the seeds and green older than blue) and makes the demo's directory, with the log
    /// file the caller writes the detailed logs to ([`Demo::log_path`]).
    pub fn prepare(args: DemoArgs) -> Result<Demo, DemoError> {
        let bin = postgres::find_bin_dir(args.pg_bin.as_deref())?;
        let green_bin = postgres::green_bin_dir(args.green_pg_bin.as_deref(), &bin)?;
        let run_as = RunAs::detect()?;
        let blue_version = ServerVersion::read(&bin, run_as, "blue")?;
        let green_version = ServerVersion::read(&green_bin, run_as, "green")?;
        versions::check(&blue_version, &green_version, &bin, &green_bin)?;
        let root = workdir::WorkDir::create(run_as)?;
        Ok(Demo { args, installs: Installs { bin, green_bin, blue_version, green_version }, run_as, root })
    }

    /// The file the detailed logs go to: kept when the demo fails, deleted with the rest
    /// when it passes.
    pub fn log_path(&self) -> PathBuf {
        self.root.log_path()
    }

    /// Runs the demo; the report says whether it passed. When it did not, the logs are
    /// kept (and the report names them); everything else is deleted.
    pub async fn run(self) -> Result<Report, DemoError> {
        let Demo { args, installs, run_as, root } = self;
        let green_from = match args.green_pg_bin {
            Some(_) => format!(", green's server from {}", installs.green_bin.display()),
            None => String::new(),
        };
        println!(
            "pgflip demo: PostgreSQL from {}{green_from}; working in {}",
            installs.bin.display(),
            root.path().display()
        );
        tracing::info!(
            blue.version = %installs.blue_version,
            blue.bin = %installs.bin.display(),
            green.version = %installs.green_version,
            green.bin = %installs.green_bin.display(),
            "the demo's PostgreSQL"
        );
        println!("{:<12} {:>7}  {} (kept if the demo fails)", "[log]", "", root.log_path().display());
        let result = run_in(&args, &installs, run_as, &root).await;
        let passed = result.as_ref().is_ok_and(|report| report.ok);
        if !passed {
            root.keep_logs();
        }
        let report = Report { log: (!passed).then(|| root.log_path().display().to_string()), ..result? };
        if let Some(path) = &args.report {
            let json = serde_json::to_string_pretty(&report).expect("the report serializes");
            std::fs::write(path, json + "\n")
                .map_err(DemoError::io(format!("writing the report {}", path.display())))?;
        }
        Ok(report)
    }
}

async fn run_in(
    args: &DemoArgs,
    installs: &Installs,
    run_as: RunAs,
    root: &workdir::WorkDir,
) -> Result<Report, DemoError> {
    let begun = Instant::now();
    let mut phases = Vec::new();
    let step = Instant::now();
    let bin = installs.bin.as_path();
    let blue_programs = Programs { server: bin, psql: bin };
    let green_programs = Programs { server: &installs.green_bin, psql: bin };
    let blue =
        LocalCluster::start("blue", &root.path().join("blue"), blue_programs, run_as, &root.logs().join("blue.log"))?;
    let green = LocalCluster::start(
        "green",
        &root.path().join("green"),
        green_programs,
        run_as,
        &root.logs().join("green.log"),
    )?;
    phases.push(timed("clusters", step));
    let (blue_version, green_version) = (&installs.blue_version, &installs.green_version);
    let versions = if blue_version == green_version {
        format!("({blue_version})")
    } else {
        format!("(blue {blue_version}, green {green_version})")
    };
    story::line(
        "clusters",
        Some(step.elapsed().as_secs_f64()),
        &format!("blue on 127.0.0.1:{}, green on 127.0.0.1:{} {versions}", blue.port, green.port),
    );

    let step = Instant::now();
    let seeds = files::write_seeds(root.path())?;
    blue.psql("postgres", &["-c", "CREATE DATABASE ledger"])?;
    let seed_file = seeds.join(args.seed.file());
    blue.psql("ledger", &["-f", &seed_file.display().to_string()])?;
    phases.push(timed("seed", step));
    story::line("seed", Some(step.elapsed().as_secs_f64()), &format!("blue loaded with seeds/{}", args.seed.file()));

    let sidecars = sidecars::start(args.sidecars.into(), blue.port, green.port, root.path(), root.logs()).await?;
    let plan_path = plan::write(
        root.path(),
        &plan::PlanInputs {
            blue_port: blue.port,
            green_port: green.port,
            sidecar_admin_urls: sidecars.iter().map(|s| s.admin_url.clone()).collect(),
            bin_dir: bin,
            window: args.window,
        },
    )?;
    let blue_client = connect(&blue.conninfo("ledger")).await?;
    let targets = workload::targets(&blue_client).await?;
    drop(blue_client);
    let counts = workload::Clients {
        writers: args.writers.into(),
        readers: args.readers.into(),
        dashboards: args.standby_readers.into(),
    };
    let load = workload::start(&sidecars, targets, counts).await?;
    story::line(
        "app",
        None,
        &format!(
            "{} (on the standby listener) through {}",
            [(args.writers, "writer"), (args.readers, "reader"), (args.standby_readers, "dashboard reader")]
                .map(|(n, what)| format!("{n} {what}{}", if n == 1 { "" } else { "s" }))
                .join(", "),
            match sidecars.len() {
                1 => "1 sidecar".to_owned(),
                n => format!("{n} sidecars"),
            }
        ),
    );

    let mut runbook = Runbook {
        plan: &plan_path,
        phases,
        flips: Vec::new(),
        validation_pauses_ms: Vec::new(),
        args,
        green: &green,
        load: &load,
    };
    let outcome = runbook.run_all().await;
    let Runbook { phases, flips, validation_pauses_ms, .. } = runbook;
    // Let the last flip's held operations finish inside the load.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = load.finish().await;

    let mut actives = Vec::new();
    for sidecar in &sidecars {
        actives.push(sidecars::active(sidecar).await.unwrap_or_else(|| "unreachable".into()));
    }
    actives.dedup();
    let final_active = if actives.len() == 1 { actives.remove(0) } else { format!("mixed: {}", actives.join(", ")) };
    let serving = if final_active == "green" { &green } else { &blue };
    let acked: Vec<i64> = logs.iter().flat_map(|log| log.acked.iter().copied()).collect();
    let lost = workload::lost_journals(&connect(&serving.conninfo("ledger")).await?, &acked).await?;

    let sides = [(blue.port, "blue"), (green.port, "green")];
    let ran = Ran { phases, flips, validation_pauses_ms };
    let mut report = build_report(args, outcome.err(), ran, &logs, acked.len(), lost, final_active, begun);
    report.blue_version = blue_version.number.clone();
    report.green_version = green_version.number.clone();
    report.standby_served_by = logs
        .iter()
        .find(|log| log.standby)
        .map(|log| {
            let side = |port: &u16| sides.iter().find(|(p, _)| p == port).map_or("unknown", |(_, name)| name);
            log.servers.iter().map(|port| side(port).to_owned()).collect()
        })
        .unwrap_or_default();
    Ok(report)
}

/// What the runbook did, for the report.
struct Ran {
    phases: Vec<PhaseTime>,
    flips: Vec<Flip>,
    validation_pauses_ms: Vec<u64>,
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    args: &DemoArgs,
    failure: Option<DemoError>,
    ran: Ran,
    logs: &[ClientLog],
    committed: usize,
    lost: Vec<i64>,
    final_active: String,
    begun: Instant,
) -> Report {
    let errors: Vec<String> = logs.iter().filter_map(|log| log.error.clone()).collect();
    let reads = logs.iter().filter(|log| log.acked.is_empty() && !log.standby).map(|log| log.ops.len()).sum();
    let standby_reads = logs.iter().filter(|log| log.standby).map(|log| log.ops.len()).sum();
    let ok = failure.is_none() && lost.is_empty() && errors.is_empty() && final_active == "green";
    Report {
        seed: args.seed.name().to_string(),
        ok,
        blue_version: String::new(),
        green_version: String::new(),
        failure: failure.map(|e| e.to_string()),
        committed_writes: committed,
        lost_writes: lost.len(),
        lost_keys: lost.iter().take(20).copied().collect(),
        reads,
        standby_reads,
        standby_served_by: Vec::new(),
        client_errors: errors.len(),
        client_error_messages: errors.into_iter().take(10).collect(),
        max_stall_ms: ran.flips.iter().map(|f| f.max_stall_ms).fold(0.0, f64::max),
        write_pause_ms: ran.flips.iter().map(|f| f.write_pause_ms).max().unwrap_or(0),
        flips: ran.flips,
        validation_pauses_ms: ran.validation_pauses_ms,
        phases: ran.phases,
        final_active,
        seconds: begun.elapsed().as_secs_f64(),
        log: None,
    }
}

/// `--window`: from 1 s to 1 h.
fn parse_window(text: &str) -> Result<Duration, String> {
    match crate::duration::parse_flag(text)? {
        window if (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&window) => Ok(window),
        _ => Err(format!("{text:?} is not from 1s to 1h")),
    }
}

fn timed(name: &str, started: Instant) -> PhaseTime {
    PhaseTime { name: name.to_string(), seconds: started.elapsed().as_secs_f64() }
}

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, DemoError> {
    let (client, connection) =
        tokio_postgres::connect(conninfo, NoTls).await.map_err(DemoError::sql(format!("connecting to {conninfo}")))?;
    tokio::spawn(connection);
    Ok(client)
}
