//! The admin plane's defences, against real sidecars: the token every mutating call needs
//! (one the sidecar makes when none is configured, which `pgflip ctl` finds by itself), the
//! hosts upstreams may be pointed at and the secrets that stay with their address, pauses
//! and switches that run to their end when their caller leaves, leases that a later pause
//! does not shorten, the listener's limits, and query text kept out of pause blockers.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{blue_and_green, metric_sum, shared_cluster, wait_until, Cluster, Proxy, ProxyBuilder, RawConn};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn post(proxy: &Proxy, path: &str, body: &str) -> (u16, Value) {
    let (code, text) = proxy.admin_post(path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
    (code, json(&text))
}

fn put_upstream(proxy: &Proxy, name: &str, url: &str) -> (u16, Value) {
    let path = format!("/v1/upstreams/{name}");
    let body = format!(r#"{{"url": "{url}"}}"#);
    let (code, text) = support::http::request(proxy.admin_port(), "PUT", &path, &[], &body).expect("PUT");
    (code, json(&text))
}

fn status(proxy: &Proxy) -> Value {
    let (code, text) = proxy.admin_get("/v1/status").expect("GET /v1/status");
    assert_eq!(code, 200, "{text}");
    json(&text)
}

fn rejected(proxy: &Proxy, reason: &str) -> f64 {
    let (_, text) = proxy.admin_get("/metrics").expect("GET /metrics");
    metric_sum(&text, "pgflip_admin_rejected_total", &format!("reason=\"{reason}\""))
}

/// `pgflip ctl --admin-url URL ARGS`, with no token file from the environment.
fn ctl(proxy: &Proxy, args: &[&str]) -> (Option<i32>, Value, String) {
    let url = format!("http://127.0.0.1:{}", proxy.admin_port());
    let out = Command::new(env!("CARGO_BIN_EXE_pgflip"))
        .env_remove("PGFLIP_ADMIN_URL")
        .env_remove("PGFLIP_ADMIN_TOKEN_FILE")
        .args(["ctl", "--admin-url", &url])
        .args(args)
        .output()
        .expect("run pgflip ctl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let answer = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code(), answer, stderr)
}

#[test]
fn mutating_calls_need_the_token_on_loopback_too_and_ctl_finds_it() {
    let mut proxy = Proxy::start(shared_cluster());
    for (method, path) in [("POST", "/v1/pause"), ("POST", "/v1/resume"), ("POST", "/v1/switch"), ("GET", "/v1/status")]
    {
        let (code, text) = proxy.admin_without_token(method, path, "{}").expect(path);
        assert_eq!(code, 401, "{method} {path} without a token: {text}");
    }
    let (code, text) =
        proxy.admin_without_token("PUT", "/v1/upstreams/evil", r#"{"url": "postgres://127.0.0.1:1"}"#).unwrap();
    assert_eq!(code, 401, "{text}");
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(proxy.admin_without_token("GET", path, "").unwrap().0, 200, "{path} stays open");
    }
    assert_eq!(status(&proxy)["upstreams"].as_array().map(Vec::len), Some(1), "nothing was added");
    assert!(rejected(&proxy, "token") >= 5.0);

    // The token is in a file only the sidecar's user can read, named in its log.
    let path = proxy.made_token_path();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "{}", path.display());
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert!(proxy.output_shows(&path.display().to_string(), Duration::from_secs(5)), "the log names the token file");
    assert_eq!(proxy.made_token().len(), 64);

    let (code, answer, stderr) = ctl(&proxy, &["pause", "--lease", "20s", "--drain-timeout", "2s"]);
    assert_eq!(code, Some(0), "ctl pause with no token flag: {answer} {stderr}");
    assert_eq!(answer["paused"], true);
    let (code, answer, _) = ctl(&proxy, &["status"]);
    assert_eq!((code, &answer["paused"]), (Some(0), &Value::Bool(true)), "{answer}");
    let (code, answer, _) = ctl(&proxy, &["resume"]);
    assert_eq!((code, &answer["resumed"]), (Some(0), &Value::Bool(true)), "{answer}");

    proxy.sigterm();
    assert!(proxy.wait_exit(Duration::from_secs(20)).is_some(), "the proxy stops on SIGTERM");
    assert!(!path.exists(), "the token file is removed when the proxy stops");
    let (code, _, stderr) = ctl(&proxy, &["status"]);
    assert_eq!(code, Some(2), "{stderr}");
}

/// Whether `user` can log in through `proxy`, and the server port it reached.
fn login(proxy: &Proxy, user: &str) -> Result<String, String> {
    let mut conn = RawConn::connect_startup(proxy.port(), user, "postgres").map_err(|e| e.to_string())?;
    let port = conn.query_value("SELECT current_setting('port')").map_err(|e| e.to_string())?;
    Ok(port.unwrap_or_default())
}

#[test]
fn upstreams_go_only_to_allowed_hosts_and_secrets_stay_with_their_address() {
    let (blue, green) = blue_and_green();
    let url = |c: &Cluster| format!("postgres://127.0.0.1:{}/postgres", c.port());
    let secrets = format!("[blue]\nscramuser = \"{}\"\n", support::SCRAM_PASSWORD);
    let proxy = ProxyBuilder::default().upstream("blue", &url(blue)).active("blue").secrets_file(&secrets).spawn();
    assert_eq!(login(&proxy, "scramuser"), Ok(blue.port().to_string()), "the secret logs in to blue");

    // By default only the configured upstreams' host, as written: 127.0.0.1.
    for host in ["10.9.9.9", "localhost", "127.0.0.2"] {
        let (code, answer) = put_upstream(&proxy, "blue", &format!("postgres://{host}:5432/postgres"));
        assert_eq!(code, 403, "{host}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(host) && message.contains("allowed_upstream_hosts"), "{message}");
    }
    assert_eq!(rejected(&proxy, "upstream_host"), 3.0);
    assert_eq!(status(&proxy)["upstreams"][0]["address"], format!("127.0.0.1:{}", blue.port()), "blue kept");

    // Green's cluster is on an allowed host; the same password would log in there, but the
    // secret is not sent to an address blue was not configured with.
    let (code, answer) = put_upstream(&proxy, "blue", &url(green));
    assert_eq!(code, 200, "{answer}");
    let refused = login(&proxy, "scramuser").expect_err("scramuser logged in with the secret at a new address");
    assert!(refused.contains("asks for a password"), "{refused}");
    assert_eq!(login(&proxy, "postgres"), Ok(green.port().to_string()), "trusted logins reach the new address");
    let (code, answer) = put_upstream(&proxy, "blue", &url(blue));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(login(&proxy, "scramuser"), Ok(blue.port().to_string()), "back at its address, the secret goes");

    // Allowed hosts and networks from the config; secrets that follow re-addressing.
    let following = ProxyBuilder::default()
        .upstream("blue", &url(blue))
        .active("blue")
        .secrets_file(&secrets)
        .arg("--allowed-upstream-hosts")
        .arg("127.0.0.1,10.0.0.0/8")
        .arg("--secrets-follow-readdress")
        .spawn();
    assert_eq!(put_upstream(&following, "green", "postgres://10.200.1.2:5432/x").0, 201);
    assert_eq!(put_upstream(&following, "green", "postgres://192.0.2.1:5432/x").0, 403);
    assert_eq!(put_upstream(&following, "blue", &url(green)).0, 200);
    assert_eq!(login(&following, "scramuser"), Ok(green.port().to_string()), "the secret follows when allowed");
    assert!(!following.output().contains(support::SCRAM_PASSWORD), "the secret is never logged");
}

/// Sends `POST path` with the proxy's token and closes the connection without reading the answer.
fn post_and_leave(proxy: &Proxy, path: &str, body: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.admin_port())).expect("connect to the admin API");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        proxy.made_token(),
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send the request");
    // So that the call has begun when the connection closes, as when a client times out.
    std::thread::sleep(Duration::from_millis(200));
}

/// Backends on `cluster` of sessions named `app`.
fn backends(cluster: &Cluster, app: &str) -> u32 {
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'");
    cluster.psql(&sql).trim().parse().unwrap_or_else(|e| panic!("count of {app} backends: {e}"))
}

fn session(proxy: &Proxy, app: &str) -> RawConn {
    let mut conn = RawConn::connect(proxy.port()).expect("connect");
    conn.startup_with(&[("user", "postgres"), ("database", "postgres"), ("application_name", app)])
        .unwrap_or_else(|e| panic!("startup: {e}"));
    conn
}

#[test]
fn pauses_and_switches_whose_caller_leaves_still_run_to_their_end() {
    let (blue, green) = blue_and_green();
    let app = "hardening-caller-leaves";
    let proxy =
        ProxyBuilder::default().upstream("blue", &blue.url()).upstream("green", &green.url()).active("blue").spawn();
    let mut idle = session(&proxy, app);
    let mut busy = session(&proxy, app);
    assert_eq!(idle.query_value("SELECT 1").unwrap().as_deref(), Some("1"));
    busy.query_value("BEGIN").unwrap();
    busy.query_value("SELECT 2").unwrap();
    let open = |proxy: &Proxy| status(proxy)["paused"] == false;

    // A pause held up by the open transaction: its drain deadline still gives it up.
    post_and_leave(&proxy, "/v1/pause", r#"{"drain_timeout_ms": 1000, "lease_ms": 120000}"#);
    assert!(wait_until(Duration::from_secs(30), || open(&proxy).then_some(())).is_some(), "the gate stayed closed");

    // A switch held up the same way: given up, its pre-warmed connections to green go.
    post_and_leave(&proxy, "/v1/switch", r#"{"to": "green", "drain_timeout_ms": 1000, "lease_ms": 120000}"#);
    assert!(wait_until(Duration::from_secs(30), || open(&proxy).then_some(())).is_some(), "the gate stayed closed");
    assert_eq!(status(&proxy)["active"], "blue");
    let spare = wait_until(Duration::from_secs(30), || (backends(green, app) == 0).then_some(()));
    assert!(spare.is_some(), "{} pre-warmed connections stayed open on green", backends(green, app));

    // With nothing in the way, a switch whose caller left completes.
    assert_eq!(busy.query_value("COMMIT").unwrap(), None);
    post_and_leave(&proxy, "/v1/switch", r#"{"to": "green", "drain_timeout_ms": 5000, "lease_ms": 120000}"#);
    let switched = wait_until(Duration::from_secs(30), || {
        let status = status(&proxy);
        (status["active"] == "green" && status["paused"] == false).then_some(())
    });
    assert!(switched.is_some(), "the switch did not complete: {}", status(&proxy));
    let settled =
        wait_until(Duration::from_secs(30), || (backends(green, app) == 2 && backends(blue, app) == 0).then_some(()));
    assert!(settled.is_some(), "backends: green {}, blue {}", backends(green, app), backends(blue, app));
    assert_eq!(idle.query_value("SELECT current_setting('port')").unwrap(), Some(green.port().to_string()));
    assert_eq!(busy.query_value("SELECT current_setting('port')").unwrap(), Some(green.port().to_string()));
}

#[test]
fn a_later_pause_never_shortens_the_lease_and_leases_have_a_ceiling() {
    let proxy = Proxy::start(shared_cluster());
    let (code, first) = post(&proxy, "/v1/pause", r#"{"lease_ms": 30000}"#);
    assert_eq!(code, 200, "{first}");
    let (code, second) = post(&proxy, "/v1/pause", r#"{"lease_ms": 1000}"#);
    assert_eq!(code, 200, "{second}");
    assert!(second["lease_ms"].as_u64().unwrap() > 20_000, "the renewal cut the lease short: {second}");
    std::thread::sleep(Duration::from_millis(1500));
    let held = status(&proxy);
    assert_eq!(held["paused"], true, "{held}");
    assert!(held["lease_ms_left"].as_u64().unwrap() > 20_000, "{held}");
    assert_eq!(post(&proxy, "/v1/resume", "{}").0, 200);

    // The default ceiling is 5 minutes, for the lease and the drain alike.
    for body in [r#"{"lease_ms": 300001}"#, r#"{"drain_timeout_ms": 3600000}"#] {
        let (code, answer) = post(&proxy, "/v1/pause", body);
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("max_pause_lease"), "{answer}");
    }
    assert_eq!(status(&proxy)["paused"], false, "a refused pause closes nothing");
    assert_eq!(rejected(&proxy, "lease"), 2.0);

    let short = ProxyBuilder::for_cluster(shared_cluster()).arg("--max-pause-lease").arg("2s").spawn();
    let (code, answer) = post(&short, "/v1/switch", r#"{"to": "blue", "lease_ms": 2001}"#);
    assert_eq!(code, 400, "{answer}");
    let (code, answer) = post(&short, "/v1/pause", "{}");
    assert_eq!(code, 200, "{answer}");
    assert!(answer["lease_ms"].as_u64().unwrap() <= 2000, "the default lease fits the ceiling: {answer}");
}

/// A connection that sent part of a request's headers.
fn slow_client(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").expect("send part of the headers");
    stream.set_nonblocking(true).unwrap();
    stream
}

/// True once the server closed `stream` (or reset it).
fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[test]
fn health_answers_while_slow_clients_hold_the_admin_port() {
    let proxy = ProxyBuilder::for_cluster(shared_cluster())
        .arg("--admin-header-timeout")
        .arg("6s")
        .arg("--admin-body-timeout")
        .arg("1s")
        .spawn();
    let mut slow: Vec<TcpStream> = (0..500).map(|_| slow_client(proxy.admin_port())).collect();
    for stream in slow.iter_mut().take(50) {
        let _ = stream.write_all(b"X-Slow: 1");
    }
    assert_eq!(proxy.admin_get("/healthz").expect("GET /healthz").0, 200);
    assert_eq!(proxy.admin_get("/readyz").expect("GET /readyz").0, 200);
    // Every slot is held (64 by default): other routes wait for one.
    let (code, answer) = post(&proxy, "/v1/pause", "{}");
    assert_eq!(code, 503, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("admin_max_connections"), "{answer}");
    assert_eq!(proxy.admin_get("/v1/status").expect("GET /v1/status").0, 503);

    // The header timeout closes them all, and the slots come back.
    let all_closed = wait_until(Duration::from_secs(30), || {
        slow.retain_mut(|stream| !closed(stream));
        slow.is_empty().then_some(())
    });
    assert!(all_closed.is_some(), "{} slow connections are still open", slow.len());
    assert!(rejected(&proxy, "header_timeout") >= 500.0);
    assert!(rejected(&proxy, "connections") >= 2.0);
    let (code, answer) = post(&proxy, "/v1/pause", r#"{"lease_ms": 5000}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(post(&proxy, "/v1/resume", "{}").0, 200);

    // A body that does not arrive in time.
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.admin_port())).expect("connect");
    let head = format!(
        "POST /v1/pause HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 40\r\n\r\n{{",
        proxy.made_token()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("admin_body_timeout"), "{answer}");
    assert_eq!(status(&proxy)["paused"], false);
}

#[test]
fn blockers_show_query_text_only_when_asked() {
    let secret = "SELECT 'card 4111 1111 1111 1111'";
    for (show, expect) in [(false, format!("SELECT … ({} bytes)", secret.len())), (true, secret.to_owned())] {
        let mut builder = ProxyBuilder::for_cluster(shared_cluster());
        if show {
            builder = builder.arg("--admin-show-queries");
        }
        let proxy = builder.spawn();
        let mut tx = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
        tx.query_value("BEGIN").unwrap();
        tx.query_value(secret).unwrap();
        let (code, answer) = post(&proxy, "/v1/pause", r#"{"drain_timeout_ms": 300}"#);
        assert_eq!(code, 409, "{answer}");
        assert_eq!(answer["blockers"][0]["query"], expect.as_str(), "show: {show}");
        if !show {
            assert!(!answer.to_string().contains("4111"), "{answer}");
        }
    }
}
