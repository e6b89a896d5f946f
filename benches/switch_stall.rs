//! The stall clients see while pgflip moves their sessions: 50 tokio-postgres sessions run
//! short prepared selects through `pgflip proxy` while it switches them between two
//! clusters, blue and green, every 2 s. Queries overlapping a switch's pause are
//! compared with queries far from any switch.
//!
//! Run with `cargo bench --bench switch_stall`. `PGFLIP_STALL_SWITCHES` (default 20) sets
//! the number of switches and `PGFLIP_STALL_INTERVAL_MS` (default 2000) the time from one
//! switch call's start to the next one's (longer when a call overruns it). A client error,
//! a switch answering other than 200, or a session that failed to move is reported and
//! makes the run exit non-zero; a missed stall target is reported only.

#[path = "common/mod.rs"]
mod common;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "switch_stall/load.rs"]
mod load;
#[path = "switch_stall/report.rs"]
mod report;
#[path = "../tests/support/mod.rs"]
mod support;
#[path = "switch_stall/switches.rs"]
mod switches;

use common::caught;
use serde_json::Value;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use support::{Cluster, Proxy, ProxyBuilder};

/// Client sessions through the proxy.
pub const CLIENTS: usize = 50;
/// Load before the first switch, which most of the baseline is drawn from.
const WARM_UP: Duration = Duration::from_millis(1500);
/// Queries this soon after the loops start are left out of the baseline: fresh server
/// connections plan and cache on their first queries.
const SETTLE: Duration = Duration::from_millis(500);
/// Load after the last switch, so that its stalled queries finish inside the run.
const COOL_DOWN: Duration = Duration::from_millis(500);
/// A query this close to a switch call belongs to neither the stall nor the baseline.
pub const BASELINE_MARGIN: Duration = Duration::from_millis(100);
/// The stall a client may see at the 99th percentile when no long transaction is open.
pub const TARGET_P99: Duration = Duration::from_millis(50);

/// What the environment asks for.
pub struct Settings {
    pub switches: usize,
    /// Time from one switch call's start to the next one's.
    pub interval: Duration,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let switches = common::positive_var("PGFLIP_STALL_SWITCHES", 20)?;
        let interval = common::positive_var("PGFLIP_STALL_INTERVAL_MS", 2000)?;
        Ok(Settings { switches: switches as usize, interval: Duration::from_millis(interval) })
    }
}

fn main() -> ExitCode {
    if !common::measuring("switch_stall") {
        return ExitCode::SUCCESS;
    }
    common::exit("switch_stall", run())
}

/// Runs everything; `Ok(false)` when it was measured but a client or a switch failed.
fn run() -> Result<bool, String> {
    let settings = Settings::from_env()?;
    let begun = Instant::now();
    report::print_machine(&settings);

    // Declared before the proxy so that the proxy stops first.
    let blue = caught(Cluster::start)?;
    let green = caught(Cluster::start)?;
    for cluster in [&blue, &green] {
        caught(|| cluster.psql(&load::table_sql()))?;
    }
    let proxy = caught(|| {
        ProxyBuilder::default().upstream("blue", &blue.url()).upstream("green", &green.url()).active("blue").spawn()
    })?;
    report::print_command_line(proxy.pid());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let epoch = Instant::now();
    let load = runtime
        .block_on(load::start(&proxy.tokio_config("postgres", "postgres"), CLIENTS, epoch))
        .map_err(|e| format!("connecting through pgflip: {e}\npgflip output:\n{}", proxy_log(&proxy)))?;
    let load_began = epoch.elapsed();
    let cpu_at_start = cpu::CpuTimes::now();
    println!(
        "\n{CLIENTS} sessions connected and prepared in {:.0} ms; load alone for {} ms, then switching",
        load_began.as_secs_f64() * 1e3,
        WARM_UP.as_millis()
    );
    std::thread::sleep(WARM_UP);
    let calls = switches::run(&proxy, settings.switches, settings.interval, epoch);
    std::thread::sleep(COOL_DOWN);
    let load_secs = (epoch.elapsed() - load_began).as_secs_f64();
    let cpu_shares = cpu_at_start.zip(cpu::CpuTimes::now()).map(|(start, end)| start.shares_until(&end));
    let logs = runtime.block_on(load.finish());

    let analysis = report::analyse(&logs, &calls, load_began + SETTLE);
    report::print_switches(&calls, &analysis);
    let misplaced = check_placement(&proxy, &blue, &green, &logs);
    report::print_errors(&logs);
    report::print_summary(&calls, &analysis, load_secs);
    if let Some(shares) = cpu_shares {
        println!("{:<34} {shares}", "machine CPU during the load");
    }
    let clean = analysis.errors == 0 && misplaced == 0 && calls.iter().all(|call| call.problem().is_none());
    if !clean {
        println!("\nFAILED: see the errors above; pgflip output:\n{}", proxy_log(&proxy));
    }
    println!("\nrun time: {:.1} s", begun.elapsed().as_secs_f64());
    Ok(clean)
}

/// Checks every session ended on the server of the active upstream; returns how many did not.
fn check_placement(proxy: &Proxy, blue: &Cluster, green: &Cluster, logs: &[load::ClientLog]) -> usize {
    let status = proxy.admin_get("/v1/status").ok().and_then(|(_, text)| serde_json::from_str::<Value>(&text).ok());
    let active = status.as_ref().and_then(|s| s["active"].as_str()).unwrap_or("unknown").to_string();
    let expected = match active.as_str() {
        "blue" => i32::from(blue.port()),
        "green" => i32::from(green.port()),
        _ => {
            println!("\nFAILED: GET /v1/status did not name the active upstream: {status:?}");
            return logs.len();
        }
    };
    let misplaced: Vec<String> = logs
        .iter()
        .enumerate()
        .filter(|(_, log)| log.final_port.is_some_and(|port| port != expected))
        .map(|(index, log)| format!("client {index} on port {:?}", log.final_port))
        .collect();
    let asked = logs.iter().filter(|log| log.final_port.is_some()).count();
    println!(
        "\nplacement: active upstream {active} (port {expected}); {asked} sessions asked, {} elsewhere",
        misplaced.len()
    );
    if !misplaced.is_empty() {
        println!("FAILED: sessions not on the active upstream: {}", misplaced.join(", "));
    }
    misplaced.len()
}

/// The proxy's warnings and errors (the first 40), then the last lines of its log.
fn proxy_log(proxy: &Proxy) -> String {
    let output = proxy.output();
    let mut notable: Vec<&str> = output.lines().filter(|line| !line.contains(" INFO ")).take(40).collect();
    if notable.is_empty() {
        notable.push("(no warnings or errors)");
    }
    format!("{}\n--- last lines ---\n{}", notable.join("\n"), support::tail_file(&proxy.log_path(), 10))
}
