//! The standby listener: read-only sessions on the upstream that is not active. Against
//! two real clusters: with the controller replicating blue -> green and back across a
//! cutover (the reader follows, pgbench -S sees no failure), and with the standby down
//! or lagging (both fallback policies, max_standby_lag).

mod flip_support;
mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use flip_support::{controller, text, Fleet, ADMIN_TOKEN, APP, APP_PASSWORD, DB};
use support::{free_port, wait_until, Cluster, Proxy, ProxyBuilder};

const READER: &str = "reader";
const READER_PASSWORD: &str = "reader-secret";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// A client session to `port` as `user`; its connection runs on `rt`.
fn connect(rt: &tokio::runtime::Runtime, port: u16, user: &str, dbname: &str) -> Result<Client, tokio_postgres::Error> {
    rt.block_on(async {
        let conninfo = format!("host=127.0.0.1 port={port} user={user} dbname={dbname} sslmode=disable");
        let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    })
}

/// The server's message of an error, or the error.
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned())
}

/// The port of the server a session is on.
fn server_port(rt: &tokio::runtime::Runtime, client: &Client) -> u16 {
    let row = rt.block_on(client.query_one("SELECT inet_server_port()", &[])).expect("inet_server_port()");
    row.get::<_, i32>(0) as u16
}

fn count(rt: &tokio::runtime::Runtime, client: &Client, sql: &str) -> i64 {
    rt.block_on(client.query_one(sql, &[])).expect(sql).get(0)
}

/// `GET /v1/status`'s `standby` part.
fn standby_status(proxy: &Proxy, token: Option<&str>) -> Value {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (code, body) =
        support::http::request(proxy.admin_port(), "GET", "/v1/status", &headers, "").expect("GET /v1/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body).expect("status JSON")["standby"].clone()
}

/// The standby part of the status, once checked for its `route` and `serving_from`.
fn expect_route(proxy: &Proxy, route: &str, serving_from: &str) -> Value {
    let status = standby_status(proxy, Some(ADMIN_TOKEN));
    assert_eq!(
        (&status["route"], &status["serving_from"]),
        (&Value::from(route), &Value::from(serving_from)),
        "{status}"
    );
    status
}

/// `PUT /v1/standby`.
fn report(proxy: &Proxy, upstream: &str, state: &str, lag: f64) -> Value {
    let body = format!(r#"{{"upstream": "{upstream}", "state": "{state}", "lag_seconds": {lag}}}"#);
    let (code, answer) =
        support::http::request(proxy.admin_port(), "PUT", "/v1/standby", &[], &body).expect("PUT /v1/standby");
    assert_eq!(code, 200, "{answer}");
    serde_json::from_str(&answer).expect("answer JSON")
}

/// What a [`Reader`] saw: the server ports in order (each change once), every error, and
/// how many queries were answered.
type Seen = (Vec<u16>, Vec<String>, u64);

/// A session on the standby listener querying in a loop.
struct Reader {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: std::thread::JoinHandle<()>,
}

impl Reader {
    fn start(port: u16) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new((Vec::new(), Vec::new(), 0)));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            let client = connect(&rt, port, READER, DB).expect("reader connects");
            while !stop2.load(Ordering::Relaxed) {
                let answer =
                    rt.block_on(client.query_one("SELECT inet_server_port(), (SELECT count(*) FROM entries)", &[]));
                let mut seen = seen2.lock().unwrap();
                match answer {
                    Ok(row) => {
                        let port = row.get::<_, i32>(0) as u16;
                        if seen.0.last() != Some(&port) {
                            seen.0.push(port);
                        }
                        seen.2 += 1;
                    }
                    Err(e) => seen.1.push(e.to_string()),
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Reader { stop, seen, thread }
    }

    fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("reader thread");
        let seen = self.seen.lock().unwrap();
        (seen.0.clone(), seen.1.clone(), seen.2)
    }
}

/// The read-only role dashboards use, on blue (the restore copies it to green).
fn add_reader(fleet: &Fleet) {
    fleet.blue.psql(&format!(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'"
    ));
}

/// A sidecar in front of the fleet's clusters whose users log in as themselves, with a
/// standby listener on `standby_port` and the fallback policy `fallback`.
fn reader_sidecar(fleet: &Fleet, standby_port: u16, fallback: &str) -> Proxy {
    let secrets = format!(
        "[blue]\n{APP} = \"{APP_PASSWORD}\"\n{READER} = \"{READER_PASSWORD}\"\n\
         [green]\n{APP} = \"{APP_PASSWORD}\"\n{READER} = \"{READER_PASSWORD}\"\n"
    );
    let url = |c: &Cluster| format!("postgres://127.0.0.1:{}/{DB}", c.port());
    ProxyBuilder::default()
        .upstream("blue", &url(&fleet.blue))
        .upstream("green", &url(&fleet.green))
        .active("blue")
        .admin_token(ADMIN_TOKEN)
        .secrets_file(&secrets)
        .arg("--listen-standby")
        .arg(&format!("127.0.0.1:{standby_port}"))
        .arg("--standby-fallback")
        .arg(fallback)
        .spawn()
}

#[test]
fn standby_reads_follow_replication_and_the_cutover() {
    let fleet = Fleet::start(0);
    add_reader(&fleet);
    let init = support::pgbench(&[
        "-i",
        "-s",
        "1",
        "-q",
        "-I",
        "dtgvp",
        "-h",
        "127.0.0.1",
        "-p",
        &fleet.blue.port().to_string(),
        "-U",
        "postgres",
        DB,
    ]);
    init.assert_success("pgbench -i");
    fleet.blue.psql_db(
        DB,
        &format!("DROP TABLE pgbench_history; GRANT SELECT ON entries, tallies, pgbench_accounts, pgbench_branches TO {READER}"),
    );
    let standby_port = free_port();
    let proxy = reader_sidecar(&fleet, standby_port, "active");
    let rt = runtime();

    // Before any report, the standby listener serves from the active upstream, read-only.
    let early = standby_status(&proxy, Some(ADMIN_TOKEN));
    assert_eq!(early["route"], "active", "{early}");
    assert_eq!(early["standby"], "green", "{early}");
    let reader = connect(&rt, standby_port, READER, DB).expect("a standby session");
    assert_eq!(server_port(&rt, &reader), fleet.blue.port(), "served from blue until green is reported");
    drop(reader);

    let plan = fleet.plan(&[format!("http://127.0.0.1:{}", proxy.admin_port())], "");
    let out = controller(&plan, &["run", "--until", "catchup"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = expect_route(&proxy, "standby", "green");
    assert_eq!(status["reported_state"], "replicating", "{status}");
    assert!(status["lag_seconds"].as_f64().is_some(), "{status}");

    // A reader on green sees what the app writes through the main listener on blue.
    let reader = connect(&rt, standby_port, READER, DB).expect("a standby session");
    assert_eq!(server_port(&rt, &reader), fleet.green.port());
    let app = connect(&rt, proxy.port(), APP, DB).expect("an app session");
    rt.block_on(app.execute("INSERT INTO entries (writer, seq) VALUES (7, 1)", &[])).expect("insert on blue");
    let replicated = wait_until(Duration::from_secs(15), || {
        (count(&rt, &reader, "SELECT count(*) FROM entries WHERE writer = 7") == 1).then_some(())
    });
    assert!(replicated.is_some(), "the row written on blue never reached the reader on green");

    // Read-only on the server: PostgreSQL's own 25006, and the session goes on.
    let shown = rt.block_on(reader.query_one("SHOW default_transaction_read_only", &[])).expect("SHOW");
    assert_eq!(shown.get::<_, String>(0), "on");
    let refused = rt
        .block_on(reader.execute("INSERT INTO entries (writer, seq) VALUES (8, 1)", &[]))
        .expect_err("a write on the standby listener");
    assert_eq!(refused.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION), "{refused}");
    assert_eq!(count(&rt, &reader, "SELECT count(*) FROM entries WHERE writer = 8"), 0);

    // pgbench -S and a looping reader on the standby listener while the controller cuts over.
    let mut pgbench = Command::new(support::pg_bin().join("pgbench"))
        .args(["-S", "-n", "-M", "prepared", "-c", "4", "-j", "2", "-T", "20", "-h", "127.0.0.1", "-U", READER])
        .args(["-p", &standby_port.to_string(), DB])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgbench");
    let looping = Reader::start(standby_port);
    std::thread::sleep(Duration::from_secs(2));
    let began = std::time::Instant::now();
    let out = controller(&plan, &["run"]);
    assert!(out.status.success(), "cutover failed:\n{}", text(&out));
    println!("cutover and validation took {:.1} s", began.elapsed().as_secs_f64());
    let ended_early = pgbench.try_wait().expect("pgbench state").is_some();
    let bench = pgbench.wait_with_output().expect("pgbench output");
    assert!(
        !ended_early,
        "pgbench ended before the cutover did:\n{}{}",
        String::from_utf8_lossy(&bench.stdout),
        String::from_utf8_lossy(&bench.stderr)
    );
    let stdout = String::from_utf8_lossy(&bench.stdout);
    let summary = support::PgbenchSummary::parse(&stdout);
    assert!(
        bench.status.success() && summary.as_ref().is_some_and(|s| s.failed == 0 && s.processed > 0),
        "pgbench -S through the cutover: {summary:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    let (ports, errors, answered) = looping.stop();
    println!("pgbench -S through the cutover: {summary:?}; looping reader: {answered} queries, ports {ports:?}");
    assert!(errors.is_empty(), "the reader saw errors during the cutover: {errors:?}");
    assert_eq!(ports, [fleet.green.port(), fleet.blue.port()], "the reader follows the flip ({answered} queries)");

    // After the cutover blue is the standby, fed by the reverse link.
    expect_route(&proxy, "standby", "blue");
    assert_eq!(server_port(&rt, &reader), fleet.blue.port(), "the first reader followed the flip too");
    rt.block_on(app.execute("INSERT INTO entries (writer, seq) VALUES (7, 2)", &[])).expect("insert on green");
    let replicated = wait_until(Duration::from_secs(15), || {
        (count(&rt, &reader, "SELECT count(*) FROM entries WHERE writer = 7") == 2).then_some(())
    });
    assert!(replicated.is_some(), "the row written on green never reached the reader on blue");

    // Promote retires blue: the standby listener falls back to green.
    let out = controller(&plan, &["promote"]);
    assert!(out.status.success(), "promote failed:\n{}", text(&out));
    let status = expect_route(&proxy, "active", "green");
    assert!(status["reason"].as_str().unwrap_or_default().contains("retired"), "{status}");
    let moved = wait_until(Duration::from_secs(5), || (server_port(&rt, &reader) == fleet.green.port()).then_some(()));
    assert!(moved.is_some(), "the reader moves to green once blue is retired");
}

/// Green replicating from blue, then down: a sidecar falling back to the active upstream
/// serves new standby sessions from blue, one set to refuse refuses them.
#[test]
fn a_standby_down_during_replication_follows_the_fallback_policy() {
    let fleet = Fleet::start(0);
    add_reader(&fleet);
    fleet.blue.psql_db(DB, &format!("GRANT SELECT ON entries TO {READER}"));
    let (active_port, refuse_port) = (free_port(), free_port());
    let active = reader_sidecar(&fleet, active_port, "active");
    let refuse = reader_sidecar(&fleet, refuse_port, "refuse");
    let sidecars = [active.admin_port(), refuse.admin_port()].map(|port| format!("http://127.0.0.1:{port}"));
    let out = controller(&fleet.plan(&sidecars, ""), &["run", "--until", "catchup"]);
    assert!(out.status.success(), "{}", text(&out));
    let rt = runtime();
    for (proxy, port) in [(&active, active_port), (&refuse, refuse_port)] {
        expect_route(proxy, "standby", "green");
        let reader = connect(&rt, port, READER, DB).expect("a standby session");
        assert_eq!(server_port(&rt, &reader), fleet.green.port());
    }

    fleet.green.kill();
    let reader = connect(&rt, active_port, READER, DB).expect("served from the active upstream");
    assert_eq!(server_port(&rt, &reader), fleet.blue.port());
    let err =
        rt.block_on(reader.execute("INSERT INTO entries (writer, seq) VALUES (9, 1)", &[])).expect_err("read-only");
    assert_eq!(err.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION), "{err}");
    let status = expect_route(&active, "active", "blue");
    assert!(status["reason"].as_str().unwrap_or_default().contains("unreachable"), "{status}");

    let refused = connect(&rt, refuse_port, READER, DB).expect_err("refused while green is down");
    assert_eq!(refused.code(), Some(&SqlState::CANNOT_CONNECT_NOW), "{refused}");
    assert!(message(&refused).contains("standby_fallback = \"refuse\""), "{refused}");
    let app = connect(&rt, refuse.port(), APP, DB).expect("the main listener serves on");
    assert_eq!(server_port(&rt, &app), fleet.blue.port());
}

/// Two clusters holding the same table; sidecars with a standby listener in both modes.
#[test]
fn fallback_policies_and_max_standby_lag() {
    let (blue, green) = (Cluster::start(), Cluster::start());
    for cluster in [&blue, &green] {
        cluster.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
    }
    let sidecar = |fallback: &str, port: u16| {
        ProxyBuilder::default()
            .upstream("blue", &blue.url())
            .upstream("green", &green.url())
            .active("blue")
            .arg("--listen-standby")
            .arg(&format!("127.0.0.1:{port}"))
            .arg("--standby-fallback")
            .arg(fallback)
            .arg("--max-standby-lag")
            .arg("5")
            .spawn()
    };
    let (active_port, refuse_port) = (free_port(), free_port());
    let (active, refuse) = (sidecar("active", active_port), sidecar("refuse", refuse_port));
    let rt = runtime();

    // No report yet: "refuse" refuses, with a clear error.
    let refused = connect(&rt, refuse_port, "postgres", "postgres").expect_err("nothing reported yet");
    assert_eq!(refused.code(), Some(&SqlState::CANNOT_CONNECT_NOW), "{refused}");
    assert!(message(&refused).contains("no replication state reported for \"green\""), "{refused}");

    for proxy in [&active, &refuse] {
        let answer = report(proxy, "green", "replicating", 0.5);
        assert_eq!(answer["route"], "standby", "{answer}");
    }
    let session = connect(&rt, active_port, "postgres", "postgres").expect("standby session");
    assert_eq!(server_port(&rt, &session), green.port());

    // Lag over max_standby_lag: served from the active upstream, then back once under.
    let answer = report(&active, "green", "replicating", 30.0);
    assert_eq!((&answer["route"], &answer["serving_from"]), (&Value::from("active"), &Value::from("blue")), "{answer}");
    let on = |port: u16| wait_until(Duration::from_secs(5), || (server_port(&rt, &session) == port).then_some(()));
    assert!(on(blue.port()).is_some(), "the session moves to blue while green lags");
    let metrics = active.admin_get("/metrics").expect("metrics").1;
    assert!(metrics.contains("pgflip_standby_lag_seconds 30"), "{metrics}");
    assert!(metrics.contains("pgflip_standby_upstream{upstream=\"blue\"} 1"), "{metrics}");
    report(&active, "green", "replicating", 0.2);
    assert!(on(green.port()).is_some(), "and back to green once the lag is under");
    let err = rt.block_on(session.execute("INSERT INTO t VALUES (2)", &[])).expect_err("read-only");
    assert_eq!(err.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
    drop(session);

    // A fenced standby: "refuse" refuses new sessions, "active" serves them from blue.
    report(&refuse, "green", "fenced", 0.0);
    let refused = connect(&rt, refuse_port, "postgres", "postgres").expect_err("fenced");
    assert!(message(&refused).contains("fenced"), "{refused}");
    report(&refuse, "green", "replicating", 0.0);

    // The standby goes down.
    green.kill();
    let session = connect(&rt, active_port, "postgres", "postgres").expect("served from the active upstream");
    assert_eq!(server_port(&rt, &session), blue.port());
    let err = rt.block_on(session.execute("INSERT INTO t VALUES (3)", &[])).expect_err("still read-only");
    assert_eq!(err.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
    let status = standby_status(&active, None);
    assert_eq!(status["route"], "active", "{status}");
    assert!(status["reason"].as_str().unwrap_or_default().contains("unreachable"), "{status}");

    let refused = connect(&rt, refuse_port, "postgres", "postgres").expect_err("standby down");
    assert_eq!(refused.code(), Some(&SqlState::CANNOT_CONNECT_NOW), "{refused}");
    assert!(message(&refused).contains("standby_fallback = \"refuse\""), "{refused}");
    // The main listener is not affected.
    let main = connect(&rt, refuse.port(), "postgres", "postgres").expect("main listener");
    assert_eq!(server_port(&rt, &main), blue.port());

    // Bad reports get a 400 naming the problem.
    for body in [r#"{"upstream": "grey", "state": "replicating"}"#, r#"{"upstream": "green", "state": "asleep"}"#, ""] {
        let (code, answer) =
            support::http::request(active.admin_port(), "PUT", "/v1/standby", &[], body).expect("PUT /v1/standby");
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(answer.contains("\"error\""), "{answer}");
    }
}
