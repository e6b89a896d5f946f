//! Switching: sessions move between two real clusters, blue and green, without
//! reconnecting, and back; a failed switch changes nothing for clients.

mod support;

use std::thread;
use std::time::Duration;

use serde_json::Value;
use support::{free_port, pgbench_at, Cluster, PgbenchSummary, Proxy, ProxyBuilder, RawConn};

/// Blue and green, each with a `marker` table naming it.
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

/// A tokio-postgres session through `proxy`, its connection driven in the background.
async fn tokio_client(proxy: &Proxy) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&proxy.tokio_config("postgres", "postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    client
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
    let (_, text) = proxy.admin_get("/v1/status").unwrap();
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["last_switch"]["result"], "ok", "{status}");
    assert_eq!(status["last_switch"]["to"], "blue", "{status}");
    assert_eq!(status["last_switch"]["generation"], 21, "{status}");
}

#[test]
fn pgbench_runs_clean_through_twenty_switches() {
    let (blue, green) = clusters();
    for cluster in [blue, green] {
        let init = pgbench_at(cluster.port(), &["-i", "-s", "1", "-q"]);
        init.assert_success("pgbench -i");
    }
    let proxy = proxy();
    let port = proxy.port();
    let bench =
        thread::spawn(move || pgbench_at(port, &["-n", "-S", "-M", "prepared", "-c", "16", "-j", "2", "-T", "8"]));
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
    let client = tokio_client(&proxy).await;
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

/// Runs a tokio-postgres connection, passing its notifications to the returned channel.
fn drive(
    mut connection: tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let _ = tx.send(format!("{}:{}", n.channel(), n.payload()));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_role_prepared_statements_and_listen_move_with_the_session() {
    let (blue, green) = clusters();
    for cluster in [blue, green] {
        cluster.psql(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'flip_role') THEN CREATE ROLE flip_role; END IF; END $$; \
             GRANT SELECT ON marker TO flip_role",
        );
    }
    let proxy = proxy();
    let (client, connection) =
        tokio_postgres::connect(&proxy.tokio_config("postgres", "postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    let mut notifications = drive(connection);
    client
        .batch_execute(
            "SET search_path = \"My Schema\", public; SET statement_timeout = '1500ms'; SET myapp.tenant = 'acme'; \
             PREPARE sql_side AS SELECT side FROM marker; LISTEN \"Chan One\"",
        )
        .await
        .expect("simple-protocol state, the SQL PREPARE inside a multi-statement Query");
    client.execute("SET myapp.region = 'eu'", &[]).await.expect("extended-protocol SET");
    client.batch_execute("SET ROLE flip_role").await.unwrap();
    let mut statements = Vec::new();
    for n in 0..5i32 {
        statements.push(client.prepare(&format!("SELECT $1::int4 + {n}, side FROM marker")).await.expect("prepare"));
    }
    let admin = proxy.admin_port();
    for round in 0..10 {
        for to in ["green", "blue"] {
            let (code, text) = tokio::task::spawn_blocking(move || {
                support::http::request(admin, "POST", "/v1/switch", &[], &format!(r#"{{"to": "{to}"}}"#)).unwrap()
            })
            .await
            .unwrap();
            assert_eq!(code, 200, "round {round} to {to}: {text}");
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!((answer["moved"].as_u64(), answer["failed"].as_u64()), (Some(1), Some(0)), "{text}");

            let rows = client.simple_query("EXECUTE sql_side").await.expect("SQL-prepared statement");
            let side = rows.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            });
            assert_eq!(side.as_deref(), Some(to), "round {round}");
            for (n, statement) in statements.iter().enumerate() {
                let row = client.query_one(statement, &[&10i32]).await.expect("protocol-level statement");
                assert_eq!(row.get::<_, i32>(0), 10 + n as i32);
                assert_eq!(row.get::<_, String>(1), to);
            }
            let row = client
                .query_one(
                    "SELECT current_setting('search_path'), current_setting('statement_timeout'), \
                     current_setting('myapp.tenant'), current_setting('myapp.region'), current_user::text, \
                     (SELECT string_agg(c, ',') FROM pg_listening_channels() c)",
                    &[],
                )
                .await
                .expect("settings");
            let got: Vec<String> = (0..6).map(|i| row.get::<_, String>(i)).collect();
            assert_eq!(
                got,
                ["\"My Schema\", public", "1500ms", "acme", "eu", "flip_role", "Chan One"],
                "round {round} on {to}"
            );
            let server = if to == "green" { green } else { blue };
            server.psql(&format!("NOTIFY \"Chan One\", 'from {to} {round}'"));
            let got = tokio::time::timeout(Duration::from_secs(5), notifications.recv()).await.expect("notification");
            assert_eq!(got.as_deref(), Some(format!("Chan One:from {to} {round}").as_str()));
        }
    }
}

#[test]
fn a_session_with_a_temp_table_is_reported_and_handled_by_the_policy() {
    let proxy = proxy();
    let mut temp = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    temp.query_value("CREATE TEMP TABLE scratch(x int)").unwrap();
    let mut plain = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");

    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "green"}"#);
    assert_eq!(code, 409, "blocked by default: {answer}");
    let blockers = answer["blockers"].as_array().expect("blockers");
    assert_eq!(blockers.len(), 1, "{answer}");
    assert!(blockers[0]["unmovable"].as_str().unwrap().contains("temp"), "{answer}");
    assert_eq!(side(&mut plain), "blue", "a blocked switch leaves traffic where it was");
    assert_eq!(temp.query_value("SELECT count(*) FROM scratch").unwrap().as_deref(), Some("0"));

    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "green", "on_unmovable": "terminate"}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["moved"], 1, "{answer}");
    assert_eq!(side(&mut plain), "green");
    let err = temp.query_value("SELECT 1").expect_err("the session holding a temp table was ended");
    assert_eq!(err.code(), "57P01", "{err}");
    let mut again = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("reconnect");
    assert_eq!(side(&mut again), "green", "the reconnect lands on the new upstream");
}

#[test]
fn a_client_idle_in_a_transaction_blocks_the_switch_or_is_terminated() {
    let proxy = proxy();
    let mut tx = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    tx.query_value("BEGIN").unwrap();
    let mut other = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");

    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "green", "drain_timeout_ms": 300}"#);
    assert_eq!(code, 409, "{answer}");
    assert_eq!(answer["blockers"][0]["state"], "in_transaction", "{answer}");
    assert_eq!(side(&mut other), "blue");

    let (code, answer) =
        post(&proxy, "/v1/switch", r#"{"to": "green", "drain_timeout_ms": 300, "on_timeout": "terminate"}"#);
    assert_eq!(code, 200, "{answer}");
    let err = tx.query_value("SELECT 1").expect_err("the blocker was ended");
    assert_eq!(err.code(), "57P01", "{err}");
    assert_eq!(side(&mut other), "green");
    let mut again = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("reconnect");
    assert_eq!(side(&mut again), "green");
}

#[test]
fn statements_made_ahead_follow_closes_redefinitions_and_discard_all() {
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    conn.parse_statement("kept", "SELECT side FROM marker");
    conn.parse_statement("redefined", "SELECT 'old'");
    conn.parse_statement("closed", "SELECT 1");
    let mut generation = 1;
    let mut switch = |conn: &mut RawConn, to: &str| {
        let (code, answer) = post(&proxy, "/v1/switch", &format!(r#"{{"to": "{to}", "generation": {generation}}}"#));
        assert_eq!(code, 200, "to {to}: {answer}");
        assert_eq!((answer["moved"].as_u64(), answer["failed"].as_u64()), (Some(1), Some(0)), "{answer}");
        generation += 1;
        assert_eq!(side(conn), to);
    };
    switch(&mut conn, "green");
    assert_eq!(conn.run_statement("kept"), Ok(Some("green".into())));
    assert_eq!(conn.run_statement("redefined"), Ok(Some("old".into())));

    // Changed between switches: the move goes by what the session holds at the pause.
    conn.close_statement("redefined");
    conn.parse_statement("redefined", "SELECT 'new'");
    conn.close_statement("closed");
    switch(&mut conn, "blue");
    assert_eq!(conn.run_statement("kept"), Ok(Some("blue".into())));
    assert_eq!(conn.run_statement("redefined"), Ok(Some("new".into())));
    assert_eq!(conn.run_statement("closed"), Err("26000".into()));

    // DISCARD ALL drops the client's statements; the capture has none of its own to lose.
    conn.simple_query("DISCARD ALL").expect("discard all");
    conn.parse_statement("after", "SELECT side FROM marker");
    switch(&mut conn, "green");
    assert_eq!(conn.run_statement("after"), Ok(Some("green".into())));
    assert_eq!(conn.run_statement("kept"), Err("26000".into()));
    let names = conn.query_value("SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements").unwrap();
    assert_eq!(names.as_deref(), Some("after"), "only the client's statements, after captures on both sides");
    conn.terminate();
}

#[test]
fn a_session_holding_an_advisory_lock_is_reported_and_handled_by_the_policy() {
    let proxy = proxy();
    let mut locker = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    let mut two = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    locker.query_value("SELECT pg_advisory_lock(4242)").unwrap();
    two.query_value("SELECT pg_advisory_xact_lock(4243)").unwrap();
    two.query_value("SELECT pg_advisory_lock(1), pg_advisory_lock(2)").unwrap();
    two.query_value("SELECT pg_advisory_unlock_all()").unwrap();

    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "green"}"#);
    assert_eq!(code, 409, "blocked by default: {answer}");
    let blockers = answer["blockers"].as_array().expect("blockers");
    assert_eq!(blockers.len(), 1, "only the session still holding a lock: {answer}");
    assert_eq!(blockers[0]["unmovable"], "1 session advisory lock", "{answer}");
    assert_eq!(side(&mut two), "blue");

    let (code, answer) = post(&proxy, "/v1/switch", r#"{"to": "green", "on_unmovable": "terminate"}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(side(&mut two), "green");
    let err = locker.query_value("SELECT 1").expect_err("the session holding the lock was ended");
    assert_eq!(err.code(), "57P01", "{err}");
}

#[tokio::test]
async fn statements_planned_ahead_of_a_move_are_not_run() {
    let (blue, green) = clusters();
    for cluster in [blue, green] {
        cluster.psql("CREATE TABLE IF NOT EXISTS planned_ahead(v int); TRUNCATE planned_ahead");
    }
    let proxy = proxy();
    let client = tokio_client(&proxy).await;
    let insert = client.prepare("INSERT INTO planned_ahead VALUES ($1)").await.unwrap();
    let delete = client.prepare("DELETE FROM planned_ahead").await.unwrap();
    let count = client.prepare("SELECT count(*) FROM planned_ahead").await.unwrap();
    client.execute(&insert, &[&1i32]).await.unwrap();
    let admin = proxy.admin_port();
    for to in ["green", "blue", "green"] {
        let body = format!(r#"{{"to": "{to}"}}"#);
        let (code, text) = tokio::task::spawn_blocking(move || {
            support::http::request(admin, "POST", "/v1/switch", &[], &body).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(code, 200, "{text}");
    }
    // Every move made the statements ahead on the new server and planned them; none ran.
    let planned: i64 = client
        .query_one(
            "SELECT generic_plans FROM pg_prepared_statements WHERE statement = 'DELETE FROM planned_ahead'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(planned, 1, "the DELETE was planned ahead on green, never run by the client");
    assert_eq!(blue.psql("SELECT count(*) FROM planned_ahead"), "1");
    assert_eq!(green.psql("SELECT count(*) FROM planned_ahead"), "0");
    let n: i64 = client.query_one(&count, &[]).await.unwrap().get(0);
    assert_eq!(n, 0, "the session is on green");
    client.execute(&insert, &[&2i32]).await.unwrap();
    client.execute(&delete, &[]).await.unwrap();
    assert_eq!(green.psql("SELECT count(*) FROM planned_ahead"), "0");
    assert_eq!(blue.psql("SELECT count(*) FROM planned_ahead"), "1");
}
