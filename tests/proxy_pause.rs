//! Pausing: sessions park at their next transaction boundary behind the gate, a resume or
//! the lease lets them go on, and sessions inside a transaction block the pause or are
//! terminated, by policy.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{pgbench_at, shared_cluster, Proxy, ProxyBuilder, RawConn};

fn connect(proxy: &Proxy) -> RawConn {
    RawConn::connect_startup(proxy.port(), "postgres", "postgres").unwrap_or_else(|e| panic!("startup: {e}"))
}

fn post(proxy: &Proxy, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = proxy.admin_post(path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path} answered non-JSON {text:?}: {e}"));
    (status, json)
}

fn status(proxy: &Proxy) -> Value {
    let (code, text) = proxy.admin_get("/v1/status").expect("GET /v1/status");
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).expect("status JSON")
}

/// Runs `sql` on `conn` in a thread; the result arrives on the returned channel.
fn query_in_background(
    mut conn: RawConn,
    sql: &'static str,
) -> mpsc::Receiver<(Result<Option<String>, String>, RawConn)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let result = conn.query_value(sql).map_err(|e| e.to_string());
        let _ = tx.send((result, conn));
    });
    rx
}

#[test]
fn idle_sessions_park_and_a_resume_releases_their_next_query() {
    let proxy = Proxy::start(shared_cluster());
    let mut a = connect(&proxy);
    let b = connect(&proxy);
    assert_eq!(a.query_value("SELECT 1").unwrap().as_deref(), Some("1"));

    let (code, answer) = post(&proxy, "/v1/pause", r#"{"drain_timeout_ms": 5000, "lease_ms": 20000}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["paused"], true);
    assert_eq!(answer["parked"], 2, "{answer}");
    let st = status(&proxy);
    assert_eq!(st["paused"], true);
    assert_eq!(st["sessions_by_state"]["parked"], 2, "{st}");
    assert!(st["lease_ms_left"].as_u64().unwrap() > 10_000, "{st}");

    let pending = query_in_background(b, "SELECT 'released'");
    assert!(pending.recv_timeout(Duration::from_millis(500)).is_err(), "a parked session's query ran during the pause");

    let (code, answer) = post(&proxy, "/v1/resume", "");
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["resumed"], true);
    assert!(answer["held_ms"].as_u64().unwrap() >= 500, "{answer}");
    let (result, _b) = pending.recv_timeout(Duration::from_secs(10)).expect("the held query after resume");
    assert_eq!(result.unwrap().as_deref(), Some("released"));
    assert_eq!(a.query_value("SELECT 2").unwrap().as_deref(), Some("2"));
    assert_eq!(status(&proxy)["paused"], false);
}

#[test]
fn a_session_inside_a_transaction_blocks_the_pause_and_abort_resumes_traffic() {
    let proxy = Proxy::start(shared_cluster());
    let mut tx = connect(&proxy);
    tx.query_value("BEGIN").unwrap();
    tx.query_value("SELECT 'inside'").unwrap();
    let mut other = connect(&proxy);

    let started = Instant::now();
    let (code, answer) = post(&proxy, "/v1/pause", r#"{"drain_timeout_ms": 300, "on_timeout": "abort"}"#);
    assert_eq!(code, 409, "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(answer["paused"], false);
    let blockers = answer["blockers"].as_array().expect("blockers");
    assert_eq!(blockers.len(), 1, "{answer}");
    assert_eq!(blockers[0]["state"], "in_transaction");
    assert_eq!(blockers[0]["query"], "SELECT … (15 bytes)", "the text is hidden by default");
    let pid = tx.query_value("SELECT pg_backend_pid()").unwrap().unwrap();
    assert_eq!(blockers[0]["backend_pid"].to_string(), pid);

    assert_eq!(status(&proxy)["paused"], false, "an aborted pause leaves the gate open");
    assert_eq!(other.query_value("SELECT 'flowing'").unwrap().as_deref(), Some("flowing"));
    assert_eq!(tx.query_value("COMMIT").unwrap(), None);
}

#[test]
fn terminate_policy_ends_the_blocker_with_57p01_and_parks_the_rest() {
    let proxy = Proxy::start(shared_cluster());
    let mut tx = connect(&proxy);
    tx.query_value("BEGIN").unwrap();
    let mut idle = connect(&proxy);
    idle.query_value("SELECT 1").unwrap();

    let (code, answer) = post(&proxy, "/v1/pause", r#"{"drain_timeout_ms": 300, "on_timeout": "terminate"}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["terminated"].as_array().map(Vec::len), Some(1), "{answer}");
    assert_eq!(answer["parked"], 1, "{answer}");
    let err = tx.query_value("SELECT 'after'").expect_err("the terminated session still worked");
    assert_eq!(err.code(), "57P01", "{err}");

    post(&proxy, "/v1/resume", "{}");
    assert_eq!(idle.query_value("SELECT 'parked one goes on'").unwrap().as_deref(), Some("parked one goes on"));
}

#[test]
fn the_lease_resumes_traffic_when_no_resume_comes() {
    let proxy = Proxy::start(shared_cluster());
    let conn = connect(&proxy);
    let (code, answer) = post(&proxy, "/v1/pause", r#"{"lease_ms": 700}"#);
    assert_eq!(code, 200, "{answer}");
    let started = Instant::now();
    let pending = query_in_background(conn, "SELECT 'after the lease'");
    let (result, _conn) = pending.recv_timeout(Duration::from_secs(10)).expect("query after the lease ended");
    assert_eq!(result.unwrap().as_deref(), Some("after the lease"));
    assert!(started.elapsed() >= Duration::from_millis(400), "the query was not held by the pause");
    assert_eq!(status(&proxy)["paused"], false);
}

#[test]
fn bad_requests_get_clear_json_errors() {
    let proxy = ProxyBuilder::for_cluster(shared_cluster()).admin_token("s3cret").spawn();
    let (code, text) = proxy.admin_without_token("POST", "/v1/pause", "{}").unwrap();
    assert_eq!(code, 401, "{text}");
    let (code, text) = proxy.admin_post_with_token("/v1/pause", "{}", "wrong").unwrap();
    assert_eq!(code, 403, "{text}");
    let (code, text) = proxy.admin_post_with_token("/v1/pause", "{not json", "s3cret").unwrap();
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("invalid JSON"), "{text}");
    let (code, text) = proxy.admin_post_with_token("/v1/pause", r#"{"drain_timeout": 5}"#, "s3cret").unwrap();
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("drain_timeout"), "{text}");
    let (code, text) = proxy.admin_post_with_token("/v1/resume", r#"{"generation": 99}"#, "s3cret").unwrap();
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("generation"), "{text}");
    let (code, _) = proxy.admin_get("/v1/pause").unwrap();
    assert_eq!(code, 405);
    assert!(proxy.output_shows("pgflip::audit", Duration::from_secs(5)), "mutating calls are audited");
}

#[test]
fn pgbench_runs_clean_through_repeated_pauses() {
    let cluster = shared_cluster();
    let proxy = Proxy::start(cluster);
    let port = proxy.port();
    let init = pgbench_at(cluster.port(), &["-i", "-s", "1", "-q"]);
    init.assert_success("pgbench -i");
    let bench = thread::spawn(move || pgbench_at(port, &["-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", "6"]));
    thread::sleep(Duration::from_millis(800));
    let mut paused = 0;
    for _ in 0..10 {
        let (code, answer) = post(&proxy, "/v1/pause", r#"{"drain_timeout_ms": 3000}"#);
        assert_eq!(code, 200, "{answer}");
        paused += answer["parked"].as_u64().unwrap();
        thread::sleep(Duration::from_millis(50));
        post(&proxy, "/v1/resume", "");
        thread::sleep(Duration::from_millis(200));
    }
    assert!(paused > 0, "no session was ever parked");
    let out = bench.join().unwrap();
    out.assert_success("pgbench through pauses");
    let summary = support::PgbenchSummary::parse(&out.stdout).expect("pgbench summary");
    assert_eq!(summary.failed, 0, "{}", out.stdout);
    assert!(summary.processed > 0);
}

#[test]
fn a_session_that_ran_nothing_since_its_last_capture_is_not_captured_again() {
    let cluster = support::Cluster::start_with(support::ClusterOptions::default().conf("log_statement = 'all'"));
    let proxy = Proxy::start(&cluster);
    let mut a = connect(&proxy);
    assert_eq!(a.query_value("SET search_path = public").unwrap(), None);
    // Each capture is one logged Query that starts so (a DETAIL repeats its text as
    // "prepare:" when it prepares, so count the statement lines only).
    let captures =
        || cluster.log_tail(100_000).matches("statement: SET TRANSACTION ISOLATION LEVEL READ COMMITTED").count();
    let pause = || {
        let (code, answer) = post(&proxy, "/v1/pause", r#"{"lease_ms": 20000}"#);
        assert_eq!(code, 200, "{answer}");
        assert_eq!(post(&proxy, "/v1/resume", "").0, 200);
    };
    // One when the connection was set up (it plans the statement), one at the first pause.
    let at_setup = captures();
    pause();
    assert_eq!(captures(), at_setup + 1, "the first pause reads the state");
    pause();
    pause();
    assert_eq!(captures(), at_setup + 1, "the session ran nothing since: its capture stands");
    assert_eq!(a.query_value("SHOW search_path").unwrap().as_deref(), Some("public"));
    pause();
    assert_eq!(captures(), at_setup + 2, "it ran a query: the next pause reads the state again");
}
