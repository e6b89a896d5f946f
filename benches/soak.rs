//! The soak: `pgflip proxy` under a pgbench-like write load for minutes on end, switching
//! between two clusters (blue and green) every few seconds, with a fault injected halfway
//! between every two switches: a backend killed with `pg_terminate_backend`, the serving
//! upstream stopped for a second with SIGSTOP, a client that hangs up mid-message, a slow
//! client that stops reading a 50 MiB result, the idle upstream restarted, the serving
//! upstream restarted, in turn.
//!
//! It reports the errors the load's clients saw by kind, each explained by the fault that
//! causes it or not; every acknowledged commit checked on both clusters; the switches done;
//! and the sidecar's RSS and open file descriptors at the start, along the way and at the
//! end (after a quiet spell as long as a switch interval).
//!
//! Run with `cargo bench --bench soak`. `PGFLIP_SOAK_SECONDS` (default 600) sets how long
//! the load runs, `PGFLIP_SOAK_CLIENTS` (default 16) its sessions and
//! `PGFLIP_SOAK_SWITCH_MS` (default 3000) the time between switches. It exits non-zero on
//! an unexplained error, a failed switch or fault, a lost, doubled or unexpected commit,
//! or memory or descriptors that did not come back to where they started.

#[path = "common/mod.rs"]
mod common;
#[path = "soak/faults.rs"]
mod faults;
#[path = "soak/ledger.rs"]
mod ledger;
#[path = "soak/load.rs"]
mod load;
#[path = "soak/process.rs"]
mod process;
#[path = "soak/report.rs"]
mod report;
#[path = "soak/rogue.rs"]
mod rogue;
#[path = "../tests/support/mod.rs"]
mod support;
#[path = "switch_stall/switches.rs"]
#[allow(dead_code)]
mod switches;

use common::caught;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use support::{Cluster, ProxyBuilder};

/// The sidecar's admin token in this run.
const TOKEN: &str = "soak-admin-token";
/// Load alone before the first sample and the first switch.
const WARM_UP: Duration = Duration::from_secs(3);
/// How often the sidecar's memory and descriptors are looked at.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// What the environment asks for.
pub struct Settings {
    pub duration: Duration,
    pub clients: usize,
    pub switch_every: Duration,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            duration: Duration::from_secs(common::positive_var("PGFLIP_SOAK_SECONDS", 600)?),
            clients: common::positive_var("PGFLIP_SOAK_CLIENTS", 16)? as usize,
            switch_every: Duration::from_millis(common::positive_var("PGFLIP_SOAK_SWITCH_MS", 3000)?),
        })
    }
}

fn main() -> ExitCode {
    if !common::measuring("soak") {
        return ExitCode::SUCCESS;
    }
    common::exit("soak", run())
}

fn run() -> Result<bool, String> {
    let settings = Settings::from_env()?;
    let begun = Instant::now();
    report::print_settings(&settings);

    // Declared before the proxy so that the proxy stops first.
    let blue = caught(Cluster::start)?;
    let green = caught(Cluster::start)?;
    for cluster in [&blue, &green] {
        caught(|| cluster.psql(&load::tables_sql()))?;
    }
    let proxy = caught(|| {
        ProxyBuilder::default()
            .upstream("blue", &blue.url())
            .upstream("green", &green.url())
            .active("blue")
            .admin_token(TOKEN)
            .spawn()
    })?;
    println!("pgflip:     pid {}, client port {}, admin port {}", proxy.pid(), proxy.port(), proxy.admin_port());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let epoch = Instant::now();
    let conninfo = format!("{} application_name={}", proxy.tokio_config("postgres", "postgres"), load::APPLICATION);
    let load = runtime.block_on(load::Load::start(&conninfo, settings.clients, epoch))?;
    std::thread::sleep(WARM_UP);
    let sample =
        |what: &str| process::sample(proxy.pid(), epoch.elapsed()).ok_or_else(|| format!("pgflip is gone ({what})"));
    let mut samples = vec![sample("at the start")?];
    println!("\n{} sessions writing; switching every {:?}\n", settings.clients, settings.switch_every);

    let mut calls = Vec::new();
    let mut faults = Vec::new();
    let mut serving = "blue";
    let mut next_progress = PROGRESS_EVERY;
    let load_began = epoch.elapsed();
    let deadline = Instant::now() + settings.duration;
    let mut next_switch = Instant::now();
    while next_switch < deadline {
        wait_until(next_switch, &mut samples, &sample);
        let to = if serving == "blue" { "green" } else { "blue" };
        let call = switches::call(&proxy, to, epoch);
        if call.problem().is_none() {
            serving = to;
        }
        calls.push(call);

        wait_until(next_switch + settings.switch_every / 2, &mut samples, &sample);
        let (serving_cluster, idle_cluster) = if serving == "blue" { (&blue, &green) } else { (&green, &blue) };
        let targets = faults::Targets { serving: serving_cluster, idle: idle_cluster, proxy_port: proxy.port() };
        faults.push(faults::inject(faults.len(), &targets, epoch));

        if epoch.elapsed() >= next_progress {
            report::print_progress(epoch.elapsed() - load_began, load.commits(), &calls, &faults, samples.last());
            next_progress += PROGRESS_EVERY;
        }
        next_switch += settings.switch_every;
    }
    // A quiet spell, so that what the last fault did settles before the end's sample.
    wait_until(Instant::now() + settings.switch_every.max(Duration::from_secs(3)), &mut samples, &sample);
    let end = sample("at the end")?;
    samples.push(end);
    let load_secs = (epoch.elapsed() - load_began).as_secs_f64();
    let logs = runtime.block_on(load.finish());
    let ledger = ledger::check(&blue, &green, &logs)?;

    let outcome = report::Outcome {
        settings: &settings,
        load_secs,
        logs: &logs,
        calls: &calls,
        faults: &faults,
        ledger: &ledger,
        samples: &samples,
    };
    let clean = outcome.print();
    if !clean {
        let log = support::tail_file(&proxy.log_path(), 40);
        println!("\nFAILED: see above; the last lines of pgflip's log:\n{log}");
    }
    println!("\nrun time: {:.1} s", begun.elapsed().as_secs_f64());
    Ok(clean)
}

/// Sleeps until `when`, looking at the sidecar every [`SAMPLE_EVERY`] meanwhile.
fn wait_until(
    when: Instant,
    samples: &mut Vec<process::Sample>,
    sample: &dyn Fn(&str) -> Result<process::Sample, String>,
) {
    loop {
        let now = Instant::now();
        if now >= when {
            return;
        }
        let last = samples.last().map_or(Duration::ZERO, |s| s.at);
        if let Ok(taken) = sample("along the way") {
            if taken.at >= last + SAMPLE_EVERY {
                samples.push(taken);
            }
        }
        std::thread::sleep((when - now).min(SAMPLE_EVERY / 4));
    }
}
