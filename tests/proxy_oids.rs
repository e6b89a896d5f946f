//! A moved session never sees an OID change: blue and green hold the same user types and
//! tables under other OIDs (as after a restore), and a session that logged in on blue sees
//! blue's OIDs while green serves it, in descriptions, in Parse, inside binary records and
//! arrays, and in a driver's type introspection; what only green has gets OIDs from the
//! synthetic range; a prepared `SELECT *` over a table green widened fails once with 0A000.

mod support;

use std::sync::OnceLock;

use serde_json::Value;
use support::wire::frame;
use support::{Cluster, Proxy, ProxyBuilder, RawConn};

const SCHEMA: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (m mood, n int4);
CREATE DOMAIN score AS int4 CHECK (VALUE >= 0);
CREATE TABLE readings (id int PRIMARY KEY, m mood, p pair, s score, ms mood[], ps pair[]);
INSERT INTO readings VALUES (1, 'happy', ROW('ok', 7), 3, '{sad,happy}', ARRAY[ROW('sad', 1)::pair]);
CREATE TABLE wide (a int, b text);
INSERT INTO wide VALUES (1, 'one');
";

/// Blue has the schema as written; green has it after other objects, so that every OID
/// differs, a dropped column before `b` so that column numbers differ, and `wide` has one
/// more column.
fn clusters() -> (&'static Cluster, &'static Cluster) {
    static BLUE: OnceLock<Cluster> = OnceLock::new();
    static GREEN: OnceLock<Cluster> = OnceLock::new();
    let blue = BLUE.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.psql(SCHEMA);
        cluster
    });
    let green = GREEN.get_or_init(|| {
        let cluster = Cluster::start();
        cluster.psql("CREATE TYPE shifter AS ENUM ('x'); CREATE TABLE shifted (x int)");
        cluster.psql(SCHEMA);
        cluster.psql("ALTER TABLE wide ADD COLUMN c int DEFAULT 0");
        cluster
    });
    (blue, green)
}

fn oid(cluster: &Cluster, sql: &str) -> u32 {
    cluster.psql(sql).trim().parse().unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn proxy() -> Proxy {
    let (blue, green) = clusters();
    ProxyBuilder::for_cluster(blue).upstream("green", &green.url()).spawn()
}

fn switch(proxy: &Proxy, to: &str) {
    let (status, text) = proxy.admin_post("/v1/switch", &format!(r#"{{"to": "{to}"}}"#)).expect("switch");
    let answer: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!((status, answer["failed"].as_u64()), (200, Some(0)), "{answer}");
}

/// One extended-protocol round trip: Parse (with `types`) of the unnamed statement,
/// Describe, Bind (results in `format`), Execute, Sync; every message back, as (tag, body).
fn extended(conn: &mut RawConn, sql: &str, types: &[u32], format: i16) -> Vec<(u8, Vec<u8>)> {
    let mut parse = format!("\0{sql}\0").into_bytes();
    parse.extend((types.len() as i16).to_be_bytes());
    for t in types {
        parse.extend(t.to_be_bytes());
    }
    let mut bind = b"\0\0".to_vec();
    bind.extend(0i16.to_be_bytes());
    bind.extend((types.len() as i16).to_be_bytes());
    for _ in types {
        bind.extend((-1i32).to_be_bytes());
    }
    bind.extend(1i16.to_be_bytes());
    bind.extend(format.to_be_bytes());
    let bytes =
        [frame(b'P', &parse), frame(b'D', b"S\0"), frame(b'B', &bind), frame(b'E', &[0, 0, 0, 0, 0]), frame(b'S', &[])]
            .concat();
    conn.send(&bytes).expect("send");
    let mut messages = Vec::new();
    loop {
        let message = conn.read_message().expect("read").expect("open");
        let done = message.tag == b'Z';
        messages.push((message.tag, message.body));
        if done {
            return messages;
        }
    }
}

fn be32(body: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
}

/// (table OID, column number, type OID) of each column of a RowDescription body.
fn columns(body: &[u8]) -> Vec<(u32, i16, u32)> {
    let count = i16::from_be_bytes([body[0], body[1]]);
    let mut at = 2;
    let mut out = Vec::new();
    for _ in 0..count {
        at += body[at..].iter().position(|&b| b == 0).unwrap() + 1;
        out.push((be32(body, at), i16::from_be_bytes([body[at + 4], body[at + 5]]), be32(body, at + 6)));
        at += 18;
    }
    out
}

fn error(messages: &[(u8, Vec<u8>)]) -> Option<String> {
    messages.iter().find(|(tag, _)| *tag == b'E').map(|(_, body)| support::PgError::parse(body).to_string())
}

fn translated_sessions(proxy: &Proxy) -> f64 {
    let (_, metrics) = proxy.admin_get("/metrics").expect("metrics");
    support::metric_sum(&metrics, "pgflip_translated_sessions", "")
}

#[test]
fn descriptions_parse_records_and_arrays_keep_home_oids() {
    let (blue, green) = clusters();
    let blue_mood = oid(blue, "SELECT 'mood'::regtype::oid");
    let blue_readings = oid(blue, "SELECT 'readings'::regclass::oid");
    let green_mood = oid(green, "SELECT 'mood'::regtype::oid");
    assert_ne!(blue_mood, green_mood, "the test needs the OIDs to differ");
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    let sql = "SELECT m, p, ms, ps FROM readings";
    let at_home = extended(&mut conn, sql, &[], 1);
    switch(&proxy, "green");
    let moved = extended(&mut conn, sql, &[], 1);
    assert_eq!(error(&moved), None);
    assert_eq!(translated_sessions(&proxy), 1.0, "the moved session counts as translated");
    let description = |messages: &[(u8, Vec<u8>)]| columns(&messages.iter().find(|(t, _)| *t == b'T').expect("T").1);
    assert_eq!(description(&moved), description(&at_home), "the same description on green as on blue");
    assert_eq!(description(&moved)[0], (blue_readings, 2, blue_mood));
    // The binary row: the record's field types and the arrays' element types are blue's.
    let row = |messages: &[(u8, Vec<u8>)]| messages.iter().find(|(t, _)| *t == b'D').expect("D").1.clone();
    assert_eq!(row(&moved), row(&at_home), "the same bytes as blue sent");
    let moved_row = row(&moved);
    // Column 2, the record: skip column 1 (len + 5 bytes "happy" as binary enum).
    let record_at = 2 + 4 + 5 + 4;
    assert_eq!(be32(&moved_row, record_at + 4), blue_mood, "the record's first field is blue's mood");
    // A Parse that names blue's enum OID, after the move.
    let typed = extended(&mut conn, "SELECT $1::text IS NULL", &[blue_mood], 0);
    assert_eq!(error(&typed), None, "Parse with blue's mood OID on green");
    let param_description = typed.iter().find(|(t, _)| *t == b't').expect("t");
    assert_eq!(be32(&param_description.1, 2), blue_mood);
    // A type only green has (made after the move) shows with a synthetic OID.
    green.psql("CREATE TYPE only_green AS ENUM ('g')");
    let fresh = extended(&mut conn, "SELECT 'g'::only_green", &[], 0);
    let synthetic = description(&fresh)[0].2;
    assert!(synthetic >= 0xF000_0000, "{synthetic}");
    // So does a temporary table of the session's own, made on green after the move: its
    // table OID and its row type's.
    conn.simple_query("CREATE TEMP TABLE only_here (x only_green, y int)").expect("temp table");
    let temp = extended(&mut conn, "SELECT only_here, x FROM only_here", &[], 0);
    assert_eq!(error(&temp), None);
    let temp_columns = description(&temp);
    let (row_type, table, enum_type) = (temp_columns[0].2, temp_columns[1].0, temp_columns[1].2);
    assert_eq!(enum_type, synthetic, "the same synthetic OID for the same type, every time");
    let synthetics = [synthetic, row_type, table];
    for oid in synthetics {
        assert!(oid >= 0xF000_0000, "{temp_columns:?}");
        let home = blue.psql(&format!("SELECT count(*) FROM pg_class WHERE oid = {oid}")).trim().to_string()
            + blue.psql(&format!("SELECT count(*) FROM pg_type WHERE oid = {oid}")).trim();
        assert_eq!(home, "00", "synthetic {oid} means nothing on blue");
    }
    assert!(synthetics[1] != synthetics[0] && synthetics[2] != synthetics[0] && synthetics[1] != synthetics[2]);
    // Back home (a temporary table cannot move): blue's OIDs as they are.
    conn.simple_query("DROP TABLE only_here").expect("drop the temp table");
    switch(&proxy, "blue");
    assert_eq!(description(&extended(&mut conn, sql, &[], 1)), description(&at_home));
    assert_eq!(translated_sessions(&proxy), 0.0, "at home");
    conn.terminate();
}

#[test]
fn introspection_by_oid_and_by_name_answers_home_oids() {
    let (blue, _) = clusters();
    let blue_mood = oid(blue, "SELECT 'mood'::regtype::oid");
    let blue_moods = oid(blue, "SELECT 'mood[]'::regtype::oid");
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    switch(&proxy, "green");
    // pgjdbc's lookup of a name by OID, the OID bound as an int4 in text.
    let by_oid = "SELECT t.typname, t.typarray FROM pg_catalog.pg_type t WHERE t.oid = $1";
    let mut parse = format!("s_oid\0{by_oid}\0").into_bytes();
    parse.extend(1i16.to_be_bytes());
    parse.extend(23u32.to_be_bytes());
    let value = blue_mood.to_string();
    let mut bind = b"\0s_oid\0".to_vec();
    bind.extend(0i16.to_be_bytes());
    bind.extend(1i16.to_be_bytes());
    bind.extend((value.len() as i32).to_be_bytes());
    bind.extend(value.as_bytes());
    bind.extend(0i16.to_be_bytes());
    let bytes =
        [frame(b'P', &parse), frame(b'B', &bind), frame(b'D', b"P\0"), frame(b'E', &[0, 0, 0, 0, 0]), frame(b'S', &[])]
            .concat();
    conn.send(&bytes).expect("send");
    let mut values = Vec::new();
    loop {
        let m = conn.read_message().expect("read").expect("open");
        match m.tag {
            b'D' => values = support::wire::parse_data_row(&m.body),
            b'E' => panic!("{}", support::PgError::parse(&m.body)),
            b'Z' => break,
            _ => {}
        }
    }
    assert_eq!(values, [Some("mood".to_string()), Some(blue_moods.to_string())], "typarray is blue's");
    // psycopg's and pgjdbc's lookup by name reads back the OID: blue's.
    let rows = conn.simple_query("SELECT t.oid FROM pg_catalog.pg_type t WHERE t.typname = 'mood'").expect("query");
    assert_eq!(rows, [[Some(blue_mood.to_string())]]);
    // An ordinary int4 column is never rewritten.
    let rows = conn.simple_query(&format!("SELECT {blue_mood}::int4 AS n")).expect("query");
    assert_eq!(rows, [[Some(blue_mood.to_string())]]);
    conn.terminate();
}

#[test]
fn a_prepared_select_star_over_a_widened_table_fails_once_with_0a000() {
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    conn.parse_statement("star", "SELECT * FROM wide");
    assert_eq!(conn.run_statement("star"), Ok(Some("1".into())));
    switch(&proxy, "green");
    assert_eq!(conn.run_statement("star"), Err("0A000".into()), "its results have another shape on green");
    assert_eq!(conn.run_statement("star"), Err("0A000".into()), "until it is prepared again");
    conn.close_statement("star");
    conn.parse_statement("star", "SELECT * FROM wide");
    assert_eq!(conn.run_statement("star"), Ok(Some("1".into())), "prepared again, it runs");
    conn.terminate();
}

#[test]
fn a_statement_prepared_at_home_returns_home_oids_after_the_move() {
    let (blue, _) = clusters();
    let blue_mood = oid(blue, "SELECT 'mood'::regtype::oid");
    let proxy = proxy();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    conn.parse_statement("s0", "SELECT m, p FROM readings WHERE id = 1");
    let run = |conn: &mut RawConn| {
        let mut bind = b"\0s0\0".to_vec();
        bind.extend(0i16.to_be_bytes());
        bind.extend(0i16.to_be_bytes());
        bind.extend(1i16.to_be_bytes());
        bind.extend(1i16.to_be_bytes());
        conn.send(&[frame(b'B', &bind), frame(b'E', &[0, 0, 0, 0, 0]), frame(b'S', &[])].concat()).expect("send");
        let mut row = Vec::new();
        loop {
            let m = conn.read_message().expect("read").expect("open");
            match m.tag {
                b'D' => row = m.body,
                b'E' => panic!("{}", support::PgError::parse(&m.body)),
                b'Z' => return row,
                _ => {}
            }
        }
    };
    let at_home = run(&mut conn);
    switch(&proxy, "green");
    let moved = run(&mut conn);
    assert_eq!(moved, at_home, "the record's field type is blue's mood ({blue_mood}) on green too");
    conn.terminate();
}
