//! What happens at the edges of a switch: logins under way while it runs end on its target
//! before their first query; a cancel of a request the pause holds answers it with 57014
//! and it never runs; a client that pipelines transactions parks at the first boundary.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Cluster, Proxy, ProxyBuilder, RawConn};

fn clusters() -> (&'static Cluster, &'static Cluster) {
    support::blue_and_green()
}

fn proxy() -> Proxy {
    let (blue, green) = clusters();
    ProxyBuilder::for_cluster(blue).upstream("green", &green.url()).spawn()
}

fn post(proxy: &Proxy, path: &str, body: &str) -> (u16, Value) {
    proxy.admin_post_json(path, body)
}

fn side(conn: &mut RawConn) -> String {
    conn.query_value("SELECT side FROM marker").expect("marker").expect("a marker row")
}

/// A TCP relay in front of `port` whose connections wait `delay` before the server's first
/// bytes reach the client: logins through it take that long.
fn slow_relay(port: u16, delay: Duration) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let relay_port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", port)) else { continue };
            let (mut client_in, mut server_out) = (client.try_clone().expect("dup"), server.try_clone().expect("dup"));
            thread::spawn(move || std::io::copy(&mut client_in, &mut server_out));
            let (mut server_in, mut client_out) = (server, client);
            thread::spawn(move || {
                let mut first = [0u8; 1];
                if std::io::Read::read(&mut server_in, &mut first).unwrap_or(0) == 1 {
                    thread::sleep(delay);
                    let _ = std::io::Write::write_all(&mut client_out, &first);
                    let _ = std::io::copy(&mut server_in, &mut client_out);
                }
            });
        }
    });
    relay_port
}

#[test]
fn logins_racing_a_switch_all_end_on_its_target() {
    let (blue, green) = clusters();
    // Logins to blue take 300 ms: those that begin while the fleet is paused end after the
    // switch has repointed and resumed.
    let relay = slow_relay(blue.port(), Duration::from_millis(300));
    let slow_blue = format!("postgres://postgres@127.0.0.1:{relay}/postgres");
    let proxy = Arc::new(
        ProxyBuilder::default().upstream("blue", &slow_blue).active("blue").upstream("green", &green.url()).spawn(),
    );
    let mut early: Vec<RawConn> =
        (0..4).map(|_| RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup")).collect();
    // A controller's way: pause the fleet, switch it, resume it.
    let (code, answer) = post(&proxy, "/v1/pause", r#"{"lease_ms": 30000}"#);
    assert_eq!(code, 200, "{answer}");
    const LOGINS: usize = 20;
    let answered = Arc::new(AtomicBool::new(false));
    let mut logins = Vec::new();
    for i in 0..LOGINS {
        let (proxy, answered) = (proxy.clone(), answered.clone());
        logins.push(thread::spawn(move || {
            thread::sleep(Duration::from_millis(5 * i as u64));
            let began_before_answer = !answered.load(Ordering::SeqCst);
            let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("login");
            while !answered.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            (began_before_answer, side(&mut conn))
        }));
    }
    thread::sleep(Duration::from_millis(60));
    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "green"}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["failed"], 0, "{answer}");
    let (code, answer) = post(&proxy, "/v1/resume", "{}");
    assert_eq!(code, 200, "{answer}");
    answered.store(true, Ordering::SeqCst);
    let mut during = 0;
    for login in logins {
        let (began_before_answer, side) = login.join().expect("login thread");
        during += usize::from(began_before_answer);
        assert_eq!(side, "green", "a login that began before the switch answered ({began_before_answer}) is on green");
    }
    assert!(during >= 10, "only {during} logins began while the switch ran: the test did not race it");
    for conn in &mut early {
        assert_eq!(side(conn), "green");
    }
}

/// Sends an INSERT that the closed gate holds, then cancels it.
fn held_insert_cancelled(proxy: &Proxy, conn: &mut RawConn, key: i64) -> Option<String> {
    conn.send(&support::wire::query_packet(&format!("INSERT INTO held_rows VALUES ({key})"))).expect("send INSERT");
    thread::sleep(Duration::from_millis(300));
    let (pid, secret) = conn.backend_key.expect("BackendKeyData");
    let mut cancel = RawConn::connect(proxy.port()).expect("cancel connection");
    cancel.send(&support::wire::cancel_packet(pid, secret)).expect("send CancelRequest");
    let mut error = None;
    loop {
        match conn.read_message().expect("read").expect("open") {
            m if m.tag == b'E' => error = Some(support::PgError::parse(&m.body).code().to_string()),
            m if m.tag == b'Z' => return error,
            _ => {}
        }
    }
}

#[test]
fn a_cancelled_held_request_answers_57014_and_never_runs() {
    let (blue, _) = clusters();
    blue.psql("CREATE TABLE IF NOT EXISTS held_rows (k bigint)");
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    let (code, answer) = post(&proxy, "/v1/pause", r#"{"lease_ms": 20000}"#);
    assert_eq!(code, 200, "{answer}");
    let key = Instant::now().elapsed().as_nanos() as i64 + std::process::id() as i64 * 1_000_000_000;
    let started = Instant::now();
    assert_eq!(held_insert_cancelled(&proxy, &mut conn, key).as_deref(), Some("57014"));
    assert!(started.elapsed() < Duration::from_secs(5), "answered while the gate is still closed");
    // The next request is held as any other, and runs after the resume.
    conn.send(&support::wire::query_packet("SELECT side FROM marker")).expect("send");
    thread::sleep(Duration::from_millis(200));
    let (code, answer) = post(&proxy, "/v1/resume", "{}");
    assert_eq!(code, 200, "{answer}");
    let mut rows = Vec::new();
    loop {
        match conn.read_message().expect("read").expect("open") {
            m if m.tag == b'D' => rows.extend(support::wire::parse_data_row(&m.body)),
            m if m.tag == b'Z' => break,
            m if m.tag == b'E' => panic!("{}", support::PgError::parse(&m.body)),
            _ => {}
        }
    }
    assert_eq!(rows, [Some("blue".to_string())]);
    let count = blue.psql(&format!("SELECT count(*) FROM held_rows WHERE k = {key}"));
    assert_eq!(count.trim(), "0", "the cancelled INSERT never ran");
    assert_eq!(side(&mut conn), "blue", "the session goes on");
}

/// Sends each statement as its own Query message, all in one write.
fn pipeline(conn: &mut RawConn, statements: &[&str]) {
    let mut bytes = Vec::new();
    for statement in statements {
        bytes.extend(support::wire::query_packet(statement));
    }
    conn.send(&bytes).expect("send the pipeline");
}

/// Counts the ReadyForQuery messages that arrive within `wait`; fails on an error.
fn ready_within(conn: &mut RawConn, wait: Duration, most: usize) -> usize {
    conn.set_read_timeout(wait);
    let mut ready = 0;
    while ready < most {
        match conn.read_message() {
            Ok(Some(m)) if m.tag == b'E' => panic!("{}", support::PgError::parse(&m.body)),
            Ok(Some(m)) => ready += usize::from(m.tag == b'Z'),
            Ok(None) => panic!("the connection closed"),
            Err(_) => break,
        }
    }
    conn.set_read_timeout(Duration::from_secs(15));
    ready
}

#[test]
fn a_pipelining_client_parks_at_its_first_boundary() {
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    conn.query_value("BEGIN").expect("BEGIN");
    // The pause waits for `conn`, inside its transaction.
    let admin = proxy.admin_port();
    let pauser = thread::spawn(move || {
        let body = r#"{"drain_timeout_ms": 20000, "lease_ms": 30000}"#;
        support::http::request_to(([127, 0, 0, 1], admin).into(), "POST", "/v1/pause", &[], body)
    });
    thread::sleep(Duration::from_millis(300));
    // The end of this transaction, and two more, in one write: the session reaches a
    // boundary after the COMMIT and parks there; the rest waits for the resume.
    pipeline(&mut conn, &["SELECT 1", "COMMIT", "BEGIN", "SELECT pg_sleep(2)", "COMMIT", "SELECT 4"]);
    let (status, body) = pauser.join().expect("pause thread").expect("pause answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ready_within(&mut conn, Duration::from_millis(500), 6),
        2,
        "only SELECT 1 and COMMIT ran before the pause"
    );
    // Behind the closed gate, a session at a boundary holds a whole pipeline.
    let mut idle = RawConn::connect_startup(proxy.port(), "postgres", "postgres");
    if let Ok(idle) = idle.as_mut() {
        pipeline(idle, &["BEGIN", "SELECT 1", "COMMIT"]);
        assert_eq!(ready_within(idle, Duration::from_millis(300), 3), 0);
    }
    post(&proxy, "/v1/resume", "{}");
    assert_eq!(ready_within(&mut conn, Duration::from_secs(15), 4), 4, "the rest of the pipeline ran after the resume");
    if let Ok(idle) = idle.as_mut() {
        assert_eq!(ready_within(idle, Duration::from_secs(15), 3), 3);
    }
    assert_eq!(side(&mut conn), "blue");
}
