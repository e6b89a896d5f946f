//! What the e2e bench prints: the machine, both proxies' configurations, each round's
//! raw numbers, the median TPS table with ratios per transport (TCP, Unix socket), and the
//! 1-client latencies.

use crate::pgbench::QueryMode;
use crate::{index, Kind, Sample, Settings, Targets, Transport};

/// Prints CPU count and model, kernel, memory, and the PostgreSQL and PgBouncer versions.
pub fn print_machine(pgbouncer_version: &str) {
    println!("== pgflip end-to-end benchmark: direct vs PgBouncer vs pgflip ==");
    crate::common::print_machine();
    println!("PgBouncer:  {pgbouncer_version}");
    println!(
        "workload:   pgbench -n -S (select only), scale {}, every target over TCP on 127.0.0.1 and over \
         its Unix-domain socket (both proxies reach PostgreSQL over TCP); cluster with fsync=off, \
         shared_buffers=256MB",
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
    print!("{:<9} {:>5}", "mode", "round");
    for target in targets {
        print!(" {:>15}", target.name());
    }
    println!();
    for mode in QueryMode::ALL {
        for round in 0..rounds {
            print!("{:<9} {:>5}", mode.as_str(), round + 1);
            for target in 0..targets.len() {
                let tps = samples.iter().find(|s| s.mode == mode && s.round == round && s.target == target);
                print!(" {:>15}", number(tps.map(|s| s.tps), 1));
            }
            println!();
        }
    }
}

/// Prints the median TPS of each target and mode with the ratios between them, per
/// transport; then what the Unix socket gains over TCP for each.
pub fn print_throughput(samples: &[Sample], settings: &Settings) {
    println!(
        "\nmedian TPS of {} rounds x {} s (-c {} -j {}; higher is better)",
        settings.rounds,
        settings.secs,
        crate::CLIENTS,
        crate::THREADS
    );
    let median_tps = |mode: QueryMode, kind: Kind, transport: Transport| {
        let target = index(kind, transport);
        median(samples.iter().filter(|s| s.mode == mode && s.target == target).map(|s| s.tps).collect())
    };
    println!(
        "{:<9} {:<9} {:>12} {:>12} {:>12} {:>17} {:>14} {:>17}",
        "mode", "transport", "direct", "PgBouncer", "pgflip", "PgBouncer/direct", "pgflip/direct", "pgflip/PgBouncer"
    );
    for mode in QueryMode::ALL {
        for transport in Transport::ALL {
            let tps = |kind| median_tps(mode, kind, transport);
            let (direct, bouncer, pgflip) = (tps(Kind::Direct), tps(Kind::PgBouncer), tps(Kind::Pgflip));
            println!(
                "{:<9} {:<9} {:>12} {:>12} {:>12} {:>17} {:>14} {:>17}",
                mode.as_str(),
                transport.as_str(),
                number(direct, 1),
                number(bouncer, 1),
                number(pgflip, 1),
                number(ratio(bouncer, direct), 3),
                number(ratio(pgflip, direct), 3),
                number(ratio(pgflip, bouncer), 3)
            );
        }
    }
    println!("\nunix/tcp: TPS over the Unix socket divided by TPS over TCP");
    println!("{:<9} {:>12} {:>12} {:>12}", "mode", "direct", "PgBouncer", "pgflip");
    for mode in QueryMode::ALL {
        let gain = |kind| ratio(median_tps(mode, kind, Transport::Unix), median_tps(mode, kind, Transport::Tcp));
        println!(
            "{:<9} {:>12} {:>12} {:>12}",
            mode.as_str(),
            number(gain(Kind::Direct), 3),
            number(gain(Kind::PgBouncer), 3),
            number(gain(Kind::Pgflip), 3)
        );
    }
}

/// Prints the 1-client average latency per target and what each proxy adds to it over the
/// same transport.
pub fn print_latency(targets: &Targets, latency_ms: &[Option<f64>]) {
    println!("\n1-client latency (-M simple -c 1 -j 1; lower is better)");
    println!("{:<15} {:>14} {:>16}", "target", "average ms", "added ms");
    for (i, target) in targets.iter().enumerate() {
        let direct = latency_ms[index(Kind::Direct, target.transport)];
        let added = match (target.kind, latency_ms[i], direct) {
            (Kind::Direct, _, _) => String::new(),
            (_, Some(proxy), Some(direct)) => format!("{:+.3}", proxy - direct),
            _ => "-".into(),
        };
        println!("{:<15} {:>14} {:>16}", target.name(), number(latency_ms[i], 3), added);
    }
}

/// Prints why each failed target failed.
pub fn print_failures(targets: &Targets) {
    for target in targets.iter() {
        if let Some(reason) = &target.failure {
            println!("\nFAILED target {}: {}", target.name(), reason.trim_end());
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
