//! The admin HTTP listener (health, readiness, metrics, status, 404), its
//! refusal to listen beyond loopback without a token, and `--config` files.

mod support;

use std::time::Duration;
use support::{free_port, metric_samples, metric_sum, shared_cluster, wait_until, Proxy, ProxyBuilder, RawConn};

const FAMILIES: [&str; 8] = [
    "pgflip_client_sessions",
    "pgflip_server_connections",
    "pgflip_client_errors_total",
    "pgflip_upstream_errors_total",
    "pgflip_bytes_total",
    "pgflip_transaction_seconds",
    "pgflip_active_upstream",
    "pgflip_generation",
];

fn metrics(proxy: &Proxy) -> String {
    let (status, body) = proxy.admin_get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "GET /metrics: {body}");
    body
}

fn has_family(text: &str, family: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix(family).and_then(|rest| rest.chars().next()).is_some_and(|c| c == '{' || c == ' ' || c == '_')
            && !line.starts_with('#')
    })
}

#[test]
fn health_and_readiness() {
    let proxy = Proxy::start(shared_cluster());
    let (status, _) = proxy.admin_get("/healthz").expect("GET /healthz");
    assert_eq!(status, 200);
    let (status, _) = proxy.admin_get("/readyz").expect("GET /readyz");
    assert_eq!(status, 200);
}

#[test]
fn metrics_follow_traffic() {
    let proxy = Proxy::start(shared_cluster());
    let before = metrics(&proxy);
    let bytes_before = metric_sum(&before, "pgflip_bytes_total", "");
    assert_eq!(
        metric_sum(&before, "pgflip_active_upstream", "upstream=\"blue\""),
        1.0,
        "blue is the active upstream:\n{before}"
    );
    assert!(metric_samples(&before, "pgflip_generation").len() == 1, "pgflip_generation has one sample:\n{before}");

    let mut conn =
        RawConn::connect_startup(proxy.port(), "postgres", "postgres").unwrap_or_else(|e| panic!("startup: {e}"));
    for sql in ["SELECT repeat('x', 100000)", "BEGIN", "SELECT 1", "COMMIT"] {
        conn.simple_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    let during = metrics(&proxy);
    for family in FAMILIES {
        if family.contains("errors") {
            continue;
        }
        assert!(has_family(&during, family), "no {family} in:\n{during}");
    }
    let bytes_during = metric_sum(&during, "pgflip_bytes_total", "");
    assert!(
        bytes_during >= bytes_before + 100_000.0,
        "pgflip_bytes_total grew from {bytes_before} to only {bytes_during}"
    );
    assert!(metric_sum(&during, "pgflip_client_sessions", "") >= 1.0, "an open session is counted:\n{during}");
    assert!(
        metric_sum(&during, "pgflip_server_connections", "upstream=\"blue\"") >= 1.0,
        "its server connection is counted:\n{during}"
    );
    assert!(
        metric_sum(&during, "pgflip_transaction_seconds_count", "") >= 1.0,
        "the committed transaction is observed:\n{during}"
    );

    conn.terminate();
    let closed = wait_until(Duration::from_secs(10), || {
        let text = metrics(&proxy);
        (metric_sum(&text, "pgflip_client_sessions", "") == 0.0).then_some(text)
    });
    assert!(closed.is_some(), "pgflip_client_sessions did not return to 0 after the client left:\n{}", metrics(&proxy));
}

#[test]
fn error_metrics_count_a_failed_upstream() {
    let closed_port = free_port();
    let proxy =
        ProxyBuilder::default().upstream("blue", &format!("postgres://127.0.0.1:{closed_port}")).active("blue").spawn();
    let err = match RawConn::connect_startup(proxy.port(), "postgres", "postgres") {
        Ok(_) => panic!("a session started with the upstream down"),
        Err(e) => e,
    };
    assert_eq!(err.code(), "08001", "{err}");
    let text = metrics(&proxy);
    assert!(
        metric_sum(&text, "pgflip_upstream_errors_total", "upstream=\"blue\"") >= 1.0,
        "the failed connect to blue is counted:\n{text}"
    );
    assert!(
        metric_sum(&text, "pgflip_client_errors_total", "sqlstate_class=\"08\"") >= 1.0,
        "the 08001 sent to the client is counted:\n{text}"
    );
}

#[test]
fn status_is_json_and_unknown_paths_are_json_404() {
    let proxy = Proxy::start(shared_cluster());
    let (status, body) = proxy.admin_get("/v1/status").expect("GET /v1/status");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/v1/status is not JSON ({e}): {body}"));
    assert!(json.is_object(), "/v1/status: {body}");
    assert!(body.contains("blue"), "status names the active upstream: {body}");

    let (status, body) = proxy.admin_get("/no/such/route").expect("GET unknown");
    assert_eq!(status, 404, "{body}");
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("404 body is not JSON ({e}): {body}"));
    assert!(json.get("error").is_some_and(|e| e.is_string()), "404 body needs an \"error\" string: {body}");
}

#[test]
fn non_loopback_admin_needs_a_token_file() {
    let cluster = shared_cluster();
    let exited = ProxyBuilder::for_cluster(cluster).admin_host("0.0.0.0").run_to_exit(Duration::from_secs(20));
    let status = exited.status.unwrap_or_else(|| panic!("proxy kept running:\n{}", exited.output));
    assert!(!status.success(), "exit status {status}:\n{}", exited.output);
    assert!(
        exited.output.contains("--admin-token-file"),
        "the message should point at --admin-token-file:\n{}",
        exited.output
    );

    let proxy = ProxyBuilder::for_cluster(cluster).admin_host("0.0.0.0").admin_token("test-token-123").spawn();
    let (status, _) = proxy.admin_get("/healthz").expect("GET /healthz");
    assert_eq!(status, 200);
}

fn config_toml(cluster_port: u16, listen: u16, admin: u16, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:{listen}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
         active = \"blue\"\nshutdown_grace = 1\n{extra}\
         upstream = {{ blue = \"postgres://127.0.0.1:{cluster_port}\" }}\n"
    )
}

#[test]
fn config_file_with_the_same_keys_works() {
    let cluster = shared_cluster();
    let port = cluster.port();
    let proxy = ProxyBuilder::default().config(move |listen, admin| config_toml(port, listen, admin, "")).spawn();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres")
        .unwrap_or_else(|e| panic!("startup through a proxy started from --config: {e}"));
    assert_eq!(conn.query_value("SELECT 40 + 2").expect("query").as_deref(), Some("42"));
}

#[test]
fn bad_config_names_the_key_and_exits_non_zero() {
    let port = shared_cluster().port();
    let cases: [(&str, &str, &[&str]); 4] = [
        ("an unknown key", "listen_adress = \"127.0.0.1:1\"\n", &["listen_adress"]),
        ("a grace that is not a number", "", &["shutdown_grace"]),
        ("an unparsable listen address", "", &["listen"]),
        ("an active upstream that does not exist", "", &["active", "purple"]),
    ];
    for (index, (what, extra, keys)) in cases.into_iter().enumerate() {
        let exited = ProxyBuilder::default()
            .config(move |listen, admin| {
                let good = config_toml(port, listen, admin, extra);
                match index {
                    1 => good.replace("shutdown_grace = 1", "shutdown_grace = \"soon\""),
                    2 => good.replace(&format!("listen = \"127.0.0.1:{listen}\""), "listen = \"nowhere\""),
                    3 => good.replace("active = \"blue\"", "active = \"purple\""),
                    _ => good,
                }
            })
            .run_to_exit(Duration::from_secs(20));
        let status = exited.status.unwrap_or_else(|| panic!("{what}: proxy kept running:\n{}", exited.output));
        assert!(!status.success(), "{what}: exit status {status}");
        assert!(
            keys.iter().any(|key| exited.output.contains(key)),
            "{what}: the message should name {keys:?}:\n{}",
            exited.output
        );
    }
}
