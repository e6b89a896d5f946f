//! Cancel routing with hand-written clients: the proxy hands out its own
//! BackendKeyData, and a CancelRequest with a wrong pid or key cancels nothing.

mod support;

use std::time::Duration;
use support::wire::{cancel_packet, query_packet};
use support::{shared_cluster, Proxy, RawConn, ReadOutcome};

#[test]
fn backend_key_data_is_the_proxys_own() {
    let proxy = Proxy::start(shared_cluster());
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").unwrap_or_else(|e| panic!("{e}"));
    let (pid, _) = conn.backend_key.expect("BackendKeyData during startup");
    let server_pid: u32 = conn
        .query_value("SELECT pg_backend_pid()")
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a pid")
        .parse()
        .expect("numeric pid");
    assert_ne!(pid, server_pid, "the client must not see the server's own BackendKeyData");
}

#[test]
fn cancel_with_a_wrong_key_is_ignored() {
    let proxy = Proxy::start(shared_cluster());
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").unwrap_or_else(|e| panic!("{e}"));
    let (pid, key) = conn.backend_key.expect("BackendKeyData during startup");
    conn.send(&query_packet("SELECT pg_sleep(1), 'slept'")).expect("send query");
    std::thread::sleep(Duration::from_millis(200));
    for (what, pid, key) in [("wrong key", pid, key ^ 0x5a5a), ("wrong pid", pid ^ 0x5a5a, key)] {
        let mut cancel = RawConn::connect(proxy.port()).expect("connect for cancel");
        cancel.send(&cancel_packet(pid, key)).expect("send CancelRequest");
        match cancel.next_outcome() {
            ReadOutcome::Closed(_) => {}
            other => panic!("{what}: a CancelRequest gets no answer but a close, got {other:?}"),
        }
    }
    conn.set_read_timeout(Duration::from_secs(10));
    let mut slept = false;
    loop {
        match conn.next_outcome() {
            ReadOutcome::Message(m) if m.tag == b'D' => slept = String::from_utf8_lossy(&m.body).contains("slept"),
            ReadOutcome::Message(m) if m.tag == b'Z' => break,
            ReadOutcome::Message(_) => {}
            ReadOutcome::Error(e) => panic!("a CancelRequest with a wrong key cancelled the query: {e}"),
            other => panic!("query did not finish: {other:?}"),
        }
    }
    assert!(slept, "the query's row arrived");
}
