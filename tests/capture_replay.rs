//! The capture query and its replay against a real PostgreSQL: state set on one
//! connection is read in one simple Query and recreated on a second connection.

mod capture_support;
mod support;

use capture_support::*;
use pgflip::proxy::capture::{
    capture_query, details_query, parse_capture_row, replay_statements, ADVISORY_HOLDERS_QUERY, OVERRIDE_COLUMNS,
};
use std::time::{Duration, Instant};
use support::RawConn;

const SHOWN: [&str; 7] = ["search_path", "statement_timeout", "jit", "work_mem", "DateStyle", "TimeZone", "role"];

#[tokio::test]
async fn captured_state_replays_on_a_new_connection() {
    let cluster = setup();
    let a = connect(cluster).await;
    for sql in [
        &format!("SET search_path = {SEARCH_PATH}"),
        "SET statement_timeout = '1500ms'",
        "SET work_mem = '8MB'",
        "SET jit = off",
        "SET DateStyle = 'SQL, DMY'",
        "SET TimeZone = 'Asia/Kolkata'",
        "SET myapp.tenant = 'tenant ''42'''",
        r"SELECT pg_catalog.set_config('myapp.region', 'eu\west', false)",
        "SET ROLE \"Tenant Role\"",
        "PREPARE by_mood(\"Mood\", int) AS SELECT pg_catalog.format('%s:%s', $1, $2)",
        "LISTEN \"Chan One\"",
        "CREATE TEMP TABLE scratch (id int)",
        "SELECT pg_catalog.pg_advisory_lock(42)",
    ] {
        a.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let protocol = a.prepare("SELECT $1::int + 1").await.expect("protocol-level prepare");
    let _moody = a.prepare("SELECT $1::\"Mood\", $2::int").await.expect("protocol-level prepare of a user type");
    let pid: i32 = value(&a, "SELECT pg_catalog.pg_backend_pid()").await.parse().expect("pid");

    let started = Instant::now();
    let snap = capture(&a).await;
    eprintln!("capture took {:?}", started.elapsed());
    assert_eq!(snap.pid, pid);
    assert_eq!(snap.session_authorization, APP_USER);
    assert_eq!(snap.role.as_deref(), Some("Tenant Role"));
    assert_eq!(snap.setting("statement_timeout"), Some("1500ms"));
    assert_eq!(snap.setting("jit"), Some("off"));
    assert_eq!(snap.setting("search_path"), Some(SEARCH_PATH));
    assert_eq!(snap.setting("work_mem"), Some("8MB"));
    assert_eq!(snap.setting("DateStyle"), Some("SQL, DMY"));
    assert_eq!(snap.setting("TimeZone"), Some("Asia/Kolkata"));
    for skipped in ["statement_timeout", "jit", "transaction_isolation", "transaction_read_only", "role"] {
        assert!(snap.settings.iter().all(|s| s.name != skipped), "{skipped} must not be among the settings");
    }
    let custom: Vec<(&str, &str)> = snap.custom_settings.iter().map(|s| (s.name.as_str(), s.value.as_str())).collect();
    assert_eq!(custom, [("myapp.tenant", "tenant '42'"), ("myapp.region", r"eu\west")]);
    let sql: Vec<_> = snap.sql_statements().collect();
    assert_eq!(sql.len(), 1);
    assert_eq!(sql[0].name, "by_mood");
    assert_eq!(sql[0].param_types, [r#""My Schema"."Mood""#, "pg_catalog.int4"]);
    // tokio-postgres prepared statements of its own to look the user type up.
    let mut proto: Vec<_> = snap.protocol_statements().filter(|p| p.statement.starts_with("SELECT $1::")).collect();
    assert_eq!(proto.len(), 2);
    proto.sort_by_key(|p| p.statement.contains("Mood"));
    // A user type's OID differs between servers: such a statement carries names.
    assert_eq!(proto[1].param_types, [r#""My Schema"."Mood""#, "pg_catalog.int4"]);
    assert_eq!(proto[1].stable_oids(), None);
    // Built-in parameter types travel as OIDs only: no name lookup in the capture.
    assert_eq!(proto[0].statement, "SELECT $1::int + 1");
    assert!(proto[0].param_types.is_empty(), "{:?}", proto[0].param_types);
    assert_eq!(proto[0].stable_oids(), Some(&[23][..]));
    assert_eq!(snap.listen, ["Chan One"]);
    assert!(snap.unmovable.temp_objects >= 1, "{:?}", snap.unmovable);
    let holders = all_values(&a, ADVISORY_HOLDERS_QUERY).await;
    let mine = holders.chunks(2).find(|row| row[0] == Some(pid.to_string()));
    assert_eq!(mine.map(|row| row[1].as_deref()), Some(Some("1")), "{holders:?}");
    assert_eq!(snap.unmovable.holdable_cursors, 0);
    assert!(!snap.unmovable.holds_xid);
    assert!(snap.unmovable.describe().contains("temp object"), "{}", snap.unmovable.describe());

    // The capture left A as it was.
    assert_eq!(value(&a, "SHOW statement_timeout").await, "1500ms");
    assert_eq!(value(&a, "SELECT current_user").await, "Tenant Role");
    let row = a.query_one(&protocol, &[&41i32]).await.expect("protocol statement still there");
    assert_eq!(row.get::<_, i32>(0), 42);

    let b = connect(cluster).await;
    let plan = replay_statements(&snap, APP_USER, None);
    assert!(plan.not_replayable.is_empty(), "{:?}", plan.not_replayable);
    for sql in &plan.statements {
        b.simple_query(sql).await.unwrap_or_else(|e| panic!("replay {sql}: {e}"));
    }
    for name in SHOWN {
        let sql = format!("SHOW {name}");
        assert_eq!(value(&b, &sql).await, value(&a, &sql).await, "{name}");
    }
    for name in ["myapp.tenant", "myapp.region"] {
        let sql = format!("SELECT pg_catalog.current_setting('{name}', true)");
        assert_eq!(value(&b, &sql).await, value(&a, &sql).await, "{name}");
    }
    assert_eq!(value(&b, "SELECT current_user").await, "Tenant Role");
    assert_eq!(value(&b, "SELECT session_user").await, APP_USER);
    let execute = "EXECUTE by_mood('happy', 7)";
    assert_eq!(value(&b, execute).await, "happy:7");
    assert_eq!(value(&b, execute).await, value(&a, execute).await);
    let channels = "SELECT pg_catalog.string_agg(c, ',' ORDER BY c) FROM pg_catalog.pg_listening_channels() c";
    assert_eq!(value(&b, channels).await, value(&a, channels).await);

    // Captured again on B, the movable state is the same.
    let again = capture(&b).await;
    assert_eq!(
        (&again.role, &again.settings, &again.custom_settings),
        (&snap.role, &snap.settings, &snap.custom_settings)
    );
    assert_eq!(again.overridden, snap.overridden);
    assert_eq!(again.listen, snap.listen);
    assert_eq!(again.sql_statements().map(|s| &s.param_types).collect::<Vec<_>>(), vec![&sql[0].param_types]);
    assert!(again.unmovable.is_empty(), "{:?}", again.unmovable);
}

#[tokio::test]
async fn a_prepare_sent_with_other_statements_is_reported() {
    let cluster = setup();
    let a = connect(cluster).await;
    a.simple_query("SET search_path = \"My Schema\", public").await.expect("search_path");
    a.simple_query("PREPARE arrays(\"Mood\"[], int[]) AS SELECT $1, $2").await.expect("prepare arrays");
    a.simple_query("SELECT 1; PREPARE combo AS SELECT 2").await.expect("prepare combo");
    let snap = capture(&a).await;
    let combo = snap.prepared.iter().find(|s| s.name == "combo").expect("combo captured");
    assert_eq!(combo.statement, "SELECT 1; PREPARE combo AS SELECT 2", "the whole Query text is stored");
    let arrays = snap.prepared.iter().find(|s| s.name == "arrays").expect("arrays captured");
    assert_eq!(arrays.param_types, [r#""My Schema"."Mood"[]"#, "pg_catalog.int4[]"]);

    let plan = replay_statements(&snap, APP_USER, None);
    assert!(plan.not_replayable.is_empty(), "{:?}", plan.not_replayable);
    let b = connect(cluster).await;
    for sql in &plan.statements {
        b.simple_query(sql).await.unwrap_or_else(|e| panic!("replay {sql}: {e}"));
    }
    let execute = "EXECUTE arrays('{ok,sad}', '{1,2}')";
    assert_eq!(all_values(&b, execute).await, all_values(&a, execute).await);
    assert_eq!(all_values(&b, "EXECUTE combo").await, all_values(&a, "EXECUTE combo").await);
}

#[tokio::test]
async fn session_authorization_replays_before_role() {
    let cluster = setup();
    let conninfo = cluster.conninfo("postgres", "postgres");
    let a = connect_with(&conninfo).await;
    a.simple_query(&format!("SET SESSION AUTHORIZATION {APP_USER}; SET ROLE \"Tenant Role\"")).await.expect("identity");
    let snap = capture(&a).await;
    assert_eq!((snap.session_authorization.as_str(), snap.role.as_deref()), (APP_USER, Some("Tenant Role")));
    let plan = replay_statements(&snap, "postgres", None);
    assert_eq!(plan.statements[..2], ["SET SESSION AUTHORIZATION \"capture_app\"", "SET ROLE \"Tenant Role\""]);
    let b = connect_with(&conninfo).await;
    for sql in &plan.statements {
        b.simple_query(sql).await.unwrap_or_else(|e| panic!("replay {sql}: {e}"));
    }
    assert_eq!(value(&b, "SELECT session_user || '/' || current_user").await, "capture_app/Tenant Role");
}

#[tokio::test]
async fn capture_ignores_a_hostile_search_path() {
    let a = connect(setup()).await;
    a.simple_query("SET search_path = shadow, pg_catalog").await.expect("set search_path");
    assert_eq!(value(&a, "SELECT current_setting('work_mem')").await, "shadowed");
    let snap = capture(&a).await;
    assert_eq!(snap.setting("search_path"), Some("shadow, pg_catalog"));
    assert_eq!(snap.session_authorization, APP_USER);
}

#[tokio::test]
async fn capture_does_not_wait_for_a_safe_snapshot() {
    let cluster = setup();
    let writer = connect(cluster).await;
    writer.simple_query("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT 1").await.expect("serializable read-write");
    let a = connect(cluster).await;
    a.simple_query(
        "SET default_transaction_isolation = serializable; SET default_transaction_read_only = on; \
         SET default_transaction_deferrable = on",
    )
    .await
    .expect("deferrable defaults");
    let snap = tokio::time::timeout(Duration::from_secs(2), capture(&a))
        .await
        .expect("a deferrable session would wait for the open serializable transaction");
    assert_eq!(snap.setting("default_transaction_deferrable"), Some("on"));
    writer.simple_query("ROLLBACK").await.expect("rollback");
}

#[test]
fn capture_survives_a_one_millisecond_statement_timeout() {
    let cluster = setup();
    let mut conn = RawConn::connect_startup(cluster.port(), "postgres", "postgres").expect("raw connection");
    // As the proxy does on every connection it opens, before its client runs anything.
    let baseline = raw_baseline(&mut conn);
    let setup_sql = "CREATE TEMP SEQUENCE counter; SELECT pg_catalog.nextval('counter'), pg_catalog.nextval('counter')";
    assert_eq!(raw_query(&mut conn, setup_sql).1, None);
    // Parsed before the 1 ms timeout, which a loaded machine could let cancel a Parse.
    conn.parse_statement("named", "SELECT 7");
    conn.parse_statement("", "SELECT 8");
    // jit_above_cost = 0 would JIT-compile even a one-row SELECT, for milliseconds.
    assert_eq!(raw_query(&mut conn, "SET statement_timeout = 1; SET jit_above_cost = 0").1, None);
    let query = capture_query(&[], &baseline);
    // The few statements before the capture's SET LOCAL run under the client's 1 ms: on a
    // loaded machine one may be cancelled, and the proxy asks again.
    let ask = |conn: &mut RawConn, sql: &str| {
        let mut attempt = raw_query(conn, sql);
        for _ in 0..3 {
            if !attempt.1.as_deref().is_some_and(|e| e.contains("57014")) {
                break;
            }
            attempt = raw_query(conn, sql);
        }
        attempt
    };
    for round in 0..25 {
        let (values, error, status) = ask(&mut conn, &query);
        assert_eq!(error, None, "round {round}");
        assert_eq!(status, b'I', "the capture leaves the session idle");
        let columns: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        let mut snap = parse_capture_row(&columns, &baseline).expect("parse");
        assert_eq!(snap.setting("statement_timeout"), Some("1ms"));
        let (oids, temp) = snap.details_wanted().expect("the session has a temporary schema");
        assert!(oids.is_empty() && temp, "{oids:?} {temp}");
        let (values, error, status) = ask(&mut conn, &details_query(&oids, temp));
        assert_eq!((error, status), (None, b'I'), "round {round}");
        let columns: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        snap.apply_details(&columns).expect("details");
        assert_eq!(snap.unmovable.temp_objects, 1);
    }
    // Still under the client's 1 ms: asked again when a loaded machine lets it cancel one.
    assert_eq!(ask(&mut conn, "SHOW jit_above_cost"), (vec![Some("0".to_string())], None, b'I'));
    assert_eq!(ask(&mut conn, "RESET jit_above_cost; SHOW statement_timeout").0, [Some("1ms".to_string())]);
    assert_eq!(ask(&mut conn, "SELECT pg_catalog.lastval()"), (vec![Some("2".to_string())], None, b'I'));
    assert_eq!(ask(&mut conn, "RESET statement_timeout").1, None);
    assert_eq!(conn.run_statement("named"), Ok(Some("7".to_string())));
    // As documented: a simple Query drops the unnamed statement (the proxy parses it
    // again after a capture: tests/proxy_switch.rs).
    assert_eq!(conn.run_statement(""), Err("26000".to_string()));
    // And it leaves no statement of its own behind.
    assert_eq!(
        raw_query(&mut conn, "SELECT pg_catalog.string_agg(name, ',') FROM pg_catalog.pg_prepared_statements").0,
        [Some("named".to_string())]
    );
    conn.terminate();
}

#[test]
fn a_failed_capture_leaves_the_session_idle() {
    let cluster = setup();
    let mut conn = RawConn::connect_startup(cluster.port(), "postgres", "postgres").expect("raw connection");
    let baseline = raw_baseline(&mut conn);
    let broken =
        capture_query(&[], &baseline).replace("pg_catalog.pg_listening_channels()", "pg_catalog.no_such_function()");
    let (values, error, status) = raw_query(&mut conn, &broken);
    assert!(error.is_some_and(|e| e.contains("42883")), "the broken capture must fail");
    assert_eq!(status, b'I', "an implicit transaction rolls back on its own");
    assert_eq!(values.len(), OVERRIDE_COLUMNS, "only the first row came back");
    assert_eq!(raw_query(&mut conn, "SELECT 1").0, [Some("1".to_string())]);
    conn.terminate();
}

#[tokio::test]
async fn settings_changed_out_of_sight_are_captured() {
    let cluster = setup();
    cluster.psql(
        "CREATE OR REPLACE FUNCTION public.quietly_tune() RETURNS void LANGUAGE plpgsql AS $$ BEGIN \
         PERFORM pg_catalog.set_config('work_mem', '7MB', false); \
         PERFORM pg_catalog.set_config('myapp.hidden', 'h', false); END $$",
    );
    let a = connect(cluster).await;
    let work_mem = a.baseline.value("work_mem").expect("work_mem is in the baseline").to_string();
    a.simple_query("SELECT public.quietly_tune()").await.expect("tune");
    let snap = capture(&a).await;
    assert_eq!(snap.setting("work_mem"), Some("7MB"), "a setting changed inside a function is in the diff");
    assert_ne!(work_mem, "7MB");
    // Unchanged settings are not captured: only what differs, and what was asked for.
    assert!(snap.settings.iter().all(|s| s.name != "DateStyle"), "{:?}", snap.settings);
    assert!(snap.prepared.iter().all(|p| !p.name.starts_with("pgflip")), "the capture prepares nothing of its own");

    // A setting set back to its value at connection start is not in the diff; asked for
    // by name (the proxy asks for every name it saw in a SET), it is read all the same.
    a.simple_query(&format!("SET work_mem = '{work_mem}'")).await.expect("set work_mem back");
    let snap = capture(&a).await;
    assert_eq!(snap.setting("work_mem"), None);
    let names = vec!["work_mem".to_string(), "no_such_setting".to_string()];
    let values = all_values(&a, &capture_query(&names, &a.baseline)).await;
    let columns: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
    let snap = parse_capture_row(&columns, &a.baseline).expect("parse");
    assert_eq!(snap.setting("work_mem"), Some(work_mem.as_str()));

    // Replaying onto a connection whose baseline already has a value leaves it out.
    let b = connect(cluster).await;
    let plan = replay_statements(&snap, APP_USER, Some(&b.baseline));
    assert!(!plan.statements.iter().any(|s| s.contains("'work_mem'")), "{:?}", plan.statements);
    assert!(!plan.affects_parsing, "{:?}", plan.statements);
}
