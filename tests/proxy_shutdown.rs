//! SIGTERM: the proxy stops accepting, lets open sessions work through the grace
//! period, then ends them with FATAL 57P01 and exits 0.

mod support;

use std::time::Duration;
use support::{shared_cluster, wait_until, Proxy, ProxyBuilder, RawConn, ReadOutcome};

/// True when a new client can no longer get a session: connection refused, or an
/// error or close before ReadyForQuery.
fn new_session_refused(port: u16) -> bool {
    match RawConn::connect(port) {
        Err(_) => true,
        Ok(mut conn) => {
            conn.set_read_timeout(Duration::from_secs(2));
            conn.startup("postgres", "postgres").is_err()
        }
    }
}

#[test]
fn sigterm_drains_then_terminates_idle_sessions_and_exits_zero() {
    let cluster = shared_cluster();
    let mut proxy = ProxyBuilder::for_cluster(cluster).shutdown_grace(2).spawn();
    let mut open =
        RawConn::connect_startup(proxy.port(), "postgres", "postgres").unwrap_or_else(|e| panic!("startup: {e}"));
    assert_eq!(open.query_value("SELECT 1").expect("query before SIGTERM").as_deref(), Some("1"));

    proxy.sigterm();
    assert_eq!(
        open.query_value("SELECT 'still here'")
            .unwrap_or_else(|e| panic!("query during the grace period: {e}"))
            .as_deref(),
        Some("still here")
    );
    let refused = wait_until(Duration::from_millis(1500), || new_session_refused(proxy.port()).then_some(()));
    assert!(refused.is_some(), "a new client still got a session after SIGTERM");
    if let Ok((status, _)) = proxy.admin_get("/readyz") {
        assert_eq!(status, 503, "/readyz while shutting down");
    }

    open.set_read_timeout(Duration::from_secs(15));
    match open.next_outcome() {
        ReadOutcome::Error(e) => {
            assert_eq!(e.code(), "57P01", "{e}");
            assert_eq!(e.severity(), "FATAL", "{e}");
        }
        other => panic!("expected FATAL 57P01 at the end of the grace period, got {other:?}"),
    }
    let status = proxy.wait_exit(Duration::from_secs(15)).expect("proxy still running after the grace period");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_without_sessions_exits_zero() {
    let mut proxy = Proxy::start(shared_cluster());
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(15)).expect("proxy still running after SIGTERM with no sessions");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_lets_a_running_query_finish_within_the_grace_period() {
    let cluster = shared_cluster();
    let mut proxy = ProxyBuilder::for_cluster(cluster).shutdown_grace(10).spawn();
    let mut open =
        RawConn::connect_startup(proxy.port(), "postgres", "postgres").unwrap_or_else(|e| panic!("startup: {e}"));
    open.send(&support::wire::query_packet("SELECT pg_sleep(1), 'finished'")).expect("send query");
    std::thread::sleep(Duration::from_millis(200));
    proxy.sigterm();
    let mut value = None;
    loop {
        match open.next_outcome() {
            ReadOutcome::Message(m) if m.tag == b'D' => {
                value = Some(String::from_utf8_lossy(&m.body).contains("finished"))
            }
            ReadOutcome::Message(m) if m.tag == b'Z' => break,
            ReadOutcome::Message(_) => {}
            other => panic!("the running query did not finish: {other:?}"),
        }
    }
    assert_eq!(value, Some(true), "the query's row arrived");
    open.terminate();
    let status = proxy.wait_exit(Duration::from_secs(15)).expect("proxy still running after its last session left");
    assert!(status.success(), "exit status {status}");
}
