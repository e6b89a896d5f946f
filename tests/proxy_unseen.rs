//! What a paused or moved session must never notice: the proxy's own statements leave the
//! client's unnamed statement in place and nothing of their own in `pg_prepared_statements`;
//! a server parameter that changes with a move is reported inside the answer to the
//! client's next request, never to an idle client; notifications that arrive while the
//! proxy captures a session reach its client, in order.

mod support;

use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use support::{Cluster, ClusterOptions, Proxy, ProxyBuilder, RawConn};

/// Blue, the shared cluster, and a green whose default TimeZone differs from blue's, each
/// with a `marker` table naming it.
fn clusters() -> (&'static Cluster, &'static Cluster) {
    static GREEN: OnceLock<Cluster> = OnceLock::new();
    static MARKED: OnceLock<()> = OnceLock::new();
    let blue = support::shared_cluster();
    let green = GREEN.get_or_init(|| Cluster::start_with(ClusterOptions::default().conf("timezone = 'Asia/Tokyo'")));
    MARKED.get_or_init(|| {
        for (cluster, side) in [(blue, "blue"), (green, "green")] {
            cluster.psql(&format!(
                "CREATE TABLE IF NOT EXISTS marker(side text); TRUNCATE marker; INSERT INTO marker VALUES ('{side}')"
            ));
        }
    });
    (blue, green)
}

fn proxy() -> Proxy {
    let (blue, green) = clusters();
    ProxyBuilder::for_cluster(blue).upstream("green", &green.url()).spawn()
}

fn post(proxy: &Proxy, path: &str, body: &str) -> Value {
    let (status, answer) = proxy.admin_post_json(path, body);
    assert_eq!(status, 200, "POST {path} {body}: {answer}");
    answer
}

fn switch(proxy: &Proxy, to: &str) {
    let answer = post(proxy, "/v1/switch", &format!(r#"{{"to": "{to}"}}"#));
    assert_eq!(answer["failed"], 0, "{answer}");
}

/// A pause (every session parks, and is captured) and the resume: no move.
fn pause_and_resume(proxy: &Proxy) {
    post(proxy, "/v1/pause", r#"{"drain_timeout_ms": 5000, "lease_ms": 10000}"#);
    post(proxy, "/v1/resume", "{}");
}

fn prepared_names(conn: &mut RawConn) -> String {
    let sql = "SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_prepared_statements";
    conn.query_value(sql).expect("pg_prepared_statements").unwrap_or_default()
}

#[test]
fn the_unnamed_statement_outlives_captures_and_moves() {
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    conn.parse_statement("named", "SELECT 'named ' || side FROM marker");
    // Parse("") + Sync now, Bind("") + Execute + Sync later, with a pause between.
    conn.parse_statement("", "SELECT side FROM marker");
    pause_and_resume(&proxy);
    assert_eq!(conn.run_statement(""), Ok(Some("blue".into())), "kept across a capture on its server");
    assert_eq!(conn.run_statement(""), Ok(Some("blue".into())), "and run again");

    conn.parse_statement("", "SELECT side || '!' FROM marker");
    switch(&proxy, "green");
    assert_eq!(conn.run_statement(""), Ok(Some("green!".into())), "parsed again on the new server");
    switch(&proxy, "blue");
    assert_eq!(conn.run_statement(""), Ok(Some("blue!".into())));
    assert_eq!(conn.run_statement("named"), Ok(Some("named blue".into())));
    assert_eq!(prepared_names(&mut conn), "named", "nothing of the proxy's own, after captures on both sides");

    // A simple Query destroys the unnamed statement, and a move does not bring it back.
    conn.query_value("SELECT 1").expect("simple query");
    switch(&proxy, "green");
    assert_eq!(conn.run_statement(""), Err("26000".into()));
    conn.terminate();
}

#[test]
fn a_parameter_change_from_a_move_comes_with_the_next_answer() {
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    let blue_zone = conn.query_value("SHOW TimeZone").expect("TimeZone").expect("a value");
    assert_ne!(blue_zone, "Asia/Tokyo");
    switch(&proxy, "green");
    // Idle: nothing may arrive, not even a ParameterStatus.
    conn.set_read_timeout(Duration::from_millis(500));
    match conn.read_message() {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("an idle client was sent {other:?}"),
    }
    conn.set_read_timeout(Duration::from_secs(15));
    conn.send(&support::wire::query_packet("SELECT side FROM marker")).expect("send");
    let mut tags = Vec::new();
    let mut zone = None;
    loop {
        let message = conn.read_message().expect("read").expect("open");
        tags.push(message.tag as char);
        if message.tag == b'S' {
            let text = String::from_utf8_lossy(&message.body).into_owned();
            if let Some(value) = text.strip_prefix("TimeZone\0") {
                zone = Some(value.trim_end_matches('\0').to_string());
            }
        }
        if message.tag == b'Z' {
            break;
        }
    }
    assert_eq!(zone.as_deref(), Some("Asia/Tokyo"), "{tags:?}");
    let at = tags.iter().position(|t| *t == 'S').expect("a ParameterStatus");
    assert_eq!(
        tags[at..].iter().collect::<String>().trim_start_matches('S'),
        "Z",
        "just before ReadyForQuery: {tags:?}"
    );
    assert_eq!(tags[..at].iter().collect::<String>(), "TDC", "after the answer's rows: {tags:?}");
    // Told once: the next answer carries no report.
    conn.send(&support::wire::query_packet("SELECT 1")).expect("send");
    let mut again = Vec::new();
    while let Some(message) = conn.read_message().expect("read") {
        again.push(message.tag as char);
        if message.tag == b'Z' {
            break;
        }
    }
    assert_eq!(again.iter().collect::<String>(), "TDCZ");
    conn.terminate();
}

#[test]
fn notifications_during_captures_reach_the_client_in_order() {
    let (blue, _) = clusters();
    let proxy = proxy();
    let mut listener = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    listener.query_value("LISTEN pgflip_unseen").expect("LISTEN");
    const SENT: usize = 300;
    let port = blue.port();
    // Straight to blue, so that they keep coming whatever the proxy does.
    let notifier = thread::spawn(move || {
        let mut conn = RawConn::connect_startup(port, "postgres", "postgres").expect("notifier");
        for i in 0..SENT {
            conn.query_value(&format!("NOTIFY pgflip_unseen, '{i}'")).expect("NOTIFY");
            thread::sleep(Duration::from_millis(5));
        }
    });
    for _ in 0..15 {
        pause_and_resume(&proxy);
    }
    notifier.join().expect("notifier");
    let mut payloads = Vec::new();
    listener.set_read_timeout(Duration::from_secs(5));
    while payloads.len() < SENT {
        let message = listener.read_message().expect("a notification").expect("open");
        assert_eq!(message.tag, b'A', "only notifications reach an idle client");
        // NotificationResponse: pid, channel, payload.
        let text = String::from_utf8_lossy(&message.body[4..]).into_owned();
        let mut parts = text.split('\0');
        assert_eq!(parts.next(), Some("pgflip_unseen"));
        payloads.push(parts.next().expect("payload").parse::<usize>().expect("a number"));
    }
    assert_eq!(payloads, (0..SENT).collect::<Vec<_>>(), "every notification, in order");
    assert_eq!(listener.query_value("SELECT 1").expect("still usable"), Some("1".into()));
    listener.terminate();
}
