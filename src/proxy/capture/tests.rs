//! Unit tests: quoting, the capture query's text, parsing its row, reading PREPARE
//! texts back and the replay order.

use super::*;

#[test]
fn literals_double_quotes_and_escape_backslashes() {
    assert_eq!(quote_literal(""), "''");
    assert_eq!(quote_literal("8MB"), "'8MB'");
    assert_eq!(quote_literal("it's"), "'it''s'");
    assert_eq!(quote_literal(r"C:\dir"), r"E'C:\\dir'");
    assert_eq!(quote_literal(r"a\'b"), r"E'a\\''b'");
    assert_eq!(quote_literal("\"we\"\"ird, sch\", \"$user\""), "'\"we\"\"ird, sch\", \"$user\"'");
}

#[test]
fn identifiers_are_always_quoted() {
    assert_eq!(quote_ident("app"), "\"app\"");
    assert_eq!(quote_ident("Chan One"), "\"Chan One\"");
    assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    assert_eq!(quote_ident(""), "\"\"");
}

#[test]
fn custom_setting_names_need_two_simple_identifiers() {
    for good in ["myapp.tenant", "a.b.c", "_x.y$1", "app.tenañt"] {
        assert!(is_custom_setting_name(good), "{good}");
    }
    for bad in ["tenant", "myapp.", ".tenant", "a..b", "my app.x", "1a.b", "a.$b", "a.b'; DROP", ""] {
        assert!(!is_custom_setting_name(bad), "{bad}");
    }
}

fn baseline() -> Baseline {
    Baseline::parse(Some(
        r#"[["DateStyle", "ISO, MDY"], ["jit", "on"], ["statement_timeout", "0"], ["work_mem", "4MB"]]"#,
    ))
    .expect("baseline")
}

#[test]
fn capture_query_reads_each_name_once_as_a_literal() {
    let names: Vec<String> = ["myapp.tenant", "MyApp.Tenant", "a.b'c", "work_mem", "x.y", "nonsense", "JIT"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let b = baseline();
    let sql = capture_query(&names, &b);
    assert!(sql.contains("unnest(ARRAY['myapp.tenant', 'work_mem', 'x.y']::pg_catalog.text[])"), "{sql}");
    assert!(sql.starts_with("SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n"));
    let head = "SHOW jit;\nSET LOCAL jit = off;\nSELECT pg_catalog.current_setting('statement_timeout'), \
                pg_catalog.set_config('statement_timeout', '0', true);\nSELECT\n  pg_catalog.pg_backend_pid()";
    assert!(sql.contains(head), "{sql}");
    assert!(!sql.contains("PREPARE") && !sql.contains("EXECUTE") && !sql.contains("$1"), "{sql}");
    let none = capture_query(&[], &b);
    assert!(none.contains("unnest(ARRAY[]::pg_catalog.text[])"), "{none}");
}

#[test]
fn the_capture_compares_with_the_baseline_except_overridden_settings() {
    let b = baseline();
    assert_eq!(b.len(), 4);
    assert_eq!(b.value("datestyle"), Some("ISO, MDY"));
    let prepare = capture_query(&[], &b);
    let read = "pg_catalog.array_to_json(ARRAY[pg_catalog.current_setting('DateStyle'), \
                pg_catalog.current_setting('work_mem')]::pg_catalog.text[]) AS settings";
    assert!(prepare.contains(read), "{prepare}");
    let compared: Vec<&str> = b.compared().iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(compared, ["DateStyle", "work_mem"]);
    assert!(Baseline::parse(None).is_err());
    assert!(Baseline::parse(Some("{")).unwrap_err().to_string().contains("`baseline`"));
    let query = baseline_query();
    assert!(query.contains("ARRAY['user', 'superuser']"), "{query}");
    assert!(query.contains("'dynamic_library_path'"), "{query}");
}

const PREPARED: &str = r#"[{"name": "by_mood", "statement": "PREPARE by_mood(\"My Schema\".mood) AS SELECT $1;",
  "from_sql": true, "param_oids": [16390]},
 {"name": "s1", "statement": "SELECT 1", "from_sql": false, "param_oids": []},
 {"name": "s2", "statement": "SELECT $1, $2", "from_sql": false, "param_oids": [23, 16390]},
 {"name": "s3", "statement": "SELECT $1", "from_sql": false, "param_oids": [23]}]"#;

fn row<'a>(role: &'a str, custom: &'a str, xid: &'a str) -> Vec<Option<&'a str>> {
    vec![
        Some("on"),
        Some("1500ms"),
        Some("0"),
        Some("4242"),
        Some("postgres"),
        Some(role),
        Some(r#"["ISO, MDY", "8MB"]"#),
        Some(custom),
        Some(PREPARED),
        Some(r#"["Chan One"]"#),
        Some("16400"),
        Some("0"),
        Some(xid),
    ]
}

#[test]
fn parses_a_full_capture() {
    let snapshot =
        parse_capture_row(&row("app_role", r#"[["myapp.tenant", "t1"], ["myapp.none", null]]"#, "f"), &baseline())
            .expect("parse");
    assert_eq!(snapshot.pid, 4242);
    assert_eq!(snapshot.session_authorization, "postgres");
    assert_eq!(snapshot.role.as_deref(), Some("app_role"));
    assert_eq!(snapshot.setting("statement_timeout"), Some("1500ms"));
    assert_eq!(snapshot.setting("JIT"), Some("on"));
    assert_eq!(snapshot.settings, vec![Setting { name: "work_mem".into(), value: "8MB".into() }], "only what changed");
    assert_eq!(snapshot.setting("myapp.tenant"), Some("t1"));
    assert_eq!(snapshot.custom_settings, vec![Setting { name: "myapp.tenant".into(), value: "t1".into() }]);
    assert_eq!(snapshot.protocol_statements().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["s1", "s2", "s3"]);
    assert_eq!(snapshot.listen, ["Chan One"]);
    assert!(snapshot.temp_schema);
    assert_eq!(snapshot.unmovable.temp_objects, 0, "counted by the details");

    // The SQL PREPARE with a parameter and the statement with a type not built in are
    // named; the one with built-in types keeps its OIDs.
    let mut snapshot = snapshot;
    assert_eq!(snapshot.details_wanted(), Some((vec![16390, 23, 16390], true)));
    let names = r#"["\"My Schema\".mood", "pg_catalog.int4", "\"My Schema\".mood"]"#;
    let details = |names, temp| vec![Some("on"), Some("1500ms"), Some("0"), names, temp];
    let short = snapshot.clone().apply_details(&details(Some(r#"["a"]"#), Some("2"))).unwrap_err();
    assert!(short.to_string().contains("type_names"), "{short}");
    assert!(snapshot.clone().apply_details(&details(Some(names), None)).is_err());
    assert!(snapshot.clone().apply_details(&details(Some(names), Some("2"))[1..]).is_err());
    snapshot.apply_details(&details(Some(names), Some("2"))).expect("details");
    assert_eq!(snapshot.prepared[0].param_types, vec!["\"My Schema\".mood"]);
    assert!(snapshot.prepared[1].param_types.is_empty());
    assert_eq!(snapshot.prepared[2].param_types, vec!["pg_catalog.int4", "\"My Schema\".mood"]);
    assert_eq!(snapshot.prepared[2].stable_oids(), None, "looked up by name on the new server");
    assert_eq!(snapshot.prepared[3].stable_oids(), Some(&[23][..]));
    let unmovable = &snapshot.unmovable;
    assert_eq!((unmovable.temp_objects, unmovable.advisory_locks, unmovable.holdable_cursors), (2, 0, 0));
    assert!(!unmovable.is_empty());
    assert_eq!(unmovable.describe(), "2 temp objects");
    let none = parse_capture_row(&row("none", "[]", "t"), &baseline()).expect("parse");
    assert_eq!(none.role, None);
    let plain = |temp| {
        let mut columns = row("none", "[]", "f");
        columns[8] = Some("[]");
        columns[10] = Some(temp);
        parse_capture_row(&columns, &baseline()).expect("parse")
    };
    assert_eq!(plain("0").details_wanted(), None, "nothing more to ask");
    assert_eq!(plain("99").details_wanted(), Some((vec![], true)));
    assert!(none.unmovable.holds_xid);
}

#[test]
fn malformed_captures_name_the_column() {
    let err = |columns: Vec<Option<&str>>| parse_capture_row(&columns, &baseline()).expect_err("must fail").to_string();
    assert!(err(row("none", "[]", "f")[1..].to_vec()).contains("12 values, expected 13"));
    let mut null = row("none", "[]", "f");
    null[5] = None;
    assert!(err(null).contains("`role` is NULL"));
    assert!(err(row("none", "{", "f")).contains("`custom_settings` is not the expected JSON"));
    assert!(err(row("none", "[]", "yes")).contains("`holds_xid` holds \"yes\""));
    let mut pid = row("none", "[]", "f");
    pid[3] = Some("abc");
    assert!(err(pid).contains("`pid`"));
    let mut settings = row("none", "[]", "f");
    settings[6] = Some(r#"[["work_mem", "8MB"]]"#);
    assert!(err(settings.clone()).contains("`settings` is not the expected JSON"));
    settings[6] = Some(r#"["8MB"]"#);
    assert!(err(settings).contains("one value per compared setting"));
}

#[test]
fn describes_unmovable_state() {
    assert_eq!(Unmovable::default().describe(), "nothing");
    assert!(Unmovable::default().is_empty());
    let all = Unmovable { temp_objects: 1, advisory_locks: 3, holdable_cursors: 2, holds_xid: true };
    assert_eq!(
        all.describe(),
        "1 temp object, 3 session advisory locks, 2 WITH HOLD cursors, an open transaction holding an xid"
    );
}

#[test]
fn prepare_body_accepts_one_prepare_only() {
    let ok = |text: &str, name: &str| prepare_body(text, name).expect(text).to_string();
    assert_eq!(ok("PREPARE q AS SELECT 1", "q"), "SELECT 1");
    assert_eq!(ok("  prepare Q (int, text[]) as\n  select $1, $2 ; ;\n-- done", "q"), "select $1, $2");
    assert_eq!(ok("/* a /* nested */ c */ PREPARE \"My \"\"Q\"\"\"(int) AS SELECT 1 -- c\n", "My \"Q\""), "SELECT 1");
    assert_eq!(
        ok("PREPARE q AS SELECT ';', $$;$$, $f$ $$; $f$, \"a;b\", E'\\';' -- x\n FROM t;", "q"),
        "SELECT ';', $$;$$, $f$ $$; $f$, \"a;b\", E'\\';' -- x\n FROM t"
    );
    assert_eq!(ok("PREPARE q AS SELECT x$1$ FROM t WHERE a = $1", "q"), "SELECT x$1$ FROM t WHERE a = $1");
    assert_eq!(ok(r"PREPARE q AS SELECT 'C:\dir'", "q"), r"SELECT 'C:\dir'");
    let err = |text: &str, name: &str| prepare_body(text, name).expect_err(text);
    assert_eq!(ok("SELECT 1; PREPARE q AS SELECT 2", "q"), "SELECT 2");
    assert_eq!(ok("PREPARE q AS SELECT 2; SELECT 3", "q"), "SELECT 2");
    assert_eq!(ok("SET x.y = 1; PREPARE other AS SELECT 1; PREPARE q(int) AS SELECT $1;", "q"), "SELECT $1");
    assert_eq!(err("SELECT 1; SELECT 2", "q"), PrepareTextError::NotPrepare);
    assert_eq!(
        err("PREPARE q AS SELECT 1; DEALLOCATE q; PREPARE q AS SELECT 2", "q"),
        PrepareTextError::MoreStatements
    );
    assert_eq!(err("PREPARE other AS SELECT 1", "q"), PrepareTextError::OtherName { found: "other".into() });
    assert_eq!(err("PREPARE q (int AS SELECT 1", "q"), PrepareTextError::NoAs);
    assert_eq!(err("PREPARE q AS ;", "q"), PrepareTextError::EmptyBody);
    assert_eq!(err("PREPARE q AS SELECT 'open", "q"), PrepareTextError::Unterminated);
    assert_eq!(err(r"PREPARE q AS SELECT 'a\'; --'", "q"), PrepareTextError::Ambiguous);
}

#[test]
fn long_prepare_names_are_cut_like_postgres_does() {
    let long = "n".repeat(70);
    let text = format!("PREPARE {long} AS SELECT 1");
    assert_eq!(prepare_body(&text, &long[..63]), Ok("SELECT 1"));
}

fn snapshot(statements: &[(&str, &str)]) -> SessionSnapshot {
    let setting = |name: &str, value: &str| Setting { name: name.into(), value: value.into() };
    SessionSnapshot {
        pid: 1,
        session_authorization: "app".into(),
        role: Some("Tenant Role".into()),
        overridden: vec![setting("jit", "off"), setting("statement_timeout", "1ms")],
        settings: vec![setting("lock_timeout", "2s"), setting("search_path", "\"My Schema\", public")],
        custom_settings: vec![setting("myapp.tenant", "o'brien"), setting("lock_timeout", "9s")],
        prepared: statements
            .iter()
            .map(|(name, text)| PreparedStatement {
                name: name.to_string(),
                statement: text.to_string(),
                from_sql: true,
                param_types: vec!["pg_catalog.int4".into(), "\"My Schema\".mood[]".into()],
                param_oids: vec![23, 16390],
            })
            .collect(),
        listen: vec!["Chan One".into()],
        temp_schema: false,
        unmovable: Unmovable::default(),
    }
}

#[test]
fn replay_runs_settings_identity_prepare_listen_then_timeouts() {
    let snap = snapshot(&[
        ("q", "PREPARE q(int, mood[]) AS SELECT $1, $2"),
        ("bad", "PREPARE bad AS SELECT 1; DEALLOCATE bad; PREPARE bad AS SELECT 2"),
    ]);
    let plan = replay_statements(&snap, "app", None);
    assert_eq!(
        plan.statements,
        vec![
            "SELECT pg_catalog.set_config('search_path', '\"My Schema\", public', false)",
            "SELECT pg_catalog.set_config('myapp.tenant', 'o''brien', false)",
            "SET ROLE \"Tenant Role\"",
            "PREPARE \"q\"(pg_catalog.int4, \"My Schema\".mood[]) AS SELECT $1, $2",
            "LISTEN \"Chan One\"",
            "SELECT pg_catalog.set_config('lock_timeout', '2s', false)",
            "SELECT pg_catalog.set_config('jit', 'off', false)",
            "SELECT pg_catalog.set_config('statement_timeout', '1ms', false)",
        ]
    );
    assert_eq!(
        plan.not_replayable,
        vec![NotReplayable { name: "bad".into(), reason: PrepareTextError::MoreStatements }]
    );
    // The captured connection logged in as another user than the session's authorization:
    // it was changed, and goes after the settings, before the role.
    let other_login = replay_statements(&snap, "postgres", None);
    assert_eq!(other_login.statements[2], "SET SESSION AUTHORIZATION \"app\"");
    assert_eq!(other_login.statements[3], "SET ROLE \"Tenant Role\"");
}

#[test]
fn type_names_and_temp_objects_are_asked_only_when_wanted() {
    let baseline = Baseline::parse(Some(r#"[["search_path", "public"]]"#)).expect("baseline");
    let capture = super::capture_query(&[], &baseline);
    for catalog in ["pg_type", "pg_namespace", "pg_class", "pg_proc"] {
        assert!(!capture.contains(catalog), "the capture statement reads no {catalog}: {capture}");
    }
    let details = super::details_query(&[23, 16390], true);
    assert!(details.contains("'{23,16390}'::pg_catalog.oid[]"), "{details}");
    assert!(details.contains("pg_catalog.pg_class"), "{details}");
    assert!(details.starts_with("SET TRANSACTION ISOLATION LEVEL READ COMMITTED;"), "{details}");
    let no_temp = super::details_query(&[16390], false);
    assert!(no_temp.ends_with("0 AS temp_objects") && !no_temp.contains("pg_class"), "{no_temp}");
}

#[test]
fn builtin_parameter_types_need_no_names() {
    let statement = |types: &[&str], oids: &[u32]| PreparedStatement {
        name: "s".into(),
        statement: "SELECT $1".into(),
        from_sql: false,
        param_types: types.iter().map(|t| t.to_string()).collect(),
        param_oids: oids.to_vec(),
    };
    assert_eq!(statement(&[], &[23, 25]).stable_oids(), Some(&[23, 25][..]));
    assert_eq!(statement(&["pg_catalog.int4"], &[23]).stable_oids(), Some(&[23][..]));
    assert_eq!(statement(&["public.mood"], &[16510]).stable_oids(), None);
    assert_eq!(statement(&["pg_catalog.int4"], &[23, 25]).stable_oids(), None);
}

#[test]
fn a_builtin_setting_left_at_its_default_is_not_carried_to_a_server_without_it() {
    let setting = |name: &str, value: &str| Setting { name: name.into(), value: value.into() };
    let mut snap = snapshot(&[]);
    snap.role = None;
    // Named in a SET on a PostgreSQL 15 server, at its default there; changed: work_mem.
    snap.custom_settings.push(setting("force_parallel_mode", "off"));
    snap.settings.push(setting("work_mem", "8MB"));
    let target = Baseline::parse(Some(r#"[["debug_parallel_query", "off"], ["work_mem", "4MB"]]"#)).expect("target");
    let plan = replay_statements(&snap, "app", Some(&target));
    assert!(!plan.statements.iter().any(|s| s.contains("force_parallel_mode")), "{:?}", plan.statements);
    assert!(plan.statements.iter().any(|s| s.contains("'work_mem', '8MB'")), "{:?}", plan.statements);
    // Changed from its default, it is carried (and the move fails there, as it must).
    snap.settings.push(setting("force_parallel_mode", "on"));
    let plan = replay_statements(&snap, "app", Some(&target));
    assert!(plan.statements.iter().any(|s| s.contains("'force_parallel_mode', 'on'")), "{:?}", plan.statements);
    let packet = crate::wire::startup::StartupMessage {
        version: crate::wire::PROTOCOL_3_0,
        params: vec![("user".into(), "app".into()), ("options".into(), "-c geqo=off".into())],
    };
    let needs = SettingNeeds::of(&packet, &snap);
    assert_eq!(needs.startup, ["geqo"]);
    assert_eq!(needs.session, ["lock_timeout", "search_path", "work_mem", "force_parallel_mode"]);
}
