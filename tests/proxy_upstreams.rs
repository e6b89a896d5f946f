//! `PUT /v1/upstreams/{name}`: adding and replacing upstreams at run time, validated.

mod support;

use serde_json::Value;
use support::{free_port, shared_cluster, Proxy, RawConn};

fn put(proxy: &Proxy, name: &str, body: &str) -> (u16, Value) {
    let path = format!("/v1/upstreams/{name}");
    let (status, text) = support::http::request(proxy.admin_port(), "PUT", &path, &[], body).expect("PUT");
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON answer {text:?}: {e}")))
}

fn upstreams(proxy: &Proxy) -> Vec<Value> {
    let (_, text) = proxy.admin_get("/v1/status").expect("status");
    let status: Value = serde_json::from_str(&text).expect("status JSON");
    status["upstreams"].as_array().expect("upstreams").clone()
}

#[test]
fn an_upstream_is_added_then_replaced() {
    let cluster = shared_cluster();
    let proxy = Proxy::start(cluster);
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", cluster.port());
    let (code, answer) = put(&proxy, "green", &format!(r#"{{"url": "{url}"}}"#));
    assert_eq!(code, 201, "{answer}");
    assert_eq!(answer["created"], true);
    assert_eq!(answer["upstream"]["active"], false);
    assert_eq!(answer["generation"], 1, "adding an upstream is no repoint");
    let names: Vec<String> = upstreams(&proxy).iter().map(|u| u["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["blue", "green"]);

    let (code, answer) = put(&proxy, "green", r#"{"url": "postgres://postgres@127.0.0.1:6999/x", "generation": 1}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["created"], false);
    assert_eq!(answer["upstream"]["address"], "127.0.0.1:6999");
}

#[test]
fn replacing_the_active_upstream_moves_new_sessions_only() {
    let cluster = shared_cluster();
    let proxy = Proxy::start(cluster);
    let mut open = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    let closed_port = free_port();
    let (code, answer) =
        put(&proxy, "blue", &format!(r#"{{"url": "postgres://postgres@127.0.0.1:{closed_port}/postgres"}}"#));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["upstream"]["active"], true);
    let Err(err) = RawConn::connect_startup(proxy.port(), "postgres", "postgres") else {
        panic!("a new session reached an upstream on a closed port");
    };
    assert_eq!(err.code(), "08001", "{err}");
    assert_eq!(open.query_value("SELECT 'kept'").expect("the open session").as_deref(), Some("kept"));
}

#[test]
fn invalid_upstreams_are_refused_with_the_reason() {
    let proxy = Proxy::start(shared_cluster());
    for (name, body, expect) in [
        ("green", r#"{"url": "mysql://h"}"#, "postgres://"),
        ("green", r#"{"url": "postgres://h?sslmode=verify-full"}"#, "sslrootcert"),
        (
            "green",
            r#"{"url": "postgres://127.0.0.1?sslmode=verify-full&sslrootcert=/no/such/ca.pem"}"#,
            "/no/such/ca.pem",
        ),
        ("gr%20een", r#"{"url": "postgres://h"}"#, "upstream name"),
        ("green", r#"{"uri": "postgres://h"}"#, "unknown field"),
        ("green", "[1, 2", "invalid JSON"),
    ] {
        let (code, answer) = put(&proxy, name, body);
        assert_eq!(code, 400, "{body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(expect), "{body}: {message:?} should mention {expect:?}");
    }
    let (code, answer) = put(&proxy, "green", r#"{"url": "postgres://h", "generation": 5}"#);
    assert_eq!(code, 409, "{answer}");
    assert_eq!(upstreams(&proxy).len(), 1, "nothing was added");
}
