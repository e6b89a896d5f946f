//! Unit tests of `pgflip ctl`: URL parsing, request bytes, answer parsing, and flags to bodies.

use std::time::Duration;

use clap::Parser;

use crate::api::{StandbyReport, StandbyState};

use super::error::{ResponseError, UrlError};
use super::response::{read_response, Response, MAX_BODY};
use super::url::{AdminUrl, Scheme};
use super::{read_token, Action, CtlArgs, CtlError};

fn url(text: &str) -> Result<AdminUrl, UrlError> {
    text.parse()
}

#[test]
fn admin_urls_accept_only_http_host_port() {
    assert_eq!(url("http://127.0.0.1:9187"), Ok(AdminUrl::http("127.0.0.1", 9187)));
    assert_eq!(url("http://localhost:9187/"), Ok(AdminUrl::http("localhost", 9187)));
    assert_eq!(url("HTTP://sidecar:1"), Ok(AdminUrl::http("sidecar", 1)));
    let v6 = url("http://[::1]:9187").unwrap();
    assert_eq!(v6, AdminUrl::http("::1", 9187));
    assert_eq!(v6.authority(), "[::1]:9187");
    assert_eq!(v6.to_string(), "http://[::1]:9187");

    let https = url("https://sidecar.internal:9187/").unwrap();
    assert_eq!(https, AdminUrl { scheme: Scheme::Https, host: "sidecar.internal".into(), port: 9187 });
    assert_eq!(https.to_string(), "https://sidecar.internal:9187");
    assert_eq!(url("ftp://127.0.0.1:9187"), Err(UrlError::Scheme("ftp".into())));
    assert_eq!(url("127.0.0.1:9187"), Err(UrlError::NoScheme));
    assert_eq!(url("http://127.0.0.1"), Err(UrlError::NoPort));
    assert_eq!(url("http://127.0.0.1:"), Err(UrlError::NoPort));
    assert_eq!(url("http://127.0.0.1:0"), Err(UrlError::BadPort("0".into())));
    assert_eq!(url("http://127.0.0.1:70000"), Err(UrlError::BadPort("70000".into())));
    assert_eq!(url("http://:9187"), Err(UrlError::NoHost));
    assert_eq!(url("http://admin:pw@127.0.0.1:9187"), Err(UrlError::UserInfo));
    assert_eq!(url("http://127.0.0.1:9187/v1"), Err(UrlError::Path));
    assert_eq!(url("http://127.0.0.1:9187?x=1"), Err(UrlError::Path));
    assert_eq!(url("http://::1:9187"), Err(UrlError::Ipv6Brackets));
    assert_eq!(url("http://[::1"), Err(UrlError::Ipv6Brackets));
}

async fn parse(bytes: &[u8]) -> Result<Response, ResponseError> {
    let mut reader = bytes;
    read_response(&mut reader).await
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(future)
}

#[test]
fn answers_are_read_by_content_length_chunked_or_until_close() {
    block_on(async {
        let sized =
            parse(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}extra").await;
        assert_eq!(sized.unwrap(), Response { status: 200, reason: "OK".into(), body: b"{}".to_vec() });

        let chunked = b"HTTP/1.1 409 Conflict\r\ntransfer-encoding: chunked\r\n\r\n\
                        5;ext=1\r\n{\"a\":\r\n2\r\n1}\r\n0\r\nX-Trailer: y\r\n\r\n";
        let chunked = parse(chunked).await.unwrap();
        assert_eq!((chunked.status, chunked.body.as_slice()), (409, &b"{\"a\":1}"[..]));
        assert_eq!(chunked.status_line(), "409 Conflict");

        let until_close = parse(b"HTTP/1.0 403\nServer: x\n\n{\"error\": \"no\"}").await.unwrap();
        assert_eq!((until_close.status, until_close.reason.as_str()), (403, ""));
        assert_eq!(until_close.body, b"{\"error\": \"no\"}");
        assert_eq!(until_close.status_line(), "403");

        let interim = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
        assert_eq!((interim.status, interim.body.len()), (204, 0));
    });
}

#[test]
fn garbage_and_truncated_answers_are_refused() {
    block_on(async {
        for (bytes, expected) in [
            (&b""[..], "closed before any answer"),
            (b"SSH-2.0-OpenSSH_9.6\r\n", "not HTTP/1.x"),
            (b"HTTP/1.1 abc OK\r\n\r\n", "no status code"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", "closed inside the headers"),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "has no colon"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "before the end of a 10-byte body"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "Content-Length"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}", "not followed by CRLF"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", "before the last chunk"),
        ] {
            let error = parse(bytes).await.expect_err(&String::from_utf8_lossy(bytes));
            assert!(error.to_string().contains(expected), "{:?}: {error}", String::from_utf8_lossy(bytes));
        }
        let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert!(matches!(parse(huge.as_bytes()).await, Err(ResponseError::TooLarge { .. })));
        let long_line = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(10_000));
        assert!(parse(long_line.as_bytes()).await.unwrap_err().to_string().contains("longer than"));
    });
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    ctl: CtlArgs,
}

fn ctl(args: &[&str]) -> CtlArgs {
    Cli::try_parse_from(std::iter::once("ctl").chain(args.iter().copied())).expect("flags parse").ctl
}

fn body(args: &[&str]) -> serde_json::Value {
    let call = ctl(args).action.call().expect("call");
    serde_json::from_slice(call.body.as_deref().expect("a body")).expect("JSON body")
}

#[test]
fn flags_become_the_api_request_bodies() {
    let status = ctl(&["--admin-url", "http://10.0.0.1:9000", "status"]);
    assert_eq!(status.admin_url, AdminUrl::http("10.0.0.1", 9000));
    let call = status.action.call().unwrap();
    assert_eq!((call.method, call.path.as_str(), call.body), ("GET", "/v1/status", None));

    let pause = body(&["pause", "--drain-timeout-ms", "100", "--on-timeout", "terminate", "--generation", "3"]);
    assert_eq!(pause["drain_timeout_ms"], 100);
    assert_eq!(pause["lease_ms"], serde_json::Value::Null);
    assert_eq!(pause["on_timeout"], "terminate");
    assert_eq!(pause["generation"], 3);
    assert_eq!(body(&["resume"]), serde_json::json!({"generation": null}));
    let switch = body(&["switch", "green", "--lease-ms", "5000", "--on-timeout", "abort"]);
    assert_eq!(switch["to"], "green");
    assert_eq!(switch["lease_ms"], 5000);
    assert_eq!(switch["on_timeout"], "abort");

    assert!(Cli::try_parse_from(["ctl", "switch"]).is_err(), "switch needs TO");
    assert!(Cli::try_parse_from(["ctl", "pause", "--on-timeout", "wait"]).is_err());
    let https = Cli::try_parse_from(["ctl", "--admin-url", "https://h:1", "--ca-file", "ca.pem", "status"]).unwrap();
    assert_eq!(https.ctl.admin_url.scheme, Scheme::Https);
    assert_eq!(https.ctl.ca_file.as_deref(), Some(std::path::Path::new("ca.pem")));
}

#[test]
fn standby_reports_an_upstream_with_its_state_and_lag() {
    let call = ctl(&["standby", "green", "--state", "replicating", "--lag", "0.5"]).action.call().unwrap();
    assert_eq!((call.method, call.path.as_str()), ("PUT", "/v1/standby"));
    let report: StandbyReport = serde_json::from_slice(call.body.as_deref().expect("a body")).unwrap();
    assert_eq!(
        report,
        StandbyReport { upstream: "green".into(), state: StandbyState::Replicating, lag_seconds: Some(0.5) }
    );
    let retired = body(&["standby", "blue", "--state", "retired"]);
    assert_eq!(retired, serde_json::json!({"upstream": "blue", "state": "retired", "lag_seconds": null}));
    assert_eq!(body(&["standby", "blue", "--state", "fenced"])["state"], "fenced");

    assert!(Cli::try_parse_from(["ctl", "standby", "green"]).is_err(), "standby needs --state");
    assert!(Cli::try_parse_from(["ctl", "standby", "--state", "fenced"]).is_err(), "standby needs UPSTREAM");
    assert!(Cli::try_parse_from(["ctl", "standby", "green", "--state", "lagging"]).is_err());
    for lag in ["-1", "x", "inf"] {
        let err = Cli::try_parse_from(["ctl", "standby", "green", "--state", "replicating", "--lag", lag]).unwrap_err();
        assert!(err.to_string().contains("--lag"), "{lag}: {err}");
    }
    let call = ctl(&["standby", "green", "--state", "replicating", "--lag", "1m30s"]).action.call().unwrap();
    let report: StandbyReport = serde_json::from_slice(call.body.as_deref().expect("a body")).unwrap();
    assert_eq!(report.lag_seconds, Some(90.0));
}

#[test]
fn drain_flags_take_durations_with_units() {
    let pause = body(&["pause", "--drain-timeout", "2s", "--lease", "1m"]);
    assert_eq!((pause["drain_timeout_ms"].as_u64(), pause["lease_ms"].as_u64()), (Some(2000), Some(60_000)));
    let switch = body(&["switch", "green", "--drain-timeout", "1.5"]);
    assert_eq!(switch["drain_timeout_ms"], 1500);
    let err = Cli::try_parse_from(["ctl", "pause", "--drain-timeout", "5 parsecs"]).unwrap_err();
    assert!(err.to_string().contains("--drain-timeout") && err.to_string().contains("parsecs"), "{err}");
    let both = Cli::try_parse_from(["ctl", "pause", "--lease", "1s", "--lease-ms", "1000"]);
    assert!(both.is_err(), "--lease and --lease-ms together");
}

#[test]
fn a_drain_lengthens_the_deadline_past_sixty_seconds() {
    let deadline = |args: &[&str]| ctl(args).action.call().unwrap().deadline;
    assert_eq!(deadline(&["status"]), Duration::from_secs(60));
    assert_eq!(deadline(&["switch", "green"]), Duration::from_secs(60));
    assert_eq!(deadline(&["pause", "--drain-timeout-ms", "1000"]), Duration::from_secs(60));
    assert_eq!(deadline(&["switch", "green", "--drain-timeout-ms", "120000"]), Duration::from_secs(150));
}

#[test]
fn requests_carry_host_token_length_and_close() {
    let args = ctl(&["--admin-url", "http://[::1]:9187", "resume", "--generation", "2"]);
    let call = args.action.call().unwrap();
    let bytes = String::from_utf8(call.encode(&args.admin_url, Some("s3cret"))).unwrap();
    let (head, body) = bytes.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /v1/resume HTTP/1.1\r\nHost: [::1]:9187\r\n"), "{head}");
    assert!(head.contains("\r\nAuthorization: Bearer s3cret\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Type: application/json\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())), "{head}");
    assert!(head.ends_with("\r\nConnection: close"), "{head}");
    assert_eq!(body, r#"{"generation":2}"#);
    assert!(matches!(ctl(&["status"]).action, Action::Status));
}

#[test]
fn token_files_are_trimmed_and_must_hold_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "  tok\n").unwrap();
    assert_eq!(read_token(&path).unwrap(), "tok");
    std::fs::write(&path, "\n").unwrap();
    assert!(matches!(read_token(&path), Err(CtlError::EmptyToken { .. })));
    std::fs::write(&path, "a\nb\n").unwrap();
    assert!(matches!(read_token(&path), Err(CtlError::MultilineToken { .. })));
    let missing = read_token(&dir.path().join("missing")).unwrap_err();
    assert!(missing.to_string().contains("cannot read the admin token file"), "{missing}");
}
