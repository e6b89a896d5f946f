//! What an idle session costs a proxy in memory: 500 sessions (plaintext, logged in, one
//! `SELECT 1` run, nothing in flight) are opened through `pgflip proxy`, then through
//! PgBouncer (session mode, so each holds a server connection as pgflip's do), and each
//! process's resident set (VmRSS in /proc/PID/status) is read before and after.
//!
//! Run with `cargo bench --bench idle_sessions`. `PGFLIP_BENCH_SESSIONS` (default 500) sets
//! the number of sessions. A target that fails to start or to serve is reported and makes
//! the run exit non-zero; the figures are reported, never asserted.

#[path = "common/mod.rs"]
mod common;
#[path = "e2e/pgbouncer.rs"]
#[allow(dead_code)]
mod pgbouncer;
#[path = "../tests/support/mod.rs"]
mod support;

use common::caught;
use pgbouncer::PgBouncer;
use std::process::ExitCode;
use std::time::Duration;
use support::{rss_kib, Cluster, ClusterOptions, ProxyBuilder, RawConn};

/// Sessions opened and closed first, so that the threads, allocator arenas and pools a
/// proxy sets up once are in the "before" figure.
const WARM_UP_SESSIONS: usize = 20;
/// Time left for a proxy to settle before its RSS is read.
const SETTLE: Duration = Duration::from_millis(500);
/// What pgflip aims at per idle session.
const PGFLIP_TARGET_KIB: f64 = 32.0;
/// The answer each session reads before it idles: sizeable, so that buffers which grew
/// for it and did not shrink back show.
const BIG_ANSWER_BYTES: usize = 256 * 1024;

/// The memory figures of one proxy.
struct Figures {
    name: &'static str,
    before_kib: u64,
    idle_kib: u64,
    after_big_kib: u64,
    closed_kib: u64,
    sessions: usize,
}

impl Figures {
    fn per_session(&self, kib: u64) -> f64 {
        kib.saturating_sub(self.before_kib) as f64 / self.sessions as f64
    }
}

fn main() -> ExitCode {
    if !common::measuring("idle_sessions") {
        return ExitCode::SUCCESS;
    }
    common::exit("idle_sessions", run())
}

fn run() -> Result<bool, String> {
    let sessions = common::positive_var("PGFLIP_BENCH_SESSIONS", 500)? as usize;
    if !std::path::Path::new(pgbouncer::PGBOUNCER_BIN).exists() {
        return Err(format!(
            "PgBouncer not found at {}: install it with `apt-get install pgbouncer`",
            pgbouncer::PGBOUNCER_BIN
        ));
    }
    println!("== pgflip idle-session memory: pgflip vs PgBouncer ==");
    common::print_machine();
    println!("PgBouncer:  {}", pgbouncer::version());
    println!(
        "workload:   {sessions} sessions per proxy over TCP on 127.0.0.1, plaintext on both legs, trust auth; \
         each logs in, runs SELECT 1 and idles; then each reads a {} KiB answer and idles again",
        BIG_ANSWER_BYTES / 1024
    );

    let max_connections = sessions + WARM_UP_SESSIONS + 50;
    let cluster = caught(|| {
        Cluster::start_with(ClusterOptions::default().conf(&format!("max_connections = {max_connections}")))
    })?;
    let mut results = Vec::new();
    let mut failed = false;

    let url = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", cluster.port());
    match caught(|| ProxyBuilder::default().upstream("blue", &url).active("blue").spawn()) {
        Ok(proxy) => match measure("pgflip", proxy.port(), proxy.pid(), sessions) {
            Ok(figures) => results.push(figures),
            Err(e) => {
                println!("pgflip: FAILED: {e}\n{}", support::tail_file(&proxy.log_path(), 30));
                failed = true;
            }
        },
        Err(e) => {
            println!("pgflip: did not start: {e}");
            failed = true;
        }
    }

    match PgBouncer::start(cluster.port(), (sessions + WARM_UP_SESSIONS) as u32) {
        Ok(bouncer) => match measure("PgBouncer", bouncer.port(), bouncer.pid(), sessions) {
            Ok(figures) => results.push(figures),
            Err(e) => {
                println!("PgBouncer: FAILED: {e}\n{}", support::tail_file(&bouncer.log_path(), 30));
                failed = true;
            }
        },
        Err(e) => {
            println!("PgBouncer: did not start: {e}");
            failed = true;
        }
    }

    report(&results);
    Ok(!failed)
}

/// Opens `sessions` idle sessions through the proxy on `port` (process `pid`) and reads
/// its RSS before, while they idle, after each read a big answer, and once they closed.
fn measure(name: &'static str, port: u16, pid: u32, sessions: usize) -> Result<Figures, String> {
    let rss = || rss_kib(pid).ok_or_else(|| format!("cannot read VmRSS of {name} (pid {pid})"));
    let open = |count: usize| -> Result<Vec<RawConn>, String> {
        let mut conns = Vec::with_capacity(count);
        for i in 0..count {
            let mut conn = RawConn::connect_startup(port, "postgres", "postgres")
                .map_err(|e| format!("session {i}: startup: {e}"))?;
            conn.simple_query("SELECT 1").map_err(|e| format!("session {i}: SELECT 1: {e}"))?;
            conns.push(conn);
        }
        Ok(conns)
    };
    let warm = open(WARM_UP_SESSIONS)?;
    drop(warm);
    std::thread::sleep(SETTLE);
    let before_kib = rss()?;

    let mut conns = open(sessions)?;
    std::thread::sleep(SETTLE);
    let idle_kib = rss()?;

    let big = format!("SELECT repeat('x', {BIG_ANSWER_BYTES})");
    for (i, conn) in conns.iter_mut().enumerate() {
        let rows = conn.simple_query(&big).map_err(|e| format!("session {i}: big answer: {e}"))?;
        if rows.first().and_then(|row| row.first()).and_then(|v| v.as_ref()).map(String::len) != Some(BIG_ANSWER_BYTES)
        {
            return Err(format!("session {i}: the big answer came back wrong"));
        }
    }
    std::thread::sleep(SETTLE);
    let after_big_kib = rss()?;

    drop(conns);
    std::thread::sleep(SETTLE);
    let closed_kib = rss()?;
    Ok(Figures { name, before_kib, idle_kib, after_big_kib, closed_kib, sessions })
}

fn report(results: &[Figures]) {
    println!(
        "\n{:<10} {:>8} {:>10} {:>12} {:>12} {:>16} {:>12}",
        "proxy", "sessions", "RSS before", "RSS idle", "KiB/session", "idle after big", "all closed"
    );
    for f in results {
        println!(
            "{:<10} {:>8} {:>7} KiB {:>8} KiB {:>12.1} {:>12.1} KiB {:>8} KiB",
            f.name,
            f.sessions,
            f.before_kib,
            f.idle_kib,
            f.per_session(f.idle_kib),
            f.per_session(f.after_big_kib),
            f.closed_kib
        );
    }
    let find = |name: &str| results.iter().find(|f| f.name == name);
    if let Some(pgflip) = find("pgflip") {
        let per = pgflip.per_session(pgflip.idle_kib);
        let verdict = if per <= PGFLIP_TARGET_KIB { "met" } else { "NOT met" };
        println!("\npgflip: {per:.1} KiB per idle session; target <= {PGFLIP_TARGET_KIB} KiB: {verdict}");
        if let Some(bouncer) = find("PgBouncer") {
            let theirs = bouncer.per_session(bouncer.idle_kib);
            println!("pgflip - PgBouncer: {:.1} KiB per idle session ({:.1} vs {:.1})", per - theirs, per, theirs);
        }
    }
}
