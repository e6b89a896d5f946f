//! TLS on both legs: the proxy to an ssl=on upstream (verify-full, require,
//! disable, a wrong CA), and clients to the proxy with `--tls-cert/--tls-key`.

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use support::{assert_select_one, psql, psql_script, Cluster, ClusterOptions, Proxy, ProxyBuilder, RawConn, TestCa};

/// The ssl=on cluster of this test binary, with copies of its CA and server files.
struct TlsCluster {
    cluster: Cluster,
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

fn tls_cluster() -> &'static TlsCluster {
    static SHARED: OnceLock<TlsCluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let ca = TestCa::new("upstream");
        let cluster = Cluster::start_with(ClusterOptions::default().ssl(&ca));
        let (ca_cert, server_cert, server_key) = cluster.tls_files().expect("cluster keeps its TLS files");
        TlsCluster { cluster, ca_cert, server_cert, server_key }
    })
}

fn upstream_url(host: &str, query: &str) -> String {
    format!("postgres://{host}:{}?{query}", tls_cluster().cluster.port())
}

/// `ssl` of the server backend that serves a session opened through `proxy`.
fn upstream_ssl(proxy: &Proxy) -> String {
    let out = psql(&proxy.conninfo("postgres", "postgres"), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    out.assert_success("query pg_stat_ssl through the proxy");
    out.stdout.trim().to_string()
}

#[test]
fn direct_connection_verifies_the_test_ca() {
    let setup = tls_cluster();
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         sslmode=verify-full sslrootcert={}",
        setup.cluster.port(),
        setup.ca_cert.display()
    );
    let out = psql(&conninfo, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    out.assert_success("direct psql with sslmode=verify-full");
    assert_eq!(out.lines(), vec!["t"]);
}

#[test]
fn upstream_verify_full_with_the_right_ca() {
    let setup = tls_cluster();
    let query = format!("sslmode=verify-full&sslrootcert={}", setup.ca_cert.display());
    let proxy = ProxyBuilder::default().upstream("blue", &upstream_url("127.0.0.1", &query)).active("blue").spawn();
    assert_eq!(upstream_ssl(&proxy), "t", "upstream leg must use TLS");
}

#[test]
fn upstream_verify_full_by_host_name() {
    let setup = tls_cluster();
    let query = format!("sslmode=verify-full&sslrootcert={}", setup.ca_cert.display());
    let proxy = ProxyBuilder::default().upstream("blue", &upstream_url("localhost", &query)).active("blue").spawn();
    assert_eq!(upstream_ssl(&proxy), "t", "upstream leg must use TLS");
}

#[test]
fn upstream_sslmode_require() {
    tls_cluster();
    let proxy =
        ProxyBuilder::default().upstream("blue", &upstream_url("127.0.0.1", "sslmode=require")).active("blue").spawn();
    assert_eq!(upstream_ssl(&proxy), "t", "sslmode=require must use TLS");
}

#[test]
fn upstream_sslmode_disable_stays_plain() {
    tls_cluster();
    let proxy =
        ProxyBuilder::default().upstream("blue", &upstream_url("127.0.0.1", "sslmode=disable")).active("blue").spawn();
    assert_eq!(upstream_ssl(&proxy), "f", "sslmode=disable must not use TLS");
}

#[test]
fn upstream_with_a_wrong_ca_fails_with_08001_and_the_proxy_keeps_serving() {
    tls_cluster();
    let wrong = TestCa::new("wrong");
    let query = format!("sslmode=verify-full&sslrootcert={}", wrong.ca_cert.display());
    let mut proxy = ProxyBuilder::default().upstream("blue", &upstream_url("127.0.0.1", &query)).active("blue").spawn();
    for attempt in 1..=2 {
        let err = match RawConn::connect_startup(proxy.port(), "postgres", "postgres") {
            Ok(_) => panic!("attempt {attempt}: a session started despite an untrusted server"),
            Err(e) => e,
        };
        assert_eq!(err.code(), "08001", "attempt {attempt}: expected SQLSTATE 08001, got {err:?}");
        assert!(err.message().contains("blue"), "the error should name the upstream: {err:?}");
    }
    assert!(proxy.is_running(), "proxy exited after a TLS failure");
    let (status, _) = proxy.admin_get("/healthz").expect("GET /healthz");
    assert_eq!(status, 200);
}

#[test]
fn clients_can_connect_with_tls_verify_full() {
    let setup = tls_cluster();
    let proxy = ProxyBuilder::for_cluster(&setup.cluster).client_tls(&setup.server_cert, &setup.server_key).spawn();
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         sslmode=verify-full sslrootcert={}",
        proxy.port(),
        setup.ca_cert.display()
    );
    let out = psql_script(&conninfo, "\\conninfo\nSELECT 'over tls';\n", true);
    out.assert_success("psql with sslmode=verify-full to the proxy");
    assert!(out.stdout.contains("SSL connection"), "psql did not report TLS:\n{}", out.stdout);
    assert!(out.stdout.contains("over tls"), "{}", out.stdout);

    let wrong = TestCa::new("client-wrong");
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         sslmode=verify-full sslrootcert={}",
        proxy.port(),
        wrong.ca_cert.display()
    );
    let out = psql(&conninfo, "SELECT 1");
    assert!(!out.success(), "psql trusted the proxy's certificate with an unrelated CA");
    assert!(out.stderr.contains("certificate"), "psql should name the certificate problem: {}", out.stderr);
    std::thread::sleep(Duration::from_millis(100));
    assert_select_one(proxy.port(), "after a failed TLS handshake");
}
