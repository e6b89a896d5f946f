//! Property tests of the admin API's JSON bodies: the request types at the serde level
//! (any bytes or JSON value refused with an error, valid requests round-tripping, unknown
//! fields refused), then arbitrary bodies against a running sidecar's mutating routes:
//! each one that is not a request of the route's type gets 400 with a JSON
//! `{"error": ...}`, and the sidecar keeps serving.
//!
//! Cases and seed are fixed (no failure files are written); `PROPTEST_CASES` and
//! `PROPTEST_RNG_SEED` override them for a longer run by hand.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pgflip::api::{
    OnTimeout, OnUnmovable, PauseRequest, PutUpstreamRequest, ResumeRequest, StandbyReport, StandbyState,
    SwitchRequest, TargetLacks,
};
use pgflip::proxy::upstream::UpstreamUrl;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use support::Proxy;

fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0x7067_666c_6970);
    }
    config.failure_persistence = None;
    config
}

/// Names the request types use, so that arbitrary objects often hit a real field.
const FIELDS: [&str; 14] = [
    "drain_timeout_ms",
    "lease_ms",
    "on_timeout",
    "on_unmovable",
    "generation",
    "to",
    "to_lacks",
    "version",
    "settings",
    "url",
    "upstream",
    "state",
    "lag_seconds",
    "abort",
];

/// Any JSON value, with strings and keys often taken from the request types' vocabulary.
fn json_value() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        proptest::sample::select(&FIELDS[..]).prop_map(str::to_owned),
        proptest::sample::select(&["terminate", "block", "replicating", "fenced", "retired"][..])
            .prop_map(str::to_owned),
        any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        word.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(word.clone(), inner, 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Bodies a client could send: bytes, JSON values, and now and then more than the
/// sidecar reads (64 KiB).
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..128),
        8 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => proptest::collection::vec(proptest::sample::select(b" \t\r\n{}[]\"0a:,".to_vec()), 0..16),
        1 => (65 * 1024..70 * 1024usize).prop_map(|n| vec![b' '; n]),
    ]
}

fn millis() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(any::<u64>())
}

fn pause_request() -> impl Strategy<Value = PauseRequest> {
    let lacks = proptest::option::of(
        (any::<String>(), proptest::collection::vec(any::<String>(), 0..4))
            .prop_map(|(version, settings)| TargetLacks { version, settings }),
    );
    (millis(), millis(), on_timeout(), on_unmovable(), millis(), proptest::option::of(any::<String>()), lacks).prop_map(
        |(drain_timeout_ms, lease_ms, on_timeout, on_unmovable, generation, to, to_lacks)| PauseRequest {
            drain_timeout_ms,
            lease_ms,
            on_timeout,
            on_unmovable,
            generation,
            to,
            to_lacks,
        },
    )
}

fn on_timeout() -> impl Strategy<Value = Option<OnTimeout>> {
    proptest::option::of(prop_oneof![Just(OnTimeout::Abort), Just(OnTimeout::Terminate)])
}

fn on_unmovable() -> impl Strategy<Value = Option<OnUnmovable>> {
    proptest::option::of(prop_oneof![Just(OnUnmovable::Block), Just(OnUnmovable::Terminate)])
}

fn switch_request() -> impl Strategy<Value = SwitchRequest> {
    (any::<String>(), millis(), millis(), millis(), on_timeout(), on_unmovable()).prop_map(
        |(to, generation, drain_timeout_ms, lease_ms, on_timeout, on_unmovable)| SwitchRequest {
            to,
            generation,
            drain_timeout_ms,
            lease_ms,
            on_timeout,
            on_unmovable,
        },
    )
}

fn standby_report() -> impl Strategy<Value = StandbyReport> {
    let state = prop_oneof![Just(StandbyState::Replicating), Just(StandbyState::Fenced), Just(StandbyState::Retired)];
    // Short binary fractions: serde_json as built here (without `float_roundtrip`) may read
    // a float of 16 or more digits back one unit off, e.g. 900720.3330078125.
    let lag = proptest::option::of((0u32..1 << 20, 0u32..64).prop_map(|(s, f)| f64::from(s) + f64::from(f) / 64.0));
    (any::<String>(), state, lag).prop_map(|(upstream, state, lag_seconds)| StandbyReport {
        upstream,
        state,
        lag_seconds,
    })
}

/// `value` encoded, decoded, and compared; then again with a field no type has.
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) -> Result<(), TestCaseError> {
    let text = serde_json::to_vec(value).unwrap();
    prop_assert_eq!(&serde_json::from_slice::<T>(&text).unwrap(), value);
    let mut object = serde_json::to_value(value).unwrap();
    object.as_object_mut().unwrap().insert("no_such_field".into(), Value::Null);
    let refused = serde_json::from_value::<T>(object).unwrap_err().to_string();
    prop_assert!(refused.contains("unknown field"), "{}", refused);
    Ok(())
}

/// Decoding `bytes` as `T` either fails or gives a value that survives a round trip.
/// (Not for types with floats: serde_json may read a float back one unit off.)
fn decodes_consistently<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<bool, TestCaseError> {
    let Ok(value) = serde_json::from_slice::<T>(bytes) else { return Ok(false) };
    let again = serde_json::from_slice::<T>(&serde_json::to_vec(&value).unwrap()).unwrap();
    prop_assert_eq!(again, value);
    Ok(true)
}

proptest! {
    #![proptest_config(config(512))]

    /// Valid requests of every type survive encoding and decoding; a field the type does
    /// not have is refused by name.
    #[test]
    fn requests_round_trip(
        pause in pause_request(),
        switch in switch_request(),
        generation in millis(),
        url in any::<String>(),
        report in standby_report(),
    ) {
        round_trips(&pause)?;
        round_trips(&switch)?;
        round_trips(&ResumeRequest { generation })?;
        round_trips(&PutUpstreamRequest { url, generation })?;
        round_trips(&report)?;
    }

    /// Any bytes decode as each request type or fail with an error, never a panic; what
    /// decodes survives a round trip.
    #[test]
    fn any_body_decodes_or_fails(body in body()) {
        decodes_consistently::<PauseRequest>(&body)?;
        decodes_consistently::<SwitchRequest>(&body)?;
        decodes_consistently::<ResumeRequest>(&body)?;
        decodes_consistently::<PutUpstreamRequest>(&body)?;
        let _ = serde_json::from_slice::<Option<StandbyReport>>(&body);
    }

    /// The upstream URL of `PUT /v1/upstreams/{name}` parses or fails with an error.
    #[test]
    fn any_upstream_url_parses_or_fails(
        url in prop_oneof![any::<String>(), "postgres(ql)?://[^/?]{0,24}(/[^?]{0,8})?(\\?[a-z_=&%0-9]{0,32})?"],
    ) {
        let _ = UpstreamUrl::parse(&url);
    }
}

/// The mutating routes, and what decodes as each one's body.
type Decodes = fn(&[u8]) -> bool;
const ROUTES: [(&str, &str, Decodes); 5] = [
    ("POST", "/v1/pause", |b| serde_json::from_slice::<PauseRequest>(b).is_ok()),
    ("POST", "/v1/resume", |b| serde_json::from_slice::<ResumeRequest>(b).is_ok()),
    ("POST", "/v1/switch", |b| serde_json::from_slice::<SwitchRequest>(b).is_ok()),
    ("PUT", "/v1/upstreams/fuzz", |b| serde_json::from_slice::<PutUpstreamRequest>(b).is_ok()),
    ("PUT", "/v1/standby", |b| serde_json::from_slice::<Option<StandbyReport>>(b).is_ok()),
];

/// The admin token the sidecar of these tests is started with.
const TOKEN: &str = "fuzz-admin-token";

/// Sends `body` as it is (any bytes) and returns the status and the body of the answer.
fn send(proxy: &Proxy, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.admin_port())).expect("connect to the admin API");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The sidecar may answer and close before reading a body over its limit.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        // Closing with a body still unread resets the connection; the answer came before.
        assert!(e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty(), "{method} {path}: {e}");
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    let status = String::from_utf8_lossy(&raw[..split]).split_whitespace().nth(1).and_then(|s| s.parse().ok());
    (status.expect("a status line"), raw[split + 4..].to_vec())
}

/// Every body sent to a mutating route is either a request of its type or refused with
/// 400 and `{"error": ...}`; whatever came, the sidecar still answers its health checks.
#[test]
fn the_admin_api_refuses_what_is_not_a_request() {
    // No database is needed: nothing here reaches an upstream.
    let proxy =
        Proxy::builder().upstream("blue", "postgres://127.0.0.1:9/postgres").active("blue").admin_token(TOKEN).spawn();
    let mut runner = TestRunner::new(config(256));
    let routes = proptest::sample::select(&ROUTES[..]);
    runner
        .run(&(routes, body()), |((method, path, decodes), body)| {
            let (status, answer) = send(&proxy, method, path, &body);
            let answer: Value = serde_json::from_slice(&answer)
                .map_err(|e| TestCaseError::fail(format!("{method} {path} answered {status} with no JSON: {e}")))?;
            let blank = body.iter().all(u8::is_ascii_whitespace) && body.len() <= 64 * 1024;
            if blank || decodes(&body) && body.len() <= 64 * 1024 {
                prop_assert!(
                    [200, 201, 400, 404, 409, 503].contains(&status),
                    "{} {} with a valid body answered {}: {}",
                    method,
                    path,
                    status,
                    answer
                );
            } else {
                prop_assert_eq!(
                    status,
                    400,
                    "{} {} {:?} answered {}",
                    method,
                    path,
                    String::from_utf8_lossy(&body),
                    answer
                );
                prop_assert!(answer["error"].is_string(), "{} {} answered {}", method, path, answer);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}\nproxy output:\n{}", proxy.output()));
    let (status, _) = proxy.admin_get("/readyz").expect("GET /readyz");
    assert_eq!(status, 200, "the sidecar still serves:\n{}", proxy.output());
    let (status, status_body) = proxy.admin_get("/v1/status").expect("GET /v1/status");
    assert_eq!(status, 200, "{status_body}");
}
