//! Sessions moved by the sidecar between PostgreSQL 15 and 18 (both from npm): a session
//! that set a setting the other version lacks (`force_parallel_mode` went in 16,
//! `enable_group_by_reordering` came in 17), by `SET` or in its startup packet, cannot
//! move; a pause that names the target lists it by the setting, `on_unmovable =
//! terminate` ends it with a FATAL naming the setting, and every other session moves and
//! hears the new `server_version` with its next answer.

mod support;

use serde_json::Value;
use support::wire::{client_error, parse_data_row, query_packet, Message, PgError};
use support::{pgversions, Cluster, ClusterOptions, ProxyBuilder, RawConn};

/// What one Query got back: the rows, the ParameterStatus messages that came with the
/// answer, and the first error.
type Answer = (Vec<Vec<Option<String>>>, Vec<(String, String)>, Option<PgError>);

/// Sends `sql` as one Query and reads to ReadyForQuery.
fn ask(conn: &mut RawConn, sql: &str) -> Answer {
    conn.send(&query_packet(sql)).expect("send");
    let (mut rows, mut params, mut error) = (Vec::new(), Vec::new(), None);
    loop {
        let Some(Message { tag, body }) = conn.read_message().expect("read") else {
            error.get_or_insert_with(|| client_error("closed"));
            break;
        };
        match tag {
            b'D' => rows.push(parse_data_row(&body)),
            b'S' => {
                let mut parts = body.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
                params.push((parts.next().unwrap_or_default(), parts.next().unwrap_or_default()));
            }
            b'E' => {
                let e = PgError::parse(&body);
                let fatal = e.severity() == "FATAL";
                error.get_or_insert(e);
                if fatal {
                    break;
                }
            }
            b'Z' => break,
            _ => {}
        }
    }
    (rows, params, error)
}

fn value(conn: &mut RawConn, sql: &str) -> String {
    let (rows, _, error) = ask(conn, sql);
    assert!(error.is_none(), "{sql}: {error:?}");
    rows[0][0].clone().expect("a value")
}

fn connect(port: u16, options: Option<&str>) -> RawConn {
    let mut conn = RawConn::connect(port).expect("connect");
    let mut params = vec![("user", "postgres"), ("database", "postgres")];
    params.extend(options.map(|options| ("options", options)));
    conn.startup_with(&params).expect("startup");
    conn
}

#[test]
fn sessions_whose_settings_the_other_version_lacks_stay_and_the_others_move() {
    let (bin15, bin18) = match (pgversions::server_bin(15), pgversions::server_bin(18)) {
        (Ok(b), Ok(g)) => (b, g),
        (Err(message), _) | (_, Err(message)) => return eprintln!("skipped: {message}"),
    };
    let blue = Cluster::start_with(ClusterOptions::default().bin_dir(bin15));
    let green = Cluster::start_with(ClusterOptions::default().bin_dir(bin18));
    let proxy = ProxyBuilder::for_cluster(&blue).upstream("green", &green.url()).spawn();
    let port = proxy.port();

    let mut setter = connect(port, None);
    value(&mut setter, "SELECT set_config('force_parallel_mode', 'on', false)");
    let mut by_startup = connect(port, Some("-c force_parallel_mode=off"));
    // Named in a SET, back at its default: nothing to carry, so it moves.
    let mut reset = connect(port, None);
    value(&mut reset, "SET force_parallel_mode = regress; RESET force_parallel_mode; SELECT 1");
    let mut plain = connect(port, None);
    value(&mut plain, "SET work_mem = '5MB'; PREPARE twice(int) AS SELECT $1 * 2; SELECT 1");

    // A pause that names green lists the two sessions by the setting, and lets go.
    let (code, answer) = proxy.admin_post_json("/v1/pause", r#"{"to": "green"}"#);
    assert_eq!(code, 409, "{answer}");
    let blockers: Vec<&Value> = answer["blockers"].as_array().expect("blockers").iter().collect();
    assert_eq!(blockers.len(), 2, "{answer}");
    for blocker in &blockers {
        let why = blocker["unmovable"].as_str().expect("why");
        assert!(why.contains("force_parallel_mode") && why.contains("18."), "{why}");
    }
    assert!(blockers.iter().any(|b| b["unmovable"].as_str().unwrap().contains("startup packet")), "{answer}");
    let error = answer["error"].as_str().expect("error");
    assert!(error.contains("2 parked sessions") && error.contains("force_parallel_mode"), "{error}");
    assert_eq!(value(&mut plain, "SHOW server_version_num").get(..2), Some("15"));

    // A pause that names no target (the current one's) is not held up by them.
    let (code, answer) = proxy.admin_post_json("/v1/pause", r#"{"to": "blue"}"#);
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = proxy.admin_post_json("/v1/resume", "{}");
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = proxy.admin_post_json("/v1/pause", r#"{"to": "nowhere"}"#);
    assert_eq!(code, 404, "{answer}");

    // With `terminate` the switch ends them, naming the setting; the others move.
    let (code, answer) = proxy.admin_post_json("/v1/switch", r#"{"to": "green", "on_unmovable": "terminate"}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["moved"], 2, "{answer}");
    assert_eq!(answer["failed"], 0, "{answer}");
    for conn in [&mut setter, &mut by_startup] {
        let (_, _, error) = ask(conn, "SELECT 1");
        let error = error.expect("the session was ended");
        assert_eq!((error.severity(), error.code()), ("FATAL", "57P01"), "{error}");
        assert!(error.message().contains("force_parallel_mode"), "{error}");
    }
    let (rows, params, error) = ask(&mut plain, "SHOW work_mem");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(rows[0][0].as_deref(), Some("5MB"));
    let version = params.iter().find(|(name, _)| name == "server_version").map(|(_, v)| v.clone());
    assert!(version.as_deref().is_some_and(|v| v.starts_with("18.")), "ParameterStatus with the answer: {params:?}");
    assert_eq!(value(&mut plain, "EXECUTE twice(21)"), "42");
    assert_eq!(value(&mut reset, "SHOW server_version_num").get(..2), Some("18"));

    // On the way back a setting that only 18 has keeps the session, until it is reset.
    value(&mut plain, "SET enable_group_by_reordering = off; SELECT 1");
    let (code, answer) = proxy.admin_post_json("/v1/switch", r#"{"to": "blue"}"#);
    assert_eq!(code, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("enable_group_by_reordering"), "{answer}");
    value(&mut plain, "RESET enable_group_by_reordering; SELECT 1");
    let (code, answer) = proxy.admin_post_json("/v1/switch", r#"{"to": "blue"}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["moved"], 2, "{answer}");
    let (_, params, error) = ask(&mut plain, "EXECUTE twice(4)");
    assert!(error.is_none(), "{error:?}");
    assert!(params.iter().any(|(n, v)| n == "server_version" && v.starts_with("15.")), "{params:?}");
}
