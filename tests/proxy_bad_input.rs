//! Bad input from hand-written clients (garbage, absurd lengths, truncated and
//! unknown messages) and bad upstreams (down, dropping a session): each gets an
//! ErrorResponse or a close, memory stays flat, and the next client is served. Bad
//! configuration gets an error naming the key.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;
use support::wire::{frame, request_packet, startup_packet_version, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};
use support::{
    assert_select_one, free_port, shared_cluster, wait_until, PgError, Proxy, ProxyBuilder, RawConn, ReadOutcome,
};

/// Largest RSS growth tolerated after a bogus length (the flood sent is 32 MiB).
const RSS_SLACK_KIB: u64 = 12 * 1024;

/// Reads the proxy's reaction: an ErrorResponse whose SQLSTATE is in `allowed`,
/// or a close. Returns the error, if any.
fn expect_error_or_close(conn: &mut RawConn, allowed: &[&str], what: &str) -> Option<PgError> {
    conn.set_read_timeout(Duration::from_secs(10));
    match conn.next_outcome() {
        ReadOutcome::Error(e) => {
            assert!(allowed.contains(&e.code()), "{what}: SQLSTATE {} not in {allowed:?}: {e}", e.code());
            Some(e)
        }
        ReadOutcome::Closed(_) => None,
        ReadOutcome::Timeout => panic!("{what}: the proxy neither answered nor closed"),
        ReadOutcome::Message(m) => {
            panic!("{what}: expected an ErrorResponse or a close, got message {:?}", m.tag as char)
        }
    }
}

/// After an ErrorResponse the proxy must close the connection.
fn expect_close(conn: &mut RawConn, what: &str) {
    conn.set_read_timeout(Duration::from_secs(10));
    match conn.next_outcome() {
        ReadOutcome::Closed(_) => {}
        other => panic!("{what}: expected the connection to close, got {other:?}"),
    }
}

/// Writes up to 32 MiB of filler (stopping at the first error), as a client that
/// means its absurd length would; a proxy that buffers it shows in its RSS.
fn flood(conn: &mut RawConn) {
    let chunk = vec![b'x'; 256 * 1024];
    let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(2)));
    for _ in 0..128 {
        if conn.stream.write_all(&chunk).is_err() {
            break;
        }
    }
}

fn assert_rss_flat(proxy: &Proxy, before_kib: u64, what: &str) {
    let after_kib = proxy.rss_kib();
    assert!(after_kib <= before_kib + RSS_SLACK_KIB, "{what}: proxy RSS grew from {before_kib} KiB to {after_kib} KiB");
}

fn started(proxy: &Proxy) -> RawConn {
    RawConn::connect_startup(proxy.port(), "postgres", "postgres")
        .unwrap_or_else(|e| panic!("startup through the proxy: {e}"))
}

#[test]
fn garbage_instead_of_a_startup_packet() {
    let mut proxy = Proxy::start(shared_cluster());
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &["08P01"]),
        ("a length below 4", vec![0, 0, 0, 2], &["08P01"]),
        ("random high bytes", vec![0xab; 64], &["08P01"]),
        ("an unknown request code", vec![0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78], &["08P01", "0A000"]),
        ("a startup packet without a user", vec![0, 0, 0, 9, 0, 3, 0, 0, 0], &["08P01", "28000"]),
    ];
    for (what, bytes, allowed) in cases {
        let mut conn = RawConn::connect(proxy.port()).expect("connect");
        conn.send(&bytes).expect("send garbage");
        expect_error_or_close(&mut conn, allowed, what);
        drop(conn);
        assert!(proxy.is_running(), "proxy exited after {what}");
        assert_select_one(proxy.port(), &format!("after {what}"));
    }
}

#[test]
fn startup_length_of_two_gib_is_refused() {
    let proxy = Proxy::start(shared_cluster());
    assert_select_one(proxy.port(), "warm-up");
    let before = proxy.rss_kib();
    let mut conn = RawConn::connect(proxy.port()).expect("connect");
    let mut packet = 0x7fff_ffffu32.to_be_bytes().to_vec();
    packet.extend_from_slice(&196_608u32.to_be_bytes());
    packet.extend_from_slice(b"user\0postgres\0database\0postgres\0");
    conn.send(&packet).expect("send startup header");
    if expect_error_or_close(&mut conn, &["08P01"], "startup length 2^31-1").is_some() {
        expect_close(&mut conn, "startup length 2^31-1");
    }
    flood(&mut conn);
    drop(conn);
    std::thread::sleep(Duration::from_millis(200));
    assert_rss_flat(&proxy, before, "startup length 2^31-1");
    assert_select_one(proxy.port(), "after a startup length of 2^31-1");
}

#[test]
fn message_length_of_two_gib_after_startup_is_refused() {
    let proxy = Proxy::start(shared_cluster());
    assert_select_one(proxy.port(), "warm-up");
    let before = proxy.rss_kib();
    let mut conn = started(&proxy);
    let mut message = vec![b'Q'];
    message.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    message.extend_from_slice(b"SELECT 1");
    conn.send(&message).expect("send query header");
    if expect_error_or_close(&mut conn, &["08P01"], "message length 2^31-1").is_some() {
        expect_close(&mut conn, "message length 2^31-1");
    }
    flood(&mut conn);
    drop(conn);
    std::thread::sleep(Duration::from_millis(200));
    assert_rss_flat(&proxy, before, "message length 2^31-1");
    assert_select_one(proxy.port(), "after a message length of 2^31-1");
}

#[test]
fn truncated_messages_then_close_release_the_server_connection() {
    let cluster = shared_cluster();
    let mut proxy = Proxy::start(cluster);

    let mut conn = RawConn::connect(proxy.port()).expect("connect");
    conn.send(&[0, 0, 0, 100, 0, 3, 0, 0, b'u', b's']).expect("send half a startup packet");
    let _ = conn.stream.shutdown(Shutdown::Write);
    drop(conn);
    assert_select_one(proxy.port(), "after a truncated startup packet");

    let mut conn = RawConn::connect(proxy.port()).expect("connect");
    conn.startup_with(&[("user", "postgres"), ("database", "postgres"), ("application_name", "pgflip_truncated")])
        .unwrap_or_else(|e| panic!("startup: {e}"));
    let mut message = vec![b'Q'];
    message.extend_from_slice(&1000u32.to_be_bytes());
    message.extend_from_slice(b"SELEC");
    conn.send(&message).expect("send half a query");
    let _ = conn.stream.shutdown(Shutdown::Write);
    drop(conn);

    let count = || cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgflip_truncated'");
    let released = wait_until(Duration::from_secs(10), || (count() == "0").then_some(()));
    assert!(released.is_some(), "the server connection of a client that vanished mid-message is still open");
    assert!(proxy.is_running(), "proxy exited after a truncated message");
    assert_select_one(proxy.port(), "after a truncated query message");
}

#[test]
fn unknown_message_type_gets_an_error() {
    let proxy = Proxy::start(shared_cluster());
    let mut conn = started(&proxy);
    conn.send(&frame(b'z', b"????")).expect("send unknown message");
    expect_error_or_close(&mut conn, &["08P01"], "message type 'z'");
    drop(conn);
    assert_select_one(proxy.port(), "after an unknown message type");
}

#[test]
fn upstream_down_gives_08001_naming_the_upstream() {
    let closed_port = free_port();
    let mut proxy =
        ProxyBuilder::default().upstream("blue", &format!("postgres://127.0.0.1:{closed_port}")).active("blue").spawn();
    for attempt in 1..=3 {
        let err = match RawConn::connect_startup(proxy.port(), "postgres", "postgres") {
            Ok(_) => panic!("attempt {attempt}: a session started with the upstream down"),
            Err(e) => e,
        };
        assert_eq!(err.code(), "08001", "attempt {attempt}: {err}");
        assert!(err.message().contains("blue"), "attempt {attempt}: the message should name the upstream: {err}");
    }
    assert!(proxy.is_running(), "proxy exited with its upstream down");
    let (status, _) = proxy.admin_get("/healthz").expect("GET /healthz");
    assert_eq!(status, 200);
}

#[test]
fn upstream_dropping_a_session_is_reported_and_the_next_client_works() {
    let cluster = shared_cluster();
    let proxy = Proxy::start(cluster);
    let mut conn = started(&proxy);
    let server_pid =
        conn.query_value("SELECT pg_backend_pid()").unwrap_or_else(|e| panic!("pg_backend_pid: {e}")).expect("a pid");
    assert_eq!(cluster.psql(&format!("SELECT pg_terminate_backend({server_pid})")), "t");

    conn.set_read_timeout(Duration::from_secs(5));
    let reported = match conn.next_outcome() {
        ReadOutcome::Error(e) => e,
        ReadOutcome::Timeout => match conn.simple_query("SELECT 1") {
            Ok(_) => panic!("a query succeeded on a terminated server connection"),
            Err(e) => e,
        },
        other => panic!("expected an ErrorResponse after the server went away, got {other:?}"),
    };
    assert!(["08006", "57P01"].contains(&reported.code()), "expected 08006 or 57P01, got {reported}");
    drop(conn);
    assert_select_one(proxy.port(), "after the upstream dropped a session");
}

#[test]
fn ssl_and_gss_requests_are_declined_then_startup_works() {
    let proxy = Proxy::start(shared_cluster());
    let mut conn = RawConn::connect(proxy.port()).expect("connect");
    for (what, code) in [("GSSENCRequest", GSSENC_REQUEST_CODE), ("SSLRequest", SSL_REQUEST_CODE)] {
        conn.send(&request_packet(code)).unwrap_or_else(|e| panic!("send {what}: {e}"));
        let mut answer = [0u8; 1];
        conn.stream.read_exact(&mut answer).unwrap_or_else(|e| panic!("answer to {what}: {e}"));
        assert_eq!(answer[0], b'N', "{what} to a proxy without client TLS");
    }
    conn.startup("postgres", "postgres").unwrap_or_else(|e| panic!("startup after declined requests: {e}"));
    assert_eq!(conn.query_value("SELECT 1").expect("SELECT 1").as_deref(), Some("1"));
}

#[test]
fn newer_protocol_minor_version_is_negotiated_down() {
    let proxy = Proxy::start(shared_cluster());
    let mut conn = RawConn::connect(proxy.port()).expect("connect");
    conn.send(&startup_packet_version(0x0003_0002, &[("user", "postgres"), ("database", "postgres")]))
        .expect("send startup for protocol 3.2");
    let mut negotiated = None;
    loop {
        match conn.next_outcome() {
            ReadOutcome::Message(m) if m.tag == b'v' => {
                negotiated = m.body.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            ReadOutcome::Message(m) if m.tag == b'Z' => break,
            ReadOutcome::Message(_) => {}
            other => panic!("startup with protocol 3.2: {other:?}"),
        }
    }
    let minor = negotiated.expect("a NegotiateProtocolVersion message for protocol 3.2");
    assert!(minor < 2, "NegotiateProtocolVersion offered minor version {minor}");
    assert_eq!(conn.query_value("SELECT 1").expect("SELECT 1").as_deref(), Some("1"));
}

#[test]
fn check_config_shows_the_standby_listener_or_names_the_bad_key() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pgflip"))
            .arg("check-config")
            .args(["--upstream", "blue=postgres://app@127.0.0.1:5432/db", "--upstream"])
            .args(["green=postgres://app@127.0.0.1:5433/db", "--active", "blue"])
            .args(args)
            .output()
            .expect("run pgflip check-config")
    };
    let out = run(&["--listen-standby", "127.0.0.1:6433", "--standby-fallback", "refuse", "--max-standby-lag", "10"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("standby       127.0.0.1:6433 (fallback refuse, max lag 10 s)"), "{text}");
    let out = run(&["--max-standby-lag", "10"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("config key `max_standby_lag`: needs listen_standby"), "{text}");
}
