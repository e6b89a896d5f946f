//! pgbench through the proxy in each query mode: it must finish with exit 0 and
//! no failed transaction. Each mode has its own database so the runs can overlap.

mod support;

use support::{pgbench, shared_cluster, PgbenchSummary, Proxy};

fn run_mode(mode: &str) {
    let cluster = shared_cluster();
    let dbname = format!("bench_{mode}");
    cluster.create_database(&dbname);
    let proxy = Proxy::start(cluster);
    let port = proxy.port().to_string();
    let conn = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];

    let mut init = vec!["-i", "-s", "1", "-q"];
    init.extend_from_slice(&conn);
    init.push(&dbname);
    pgbench(&init).assert_success("pgbench -i through the proxy");
    let accounts = cluster.psql_db(&dbname, "SELECT count(*) FROM pgbench_accounts");
    assert_eq!(accounts, "100000", "pgbench -i -s 1 loads 100000 accounts");

    let mut run = vec!["-M", mode, "-c", "8", "-j", "2", "-T", "5", "-n"];
    run.extend_from_slice(&conn);
    run.push(&dbname);
    let out = pgbench(&run);
    out.assert_success(&format!("pgbench -M {mode} through the proxy"));
    let summary =
        PgbenchSummary::parse(&out.stdout).unwrap_or_else(|| panic!("no pgbench summary in:\n{}", out.stdout));
    assert_eq!(summary.failed, 0, "failed transactions:\n{}\n{}", out.stdout, out.stderr);
    assert!(summary.processed > 0, "no transaction processed:\n{}", out.stdout);
    let history: u64 = cluster.psql_db(&dbname, "SELECT count(*) FROM pgbench_history").parse().expect("history count");
    assert_eq!(history, summary.processed, "every processed transaction left its pgbench_history row");
}

#[test]
fn pgbench_simple_protocol() {
    run_mode("simple");
}

#[test]
fn pgbench_extended_protocol() {
    run_mode("extended");
}

#[test]
fn pgbench_prepared_statements() {
    run_mode("prepared");
}

#[test]
fn pgbench_summary_parser_reads_counts() {
    let stdout = "\
query mode: simple
number of transactions actually processed: 1234
number of failed transactions: 5 (0.404%)
latency average = 1.0 ms
";
    assert_eq!(PgbenchSummary::parse(stdout), Some(PgbenchSummary { processed: 1234, failed: 5 }));
    let with_total = "number of transactions actually processed: 80/80\n";
    assert_eq!(PgbenchSummary::parse(with_total), Some(PgbenchSummary { processed: 80, failed: 0 }));
}
