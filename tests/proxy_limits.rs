//! Limits on clients: connections that never log in are closed at `client_login_timeout`
//! and, past `max_clients_logging_in`, the oldest first, while a real client is served all
//! along; past `max_client_connections` a new client gets 53300; a parked session's client
//! that sends far more than `max_parked_bytes` is held back (the sidecar's memory stays
//! flat) and its data arrives after the resume; claimed lengths cost nothing until their
//! bytes come.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::wire::{frame, query_packet};
use support::{metric_sum, shared_cluster, Proxy, ProxyBuilder, RawConn, ReadOutcome};

/// Silent connections of the flood, unless the file descriptor limit allows fewer.
const FLOOD: usize = 2000;
/// Connections opened between two short pauses of the flood.
const FLOOD_BATCH: usize = 50;

fn limit_hits(proxy: &Proxy, limit: &str) -> f64 {
    let (code, text) = proxy.admin_get("/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{text}");
    metric_sum(&text, "pgflip_client_limits_total", &format!("limit=\"{limit}\""))
}

/// The soft limit on open files of this process, from /proc/self/limits.
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(1024)
}

/// A field of /proc/PID/status in KiB (VmRSS, VmSize).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Reads until the proxy closes the connection; returns the bytes it sent first.
fn read_to_close(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, String> {
    stream.set_read_timeout(Some(within)).expect("set_read_timeout");
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("{e} (after {} bytes)", got.len())),
        }
    }
}

/// The SQLSTATE of an ErrorResponse at the front of `bytes`.
fn sqlstate(bytes: &[u8]) -> Option<String> {
    if bytes.first() != Some(&b'E') || bytes.len() < 5 {
        return None;
    }
    let body = &bytes[5..];
    let mut fields = body.split(|&b| b == 0);
    fields.find_map(|field| field.strip_prefix(b"C").map(|code| String::from_utf8_lossy(code).into_owned()))
}

#[test]
fn silent_connections_are_closed_at_the_login_timeout_the_oldest_first_while_a_client_is_served() {
    // Room for the flood and this test's own files, from the soft limit the test was given.
    let flood = FLOOD.min(open_files_limit().saturating_sub(200));
    if flood < FLOOD {
        eprintln!("the open files limit allows a flood of {flood} connections, not {FLOOD}");
    }
    let max_logging_in = flood / 4;
    let proxy = ProxyBuilder::for_cluster(shared_cluster())
        .arg("--client-login-timeout")
        .arg("2s")
        .arg("--max-clients-logging-in")
        .arg(&max_logging_in.to_string())
        .spawn();

    // A real client logs in, queries and leaves, over and over, until the flood is gone.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, port) = (stop.clone(), proxy.port());
        thread::spawn(move || {
            let mut served = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut conn = RawConn::connect_startup(port, "postgres", "postgres")
                    .unwrap_or_else(|e| panic!("a real client during the flood, after {served} served: {e}"));
                let value = conn.query_value("SELECT 1").unwrap_or_else(|e| panic!("SELECT 1 during the flood: {e}"));
                assert_eq!(value.as_deref(), Some("1"));
                conn.terminate();
                served += 1;
                thread::sleep(Duration::from_millis(20));
            }
            served
        })
    };

    let addr = SocketAddr::from(([127, 0, 0, 1], proxy.port()));
    let mut silent = Vec::with_capacity(flood);
    for i in 0..flood {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("silent connection {i}: {e}"));
        silent.push(stream);
        if i % FLOOD_BATCH == FLOOD_BATCH - 1 {
            thread::sleep(Duration::from_millis(10));
        }
    }
    for (i, stream) in silent.iter_mut().enumerate() {
        let said = read_to_close(stream, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("silent connection {i} was not closed: {e}"));
        if let Some(code) = sqlstate(&said) {
            assert!(["53300", "08P01"].contains(&code.as_str()), "silent connection {i} was told {code}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let served = client.join().unwrap_or_else(|_| panic!("the real client failed during the flood"));
    assert!(served > 0, "the real client was never served");

    let (timed_out, displaced) = (limit_hits(&proxy, "login_timeout"), limit_hits(&proxy, "logging_in"));
    eprintln!(
        "{flood} silent connections: {timed_out} closed at the login timeout, {displaced} dropped as the oldest; \
         the real client was served {served} times meanwhile"
    );
    assert!(timed_out >= 1.0, "no connection reached the login timeout");
    assert!(displaced >= 1.0, "no connection was dropped as the oldest logging in");
    assert_eq!(timed_out + displaced, flood as f64, "every silent connection, and only those, was shed");
    support::assert_select_one(proxy.port(), "after the flood");
}

#[test]
fn past_max_client_connections_a_new_client_gets_53300() {
    let proxy = ProxyBuilder::for_cluster(shared_cluster()).arg("--max-client-connections").arg("2").spawn();
    let first = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("first client");
    let _second = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("second client");
    let refused = match RawConn::connect_startup(proxy.port(), "postgres", "postgres") {
        Ok(_) => panic!("a third client logged in past max_client_connections = 2"),
        Err(e) => e,
    };
    assert_eq!(refused.code(), "53300", "{refused}");
    assert_eq!(refused.severity(), "FATAL", "{refused}");
    assert!(refused.message().contains("too many clients"), "{refused}");
    assert!(refused.message().contains("2") && refused.message().contains("max_client_connections"), "{refused}");
    assert_eq!(limit_hits(&proxy, "client_connections"), 1.0);

    first.terminate();
    let again = support::wait_until(Duration::from_secs(10), || {
        RawConn::connect_startup(proxy.port(), "postgres", "postgres").ok()
    });
    let mut again = again.expect("a client logs in once a place is free");
    assert_eq!(again.query_value("SELECT 1").expect("SELECT 1").as_deref(), Some("1"));
}

/// Rows of the parked client's COPY: about 200 MB of lines of 1 KB.
const COPY_ROWS: u64 = 200_000;
const PAD: usize = 1000;

#[test]
fn a_parked_client_sending_200_mb_is_held_back_and_its_copy_runs_after_the_resume() {
    let cluster = shared_cluster();
    cluster.psql("DROP TABLE IF EXISTS limits_sink; CREATE UNLOGGED TABLE limits_sink(id bigint, pad text)");
    let proxy = ProxyBuilder::for_cluster(cluster).spawn();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    assert_eq!(conn.query_value("SELECT 1").expect("SELECT 1").as_deref(), Some("1"));

    let (code, text) = proxy.admin_post("/v1/pause", r#"{"drain_timeout_ms": 10000, "lease_ms": 120000}"#).unwrap();
    assert_eq!(code, 200, "pause: {text}");
    let rss_before = proxy.rss_kib();

    // Every thousandth row is kept: the server parses all of them, stores 200.
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let mut stream = conn.stream.try_clone().expect("clone the client socket");
        let written = written.clone();
        thread::spawn(move || {
            stream.set_write_timeout(Some(Duration::from_secs(120))).expect("set_write_timeout");
            let send = |stream: &mut TcpStream, bytes: &[u8]| {
                stream.write_all(bytes).expect("write to the proxy");
                written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            };
            send(&mut stream, &query_packet("COPY limits_sink FROM STDIN WHERE id % 1000 = 0"));
            let pad = "x".repeat(PAD);
            let mut lines = String::new();
            for id in 0..COPY_ROWS {
                lines.push_str(&format!("{id}\t{pad}\n"));
                if lines.len() >= 256 * 1024 || id == COPY_ROWS - 1 {
                    send(&mut stream, &frame(b'd', lines.as_bytes()));
                    lines.clear();
                }
            }
            send(&mut stream, &frame(b'c', b""));
        })
    };

    // Held back: the writer stalls far short of the end, and the proxy's memory stays flat.
    let total = COPY_ROWS * (PAD as u64 + 8);
    let mut last = (0, Instant::now());
    let stalled = support::wait_until(Duration::from_secs(60), || {
        let now = written.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
            return None;
        }
        (last.1.elapsed() > Duration::from_millis(500)).then_some(now)
    });
    let stalled = stalled.expect("the writer neither stalled nor finished");
    assert!(stalled < total / 4, "the proxy read {stalled} bytes from a parked client");
    let rss_held = proxy.rss_kib();
    assert!(
        rss_held < rss_before + 64 * 1024,
        "the proxy's RSS grew from {rss_before} KiB to {rss_held} KiB while holding a parked client back"
    );
    assert!(limit_hits(&proxy, "parked_bytes") >= 1.0);
    eprintln!(
        "parked: the client got {stalled} of {total} bytes in; pgflip's RSS {rss_before} KiB before, {rss_held} KiB held"
    );

    let (code, text) = proxy.admin_post("/v1/resume", "{}").unwrap();
    assert_eq!(code, 200, "resume: {text}");
    writer.join().expect("the writer finished after the resume");

    conn.set_read_timeout(Duration::from_secs(60));
    let mut tags = Vec::new();
    let mut completed = None;
    loop {
        match conn.next_outcome() {
            ReadOutcome::Message(m) if m.tag == b'Z' => break,
            ReadOutcome::Message(m) => {
                if m.tag == b'C' {
                    completed = Some(String::from_utf8_lossy(&m.body).trim_end_matches('\0').to_string());
                }
                tags.push(m.tag as char);
            }
            other => panic!("the COPY after the resume: {other:?} after {tags:?}"),
        }
    }
    assert_eq!(completed.as_deref(), Some("COPY 200"), "messages: {tags:?}");
    assert_eq!(cluster.psql("SELECT count(*) FROM limits_sink"), "200");
    let rss_after = proxy.rss_kib();
    assert!(rss_after < rss_before + 64 * 1024, "RSS {rss_before} KiB before, {rss_after} KiB after the COPY");
    eprintln!("after the resume: COPY 200, pgflip's RSS {rss_after} KiB");
}

#[test]
fn claimed_lengths_cost_nothing_until_their_bytes_come_and_oversized_ones_are_refused() {
    let proxy = ProxyBuilder::for_cluster(shared_cluster()).spawn();
    support::assert_select_one(proxy.port(), "warm-up");
    let (rss_before, size_before) = (proxy.rss_kib(), status_kib(proxy.pid(), "VmSize:"));

    // Under the 1 GiB cap, so legal: each claims 900 MB and sends 64 KiB of it.
    let mut claims = Vec::new();
    for _ in 0..8 {
        let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
        let mut message = vec![b'Q'];
        message.extend_from_slice(&900_000_000u32.to_be_bytes());
        message.extend_from_slice(&vec![b' '; 64 * 1024]);
        conn.send(&message).expect("send a query header and the start of its text");
        claims.push(conn);
    }
    // A startup packet of 2 GiB and, through a proxy with a 1 MiB cap, a message of 100 MB.
    let mut startup = RawConn::connect(proxy.port()).expect("connect");
    let mut packet = 0x7fff_ffffu32.to_be_bytes().to_vec();
    packet.extend_from_slice(&196_608u32.to_be_bytes());
    startup.send(&packet).expect("send a startup header");
    let capped = ProxyBuilder::for_cluster(shared_cluster()).arg("--max-message-size").arg("1048576").spawn();
    let mut oversized = RawConn::connect_startup(capped.port(), "postgres", "postgres").expect("startup");
    let mut message = vec![b'Q'];
    message.extend_from_slice(&100_000_000u32.to_be_bytes());
    message.extend_from_slice(b"SELECT 1");
    oversized.send(&message).expect("send an oversized query header");

    for (conn, what) in [(&mut startup, "startup length 2^31-1"), (&mut oversized, "message length 100 MB")] {
        conn.set_read_timeout(Duration::from_secs(10));
        match conn.next_outcome() {
            ReadOutcome::Error(e) => assert_eq!(e.code(), "08P01", "{what}: {e}"),
            other => panic!("{what}: expected 08P01, got {other:?}"),
        }
    }
    assert!(limit_hits(&proxy, "message_size") >= 1.0);
    assert!(limit_hits(&capped, "message_size") >= 1.0);

    thread::sleep(Duration::from_millis(300));
    let (rss, size) = (proxy.rss_kib(), status_kib(proxy.pid(), "VmSize:"));
    assert!(rss < rss_before + 16 * 1024, "RSS grew from {rss_before} KiB to {rss} KiB");
    assert!(
        size < size_before + 256 * 1024,
        "address space grew from {size_before} KiB to {size} KiB: claimed lengths were reserved"
    );
    drop(claims);
    support::assert_select_one(proxy.port(), "after the claimed lengths");
    support::assert_select_one(capped.port(), "after an oversized message");
}
