//! Switching: sessions move between two real clusters, blue and green, without
//! reconnecting, and back; a failed switch changes nothing for clients.

mod support;

use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use support::{free_port, pgbench, shared_cluster, Cluster, PgbenchSummary, Proxy, ProxyBuilder, RawConn};

/// Blue is the shared cluster; green is a second one. Each has a `marker` table naming it.
fn clusters() -> (&'static Cluster, &'static Cluster) {
    static GREEN: OnceLock<Cluster> = OnceLock::new();
    static MARKED: OnceLock<()> = OnceLock::new();
    let blue = shared_cluster();
    let green = GREEN.get_or_init(Cluster::start);
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

fn post(proxy: &Proxy, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = proxy.admin_post(path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path} answered {text:?}: {e}")))
}

fn side(conn: &mut RawConn) -> String {
    conn.query_value("SELECT side FROM marker").expect("marker").expect("a marker row")
}

#[test]
fn a_session_moves_blue_green_blue_ten_times_without_reconnecting() {
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    assert_eq!(side(&mut conn), "blue");
    let mut generation = 1;
    for round in 0..10 {
        for to in ["green", "blue"] {
            let (code, answer) =
                post(&proxy, "/v1/switch", &format!(r#"{{"to": "{to}", "generation": {generation}}}"#));
            assert_eq!(code, 200, "round {round} to {to}: {answer}");
            generation += 1;
            assert_eq!(answer["generation"], generation);
            assert_eq!(answer["moved"], 1, "{answer}");
            assert_eq!(answer["failed"], 0, "{answer}");
            assert_eq!(side(&mut conn), to, "round {round}: the session did not follow the switch to {to}");
        }
    }
    let (_, text) = proxy.admin_get("/metrics").unwrap();
    assert!(text.contains("pgflip_switches_total{result=\"ok\"} 20"), "{text}");
}

#[test]
fn pgbench_runs_clean_through_twenty_switches() {
    let (blue, green) = clusters();
    for cluster in [blue, green] {
        let init = pgbench(&[
            "-i",
            "-s",
            "1",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port().to_string(),
            "-U",
            "postgres",
            "postgres",
        ]);
        init.assert_success("pgbench -i");
    }
    let proxy = proxy();
    let port = proxy.port().to_string();
    let bench = thread::spawn(move || {
        pgbench(&[
            "-n",
            "-S",
            "-M",
            "simple",
            "-c",
            "16",
            "-j",
            "2",
            "-T",
            "8",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "postgres",
        ])
    });
    thread::sleep(Duration::from_millis(500));
    for i in 0..20 {
        let to = if i % 2 == 0 { "green" } else { "blue" };
        let (code, answer) = post(&proxy, "/v1/switch", &format!(r#"{{"to": "{to}", "drain_timeout_ms": 5000}}"#));
        assert_eq!(code, 200, "switch {i} to {to}: {answer}");
        assert_eq!(answer["failed"], 0, "{answer}");
        thread::sleep(Duration::from_millis(150));
    }
    let out = bench.join().unwrap();
    out.assert_success("pgbench through switches");
    let summary = PgbenchSummary::parse(&out.stdout).expect("pgbench summary");
    assert_eq!(summary.failed, 0, "{}", out.stdout);
}

#[test]
fn an_unreachable_target_fails_the_switch_before_anything_moves() {
    let (blue, _) = clusters();
    let down = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let proxy = ProxyBuilder::for_cluster(blue).upstream("green", &down).spawn();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "green"}"#);
    assert_eq!(code, 503, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("green"), "{answer}");
    assert_eq!(side(&mut conn), "blue");
    let (_, status) = proxy.admin_get("/v1/status").unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        (status["active"].as_str(), status["generation"].as_u64(), status["paused"].as_bool()),
        (Some("blue"), Some(1), Some(false))
    );
    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "purple"}"#);
    assert_eq!(code, 404, "{answer}");
    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "blue", "generation": 9}"#);
    assert_eq!(code, 409, "{answer}");
}

#[test]
fn a_parked_session_whose_backend_is_killed_resumes_without_error() {
    let (blue, _) = clusters();
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    let pid = conn.query_value("SELECT pg_backend_pid()").unwrap().unwrap();
    let (code, answer) = post(&proxy, "/v1/pause", r#"{"lease_ms": 20000}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(blue.psql(&format!("SELECT pg_terminate_backend({pid})")), "t");
    thread::sleep(Duration::from_millis(200));
    post(&proxy, "/v1/resume", "");
    assert_eq!(side(&mut conn), "blue");
    let new_pid = conn.query_value("SELECT pg_backend_pid()").unwrap().unwrap();
    assert_ne!(new_pid, pid, "the session runs on a new backend");
}

#[tokio::test]
async fn a_cancel_after_a_switch_reaches_the_new_server() {
    let proxy = proxy();
    let (client, connection) =
        tokio_postgres::connect(&proxy.tokio_config("postgres", "postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let row = client.query_one("SELECT side FROM marker", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "blue");
    let admin = proxy.admin_port();
    let (code, text) = tokio::task::spawn_blocking(move || {
        support::http::request(admin, "POST", "/v1/switch", &[], r#"{"to": "green"}"#).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "{text}");
    let row = client.query_one("SELECT side FROM marker", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "green");
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let err = client.simple_query("SELECT pg_sleep(30)").await.expect_err("the sleep was cancelled");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED), "{err}");
    canceller.await.unwrap().expect("cancel request");
}
