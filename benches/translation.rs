//! What OID translation costs a moved session: `pgbench -S` through `pgflip proxy` in front
//! of blue and green, green a `pg_dump`/`pg_restore` of blue (so every table has another
//! OID there). Both variants are served by green:
//!
//! - **unmoved**: the sessions log in to green, their home: nothing to translate;
//! - **translated**: the sessions log in to blue and are switched to green a second into
//!   the run, so that every message is walked and its OIDs translated.
//!
//! Throughput is read off pgbench's per-second progress over the same seconds of each run
//! (after the switch has settled), in rounds that alternate the order of the variants.
//!
//! Run with `cargo bench --bench translation`. `PGFLIP_BENCH_SECS` (default 10) sets the
//! seconds measured per run and `PGFLIP_BENCH_ROUNDS` (default 3) the number of rounds.

#[path = "common/mod.rs"]
mod common;
#[path = "translation/run.rs"]
mod run;
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, ExitCode};
use std::time::Duration;

use common::caught;
use run::{Mode, Variant};
use support::{clients::run_with_timeout, pg_bin, Cluster, ClusterOptions, Proxy, ProxyBuilder};

/// pgbench scale factor: 1 million accounts, held in shared buffers.
const SCALE: u32 = 10;

fn main() -> ExitCode {
    if !common::measuring("translation") {
        return ExitCode::SUCCESS;
    }
    common::exit("translation", measure())
}

fn measure() -> Result<bool, String> {
    let secs = common::positive_var("PGFLIP_BENCH_SECS", 10)?;
    let rounds = common::positive_var("PGFLIP_BENCH_ROUNDS", 3)? as usize;
    common::print_machine();

    let options = || ClusterOptions::default().conf("shared_buffers = 256MB");
    let blue = caught(|| Cluster::start_with(options()))?;
    let green = caught(|| Cluster::start_with(options()))?;
    println!("loading: pgbench -i -s {SCALE} into blue, then pg_dump | pg_restore into green ...");
    load(&blue, &green)?;
    let table_oid = |c: &Cluster| caught(|| c.psql("SELECT 'pgbench_accounts'::regclass::oid").trim().to_string());
    let (blue_oid, green_oid) = (table_oid(&blue)?, table_oid(&green)?);
    if blue_oid == green_oid {
        return Err(format!("pgbench_accounts has OID {blue_oid} on both sides: nothing would be translated"));
    }
    println!("pgbench_accounts: OID {blue_oid} on blue, {green_oid} on green");

    let builder = ProxyBuilder::default().upstream("blue", &blue.url()).upstream("green", &green.url()).active("green");
    let proxy: Proxy = caught(|| builder.spawn())?;

    println!("\nwarm-up: 2 s per variant, -M simple");
    for variant in Variant::ALL {
        run::once(&proxy, variant, Mode::Simple, 2)?;
    }
    println!("\nthroughput: {rounds} rounds x {secs} s per mode and variant, -c {} -j {}", run::CLIENTS, run::THREADS);
    let mut samples = Vec::new();
    for round in 0..rounds {
        for mode in Mode::ALL {
            let order = if round % 2 == 0 { Variant::ALL } else { [Variant::ALL[1], Variant::ALL[0]] };
            for variant in order {
                let tps = run::once(&proxy, variant, mode, secs)?;
                println!("  round {} {:<8} {:<10} {tps:>10.1} tps", round + 1, mode.as_str(), variant.as_str());
                samples.push((mode, variant, tps));
            }
        }
    }

    println!("\nmedian tps (translated / unmoved):");
    for mode in Mode::ALL {
        let median = |variant| {
            let mut all: Vec<f64> = samples.iter().filter(|s| s.0 == mode && s.1 == variant).map(|s| s.2).collect();
            all.sort_by(f64::total_cmp);
            all[all.len() / 2]
        };
        let (unmoved, translated) = (median(Variant::Unmoved), median(Variant::Translated));
        println!(
            "  {:<8} unmoved {unmoved:>10.1}  translated {translated:>10.1}  ratio {:.3}",
            mode.as_str(),
            translated / unmoved
        );
    }
    Ok(true)
}

/// `pgbench -i` into blue (after objects made and dropped, so that blue's OIDs are not a
/// fresh server's), and green restored from blue's dump.
fn load(blue: &Cluster, green: &Cluster) -> Result<(), String> {
    caught(|| blue.psql("CREATE TABLE churn (x int); DROP TABLE churn"))?;
    let bin = pg_bin();
    let blue_url = blue.conninfo("postgres", "postgres");
    let steps: [(&str, Vec<String>); 3] = [
        ("pgbench", vec!["-i".into(), "-q".into(), "-s".into(), SCALE.to_string(), blue_url.clone()]),
        ("pg_dump", vec!["-Fc".into(), "-f".into(), dump_path(green), blue_url]),
        ("pg_restore", vec!["-d".into(), green.conninfo("postgres", "postgres"), dump_path(green)]),
    ];
    for (program, args) in steps {
        let mut command = Command::new(bin.join(program));
        command.args(&args);
        let out = caught(|| run_with_timeout(&mut command, None, Duration::from_secs(600)))?;
        if !out.success() {
            return Err(format!("{program} failed ({}):\n{}", out.status, out.stderr.trim_end()));
        }
    }
    caught(|| green.psql("VACUUM ANALYZE"))?;
    Ok(())
}

fn dump_path(green: &Cluster) -> String {
    green.dir().join("blue.dump").display().to_string()
}
