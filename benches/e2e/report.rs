//! What the e2e bench prints: the machine, both proxies' configurations, each round's
//! raw numbers, the median TPS table with ratios, and the 1-client latencies.

use crate::pgbench::QueryMode;
use crate::{Sample, Settings, Targets, DIRECT, PGBOUNCER, PGFLIP};

/// Prints CPU count and model, kernel, memory, and the PostgreSQL and PgBouncer versions.
pub fn print_machine(pgbouncer_version: &str) {
    println!("== pgflip end-to-end benchmark: direct vs PgBouncer vs pgflip ==");
    crate::common::print_machine();
    println!("PgBouncer:  {pgbouncer_version}");
    println!(
        "workload:   pgbench -n -S (select only), scale {}, all targets over TCP on 127.0.0.1; \
         cluster with fsync=off, shared_buffers=256MB",
        crate::SCALE
    );
}

/// Prints the generated pgbouncer.ini and pgflip's command line, read back from /proc.
pub fn print_configs(pgbouncer_ini: Option<&str>, pgflip_pid: Option<u32>) {
    println!("\n--- pgbouncer.ini ---");
    println!("{}", pgbouncer_ini.map_or("(not running)", str::trim_end));
    println!("--- pgflip command line ---");
    let cmdline = pgflip_pid.and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok()).map(|raw| {
        raw.split(|&b| b == 0).filter(|arg| !arg.is_empty()).map(String::from_utf8_lossy).collect::<Vec<_>>().join(" ")
    });
    println!("{}", cmdline.as_deref().unwrap_or("(not running)"));
}

/// Prints every throughput run, one line per mode and round.
pub fn print_raw(targets: &Targets, samples: &[Sample], rounds: usize) {
    println!("\nraw TPS per round (the order rotates each round)");
    println!("{:<9} {:>5} {:>12} {:>12} {:>12}", "mode", "round", targets[0].name, targets[1].name, targets[2].name);
    for mode in QueryMode::ALL {
        for round in 0..rounds {
            let cell = |target: usize| {
                let tps = samples.iter().find(|s| s.mode == mode && s.round == round && s.target == target);
                number(tps.map(|s| s.tps), 1)
            };
            println!("{:<9} {:>5} {:>12} {:>12} {:>12}", mode.as_str(), round + 1, cell(0), cell(1), cell(2));
        }
    }
}

/// Prints the median TPS of each target and mode with the ratios between them.
pub fn print_throughput(targets: &Targets, samples: &[Sample], settings: &Settings) {
    println!(
        "\nmedian TPS of {} rounds x {} s (-c {} -j {}; higher is better)",
        settings.rounds,
        settings.secs,
        crate::CLIENTS,
        crate::THREADS
    );
    println!(
        "{:<9} {:>12} {:>12} {:>12} {:>17} {:>14} {:>17}",
        "mode",
        targets[DIRECT].name,
        targets[PGBOUNCER].name,
        targets[PGFLIP].name,
        "PgBouncer/direct",
        "pgflip/direct",
        "pgflip/PgBouncer"
    );
    for mode in QueryMode::ALL {
        let tps = |target: usize| {
            median(samples.iter().filter(|s| s.mode == mode && s.target == target).map(|s| s.tps).collect())
        };
        let (direct, bouncer, pgflip) = (tps(DIRECT), tps(PGBOUNCER), tps(PGFLIP));
        println!(
            "{:<9} {:>12} {:>12} {:>12} {:>17} {:>14} {:>17}",
            mode.as_str(),
            number(direct, 1),
            number(bouncer, 1),
            number(pgflip, 1),
            number(ratio(bouncer, direct), 3),
            number(ratio(pgflip, direct), 3),
            number(ratio(pgflip, bouncer), 3)
        );
    }
}

/// Prints the 1-client average latency per target and what each proxy adds to it.
pub fn print_latency(targets: &Targets, latency_ms: &[Option<f64>; 3]) {
    println!("\n1-client latency (-M simple -c 1 -j 1; lower is better)");
    println!("{:<9} {:>14} {:>16}", "target", "average ms", "added ms");
    let direct = latency_ms[DIRECT];
    for (index, target) in targets.iter().enumerate() {
        let added = match (index, latency_ms[index], direct) {
            (DIRECT, _, _) => String::new(),
            (_, Some(proxy), Some(direct)) => format!("{:+.3}", proxy - direct),
            _ => "-".into(),
        };
        println!("{:<9} {:>14} {:>16}", target.name, number(latency_ms[index], 3), added);
    }
}

/// Prints why each failed target failed.
pub fn print_failures(targets: &Targets) {
    for target in targets.iter() {
        if let Some(reason) = &target.failure {
            println!("\nFAILED target {}: {}", target.name, reason.trim_end());
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    Some(numerator? / denominator.filter(|d| *d > 0.0)?)
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}
