//! `pgflip demo`: the whole runbook on throwaway local clusters with an application
//! running through sidecars, and a report of what that application saw.
//!
//! Blue and green are fresh clusters under a temporary directory; blue gets the BAS
//! ledger of `seeds/`. Sidecars (this binary's `proxy`) serve blue; writers and readers
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
mod sidecars;
mod workdir;
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::controller::{self, Phase};
pub use error::DemoError;
use postgres::{LocalCluster, RunAs};
use report::{Flip, PhaseTime, Report};
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
    /// A shell command run after each flip to green and before its validation, with
    /// PGHOST, PGPORT, PGUSER and PGDATABASE pointing at green as its superuser: a way to
    /// see the validation and the report catch a fault.
    #[arg(long, value_name = "COMMAND")]
    pub before_validate: Option<String>,
}

/// Runs the demo; the report says whether it passed.
pub async fn run(args: DemoArgs) -> Result<Report, DemoError> {
    let begun = Instant::now();
    let bin = postgres::find_bin_dir(args.pg_bin.as_deref())?;
    let run_as = RunAs::detect()?;
    let root = workdir::WorkDir::create(run_as)?;
    println!("pgflip demo: PostgreSQL from {}; working in {}", bin.display(), root.path().display());

    let mut phases = Vec::new();
    let step = Instant::now();
    let blue = LocalCluster::start("blue", &root.path().join("blue"), &bin, run_as)?;
    let green = LocalCluster::start("green", &root.path().join("green"), &bin, run_as)?;
    phases.push(timed("clusters", step));
    println!("[clusters] blue on 127.0.0.1:{}, green on 127.0.0.1:{}", blue.port, green.port);

    let step = Instant::now();
    let seeds = files::write_seeds(root.path())?;
    blue.psql("postgres", &["-c", "CREATE DATABASE ledger"])?;
    let seed_file = seeds.join(args.seed.file());
    blue.psql("ledger", &["-f", &seed_file.display().to_string()])?;
    phases.push(timed("seed", step));
    println!("[seed] blue loaded with {} in {:.1} s", args.seed.file(), step.elapsed().as_secs_f64());

    let sidecars = sidecars::start(args.sidecars.into(), blue.port, green.port, root.path()).await?;
    let plan_path = plan::write(
        root.path(),
        &plan::PlanInputs {
            blue_port: blue.port,
            green_port: green.port,
            sidecar_admin_urls: sidecars.iter().map(|s| s.admin_url.clone()).collect(),
            bin_dir: &bin,
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
    println!(
        "[app] {} writers, {} readers and {} dashboard readers (standby listener) through {} sidecars; plan {}",
        args.writers,
        args.readers,
        args.standby_readers,
        sidecars.len(),
        plan_path.display()
    );

    let mut runbook = Runbook {
        plan: &plan_path,
        phases,
        flips: Vec::new(),
        validation_pauses_ms: Vec::new(),
        epoch: load.epoch,
        args: &args,
        green: &green,
    };
    let outcome = runbook.run_all().await;
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
    let mut report = build_report(&args, outcome.err(), runbook, &logs, acked.len(), lost, final_active, begun);
    report.standby_served_by = logs
        .iter()
        .find(|log| log.standby)
        .map(|log| {
            let side = |port: &u16| sides.iter().find(|(p, _)| p == port).map_or("unknown", |(_, name)| name);
            log.servers.iter().map(|port| side(port).to_owned()).collect()
        })
        .unwrap_or_default();
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report).expect("the report serializes");
        std::fs::write(path, json + "\n").map_err(DemoError::io(format!("writing the report {}", path.display())))?;
    }
    Ok(report)
}

/// The controller's phases, run one at a time so that each is timed.
struct Runbook<'a> {
    plan: &'a Path,
    phases: Vec<PhaseTime>,
    flips: Vec<Flip>,
    /// The fleet pauses of the validations' consistent points, in ms.
    validation_pauses_ms: Vec<u64>,
    epoch: Instant,
    args: &'a DemoArgs,
    green: &'a LocalCluster,
}

impl Runbook<'_> {
    async fn run_all(&mut self) -> Result<(), DemoError> {
        self.forward().await?;
        if self.args.rollback {
            self.flip("rollback", "blue").await?;
            self.forward().await?;
        }
        self.step("promote", Phase::Promote).await
    }

    /// Runs the phases of `pgflip cutover run` that are not done yet, validation included.
    async fn forward(&mut self) -> Result<(), DemoError> {
        for &phase in Phase::RUN {
            match phase {
                Phase::Cutover => self.flip("cutover", "green").await?,
                Phase::Validate => {
                    self.before_validate().await?;
                    let validated = self.step("validate", Phase::Validate).await;
                    if let Some(pause) = self.journal_fact(Phase::Validate, "point_pause_ms") {
                        self.validation_pauses_ms.push(pause);
                    }
                    validated?;
                }
                _ if self.flips.is_empty() => self.step(phase.name(), phase).await?,
                _ => {}
            }
        }
        Ok(())
    }

    async fn step(&mut self, name: &str, phase: Phase) -> Result<(), DemoError> {
        let started = Instant::now();
        println!("[{name}] ...");
        let result = match phase {
            Phase::Promote => controller::promote(self.plan).await,
            _ => controller::run(self.plan, Some(phase)).await,
        };
        self.phases.push(timed(name, started));
        result.map_err(|source| DemoError::Cutover { phase: name.to_string(), source })?;
        println!("[{name}] done in {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }

    /// A flip (cutover or rollback), with the write pause the controller measured and the
    /// longest wait of any client meanwhile (filled in at the end).
    async fn flip(&mut self, name: &str, to: &str) -> Result<(), DemoError> {
        let from = self.epoch.elapsed();
        let phase = if to == "green" { Phase::Cutover } else { Phase::Rollback };
        let result = if to == "green" { self.step(name, phase).await } else { self.rollback(name).await };
        let window = (from, self.epoch.elapsed());
        let write_pause_ms = self.journal_fact(phase, "write_pause_ms").unwrap_or(0);
        if result.is_ok() {
            println!("[{name}] write pause {write_pause_ms} ms; the application now talks to {to}");
            self.flips.push(Flip { to: to.to_string(), write_pause_ms, max_stall_ms: 0.0, window });
        }
        result
    }

    async fn rollback(&mut self, name: &str) -> Result<(), DemoError> {
        let started = Instant::now();
        println!("[{name}] ...");
        let result = controller::rollback(self.plan).await;
        self.phases.push(timed(name, started));
        result.map_err(|source| DemoError::Cutover { phase: name.to_string(), source })
    }

    /// A number the controller recorded in its journal for `phase`.
    fn journal_fact(&self, phase: Phase, key: &str) -> Option<u64> {
        let plan = controller::plan::Plan::load(self.plan).ok()?;
        let journal = controller::journal::Journal::open(&plan.journal.path).ok()?;
        journal.fact(phase, key).and_then(|value| value.as_u64())
    }

    async fn before_validate(&mut self) -> Result<(), DemoError> {
        let Some(command) = &self.args.before_validate else { return Ok(()) };
        println!("[before-validate] {command}");
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.green.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", "ledger")
            .status()
            .await
            .map_err(DemoError::io("running --before-validate"))?;
        if !status.success() {
            return Err(DemoError::Command {
                what: "--before-validate".into(),
                status: status.to_string(),
                output: String::new(),
            });
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    args: &DemoArgs,
    failure: Option<DemoError>,
    runbook: Runbook,
    logs: &[ClientLog],
    committed: usize,
    lost: Vec<i64>,
    final_active: String,
    begun: Instant,
) -> Report {
    let flips: Vec<Flip> = runbook
        .flips
        .iter()
        .map(|flip| Flip { max_stall_ms: report::max_stall(logs, flip.window), ..flip.clone() })
        .collect();
    let errors: Vec<String> = logs.iter().filter_map(|log| log.error.clone()).collect();
    let reads = logs.iter().filter(|log| log.acked.is_empty() && !log.standby).map(|log| log.ops.len()).sum();
    let standby_reads = logs.iter().filter(|log| log.standby).map(|log| log.ops.len()).sum();
    let ok = failure.is_none() && lost.is_empty() && errors.is_empty() && final_active == "green";
    Report {
        seed: args.seed.name().to_string(),
        ok,
        failure: failure.map(|e| e.to_string()),
        committed_writes: committed,
        lost_writes: lost.len(),
        lost_keys: lost.iter().take(20).copied().collect(),
        reads,
        standby_reads,
        standby_served_by: Vec::new(),
        client_errors: errors.len(),
        client_error_messages: errors.into_iter().take(10).collect(),
        max_stall_ms: flips.iter().map(|f| f.max_stall_ms).fold(0.0, f64::max),
        write_pause_ms: flips.iter().map(|f| f.write_pause_ms).max().unwrap_or(0),
        flips,
        validation_pauses_ms: runbook.validation_pauses_ms,
        phases: runbook.phases,
        final_active,
        seconds: begun.elapsed().as_secs_f64(),
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
