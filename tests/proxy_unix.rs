//! The Unix-domain socket listener (`--listen-unix DIR`): `DIR/.s.PGSQL.PORT`, found by
//! psql, pgbench and tokio-postgres with `host=DIR port=PORT` exactly as a PostgreSQL
//! server's; client authentication as on TCP; sessions on it switch blue <-> green like
//! any other; a stale socket file is replaced at start and the file is removed at shutdown.

mod support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use support::{pgbench, pgbench_at, psql, Cluster, PgbenchSummary, ProxyBuilder};

/// Blue and green, each with a `marker` table naming it and pgbench's tables.
fn clusters() -> (&'static Cluster, &'static Cluster) {
    static LOADED: OnceLock<()> = OnceLock::new();
    let (blue, green) = support::blue_and_green();
    LOADED.get_or_init(|| {
        for cluster in [blue, green] {
            pgbench_at(cluster.port(), &["-i", "-s", "1", "-q"]).assert_success("pgbench -i");
        }
    });
    (blue, green)
}

fn unix_conninfo(dir: &Path, port: u16, user: &str) -> String {
    format!("host={} port={port} user={user} dbname=postgres", dir.display())
}

fn post(proxy: &support::Proxy, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = proxy.admin_post(path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path} answered {text:?}: {e}")))
}

#[test]
fn psql_and_pgbench_connect_through_the_unix_socket() {
    let (blue, _) = clusters();
    let proxy = ProxyBuilder::for_cluster(blue).unix_socket().spawn();
    let socket = proxy.unix_socket_path();
    let meta = std::fs::symlink_metadata(&socket).expect("the socket file exists");
    assert!(meta.file_type().is_socket(), "{} is a socket", socket.display());
    assert_eq!(meta.permissions().mode() & 0o777, 0o777, "mode 0777 by default, like PostgreSQL's");

    let conninfo = unix_conninfo(proxy.unix_dir(), proxy.port(), "postgres");
    let out = psql(&conninfo, "SELECT side FROM marker");
    out.assert_success("psql over the Unix socket");
    assert_eq!(out.stdout.trim(), "blue");

    let dir = proxy.unix_dir().display().to_string();
    let port = proxy.port().to_string();
    for mode in ["simple", "prepared"] {
        let args = ["-n", "-S", "-M", mode, "-c", "4", "-j", "2", "-t", "200", "-h", &dir, "-p", &port];
        let out = pgbench(&[&args[..], &["-U", "postgres", "postgres"]].concat());
        out.assert_success("pgbench over the Unix socket");
        let summary = PgbenchSummary::parse(&out.stdout).expect("pgbench summary");
        assert_eq!((summary.processed, summary.failed), (800, 0), "{mode}: {}", out.stdout);
    }
    // Counted like TCP sessions: each pgbench client and the psql session went through it.
    let (_, metrics) = proxy.admin_get("/metrics").expect("metrics");
    let transactions = support::metric_sum(&metrics, "pgflip_transaction_seconds_count", "");
    assert!(transactions >= 1600.0, "{transactions} transactions counted:\n{metrics}");
}

#[test]
fn sessions_on_the_unix_socket_move_in_a_switch() {
    let (blue, green) = clusters();
    let proxy = ProxyBuilder::for_cluster(blue).upstream("green", &green.url()).unix_socket().spawn();
    let (dir, port) = (proxy.unix_dir().display().to_string(), proxy.port().to_string());
    // pgbench over the socket the whole time: 8 sessions that must survive every switch.
    let bench = {
        let (dir, port) = (dir.clone(), port.clone());
        thread::spawn(move || {
            let args = ["-n", "-S", "-M", "prepared", "-c", "8", "-j", "2", "-T", "10", "-h", &dir, "-p", &port];
            pgbench(&[&args[..], &["-U", "postgres", "postgres"]].concat())
        })
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let conninfo = unix_conninfo(proxy.unix_dir(), proxy.port(), "postgres");
        let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute("SET application_name = 'over-the-socket'").await.expect("SET");
        let side = client.prepare("SELECT side FROM marker").await.expect("prepare");
        let read = |statement| {
            let client = &client;
            async move { client.query_one(statement, &[]).await.expect("query").get::<_, String>(0) }
        };
        assert_eq!(read(&side).await, "blue");
        thread::sleep(Duration::from_millis(500));
        for (round, to) in ["green", "blue", "green"].into_iter().enumerate() {
            let (code, answer) = post(&proxy, "/v1/switch", &format!(r#"{{"to": "{to}", "drain_timeout_ms": 5000}}"#));
            assert_eq!(code, 200, "switch {round} to {to}: {answer}");
            assert_eq!(answer["failed"], 0, "{answer}");
            assert_eq!(answer["moved"], 9, "pgbench's 8 sessions and this one: {answer}");
            assert_eq!(read(&side).await, to, "the prepared statement runs on {to} after switch {round}");
            let name = client.query_one("SHOW application_name", &[]).await.expect("SHOW").get::<_, String>(0);
            assert_eq!(name, "over-the-socket", "the session's setting moved with it");
            thread::sleep(Duration::from_millis(700));
        }
    });
    let out = bench.join().expect("pgbench thread");
    out.assert_success("pgbench over the Unix socket through three switches");
    let summary = PgbenchSummary::parse(&out.stdout).expect("pgbench summary");
    assert_eq!(summary.failed, 0, "{}", out.stdout);
    assert!(summary.processed > 0, "{}", out.stdout);
}

#[test]
fn unix_socket_clients_authenticate_as_tcp_clients_do() {
    let (blue, _) = clusters();
    // The proxy logs in upstream as `postgres` (trusted there); clients prove the password.
    let proxy = ProxyBuilder::for_cluster(blue).auth_file("\"postgres\" \"s3cret\"\n").unix_socket().spawn();
    let conninfo = unix_conninfo(proxy.unix_dir(), proxy.port(), "postgres");
    let wrong = psql(&format!("{conninfo} password=wrong"), "SELECT 1");
    assert!(!wrong.success(), "a wrong password is refused on the socket too");
    assert!(wrong.stderr.contains("password authentication failed"), "{}", wrong.stderr);
    let right = psql(&format!("{conninfo} password=s3cret"), "SELECT side FROM marker");
    right.assert_success("the right password over the Unix socket");
    assert_eq!(right.stdout.trim(), "blue");
}

#[test]
fn a_stale_socket_is_replaced_the_mode_is_kept_and_the_file_goes_at_shutdown() {
    let (blue, _) = clusters();
    let url = blue.url();
    let dir = support::temp_dir("pgflip-unix-");
    let sockets = dir.path().join("sockets");
    std::fs::create_dir(&sockets).unwrap();
    let stale_dir = sockets.clone();
    let mut proxy = ProxyBuilder::default()
        .config(move |port, admin_port| {
            // A socket file left by a run that crashed: bound, never removed.
            drop(std::os::unix::net::UnixListener::bind(stale_dir.join(format!(".s.PGSQL.{port}"))).unwrap());
            format!(
                "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
                 listen_unix = \"{}\"\nunix_socket_mode = \"0770\"\nshutdown_grace = \"1s\"\n\
                 [upstream]\nblue = \"{url}\"\n",
                stale_dir.display()
            )
        })
        .spawn();
    let socket = sockets.join(format!(".s.PGSQL.{}", proxy.port()));
    let meta = std::fs::symlink_metadata(&socket).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o770, "unix_socket_mode");
    let out = psql(&unix_conninfo(&sockets, proxy.port(), "postgres"), "SELECT side FROM marker");
    out.assert_success("psql over the replaced socket");
    assert_eq!(out.stdout.trim(), "blue");

    proxy.sigterm();
    assert!(proxy.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", proxy.output());
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

#[test]
fn bad_unix_socket_settings_name_their_key() {
    let (blue, _) = clusters();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgflip"))
            .arg("check-config")
            .arg("--upstream")
            .arg(format!("blue={}", blue.url()))
            .args(args)
            .output()
            .expect("run check-config");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, _) = run(&["--listen-unix", "/run/pgflip"]);
    assert!(ok && stdout.contains("listen_unix   /run/pgflip/.s.PGSQL.6432 (mode 0777)"), "{stdout}");
    let (ok, _, stderr) = run(&["--listen-unix", "/run/pgflip", "--unix-socket-mode", "0999"]);
    assert!(!ok && stderr.contains("unix_socket_mode"), "{stderr}");
    let (ok, _, stderr) = run(&["--unix-socket-mode", "0700"]);
    assert!(!ok && stderr.contains("unix_socket_mode") && stderr.contains("needs listen_unix"), "{stderr}");
    let long = format!("/tmp/{}", "d".repeat(120));
    let (ok, _, stderr) = run(&["--listen-unix", &long]);
    assert!(!ok && stderr.contains("listen_unix"), "{stderr}");

    // A path that is not a socket is left alone, and the proxy says why it cannot start.
    let dir = support::temp_dir("pgflip-unix-");
    let occupied = dir.path().to_path_buf();
    let exited = ProxyBuilder::for_cluster(blue)
        .config(move |port, admin_port| {
            std::fs::write(occupied.join(format!(".s.PGSQL.{port}")), "a file").unwrap();
            format!(
                "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\nlisten_unix = \"{}\"\n\
                 [upstream]\nblue = \"postgres://postgres@127.0.0.1:1/postgres\"\n",
                occupied.display()
            )
        })
        .run_to_exit(Duration::from_secs(10));
    assert!(exited.status.is_some_and(|s| !s.success()), "{}", exited.output);
    assert!(exited.output.contains("listen_unix") && exited.output.contains("is not a socket"), "{}", exited.output);
}
