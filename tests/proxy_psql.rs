//! psql through the proxy: simple queries, `\copy` of 100k rows both ways,
//! multi-statement queries, and a session that goes on after errors.

mod support;

use support::{psql, psql_script, shared_cluster, temp_dir, Proxy};

#[test]
fn simple_queries_pass_user_and_database_through() {
    let cluster = shared_cluster();
    cluster.create_database("psql_passthrough");
    let proxy = Proxy::start(cluster);
    let out = psql(
        &proxy.conninfo("postgres", "psql_passthrough"),
        "SELECT current_user, current_database(), 1 + 1, 'héllo'::text",
    );
    out.assert_success("psql through the proxy");
    assert_eq!(out.lines(), vec!["postgres|psql_passthrough|2|héllo"]);

    let out =
        psql(&proxy.conninfo("postgres", "postgres"), "SELECT string_agg(g::text, ',') FROM generate_series(1, 5) g");
    out.assert_success("second session");
    assert_eq!(out.lines(), vec!["1,2,3,4,5"]);
}

#[test]
fn sslmode_prefer_falls_back_to_plain_when_proxy_has_no_tls() {
    let cluster = shared_cluster();
    let proxy = Proxy::start(cluster);
    let conninfo = format!("host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=prefer", proxy.port());
    let out = psql(&conninfo, "SELECT 42");
    out.assert_success("psql with sslmode=prefer");
    assert_eq!(out.lines(), vec!["42"]);
}

#[test]
fn copy_100k_rows_in_and_out() {
    const ROWS: u64 = 100_000;
    let cluster = shared_cluster();
    cluster.create_database("psql_copy");
    cluster.psql_db("psql_copy", "CREATE TABLE copied (id int PRIMARY KEY, v text NOT NULL)");
    let proxy = Proxy::start(cluster);
    let conninfo = proxy.conninfo("postgres", "psql_copy");

    let dir = temp_dir("pgflip-copy-");
    let input = dir.path().join("in.tsv");
    let output = dir.path().join("out.tsv");
    let mut text = String::new();
    let mut expected_len_sum = 0u64;
    for id in 1..=ROWS {
        let value = format!("row-{id}-{}-\\\\tab\\there", (id * 7919) % 1_000_003);
        // In COPY text format an escaped backslash and an escaped tab are one
        // character each once stored.
        expected_len_sum += value.len() as u64 - 2;
        text.push_str(&format!("{id}\t{value}\n"));
    }
    std::fs::write(&input, &text).expect("write copy input");

    let out = psql(&conninfo, &format!("\\copy copied FROM '{}'", input.display()));
    out.assert_success("\\copy in");

    let summary = "SELECT count(*), sum(id), sum(length(v)), md5(string_agg(v, ',' ORDER BY id)) \
                   FROM copied";
    let through_proxy = psql(&conninfo, summary);
    through_proxy.assert_success("summary through the proxy");
    let direct = cluster.psql_db("psql_copy", summary);
    let fields: Vec<String> = through_proxy.lines()[0].split('|').map(str::to_string).collect();
    assert_eq!(fields[0], ROWS.to_string(), "row count after \\copy in");
    assert_eq!(fields[1], (ROWS * (ROWS + 1) / 2).to_string(), "sum(id)");
    assert_eq!(fields[2], expected_len_sum.to_string(), "sum(length(v))");
    assert_eq!(through_proxy.lines()[0], direct, "proxy and direct checksums");

    let out = psql(&conninfo, &format!("\\copy (SELECT id, v FROM copied ORDER BY id) TO '{}'", output.display()));
    out.assert_success("\\copy out");
    let copied_out = std::fs::read_to_string(&output).expect("read copy output");
    assert_eq!(copied_out.lines().count() as u64, ROWS, "rows in \\copy out");
    assert!(copied_out == text, "\\copy out differs from what was copied in");
}

#[test]
fn multi_statement_query_returns_every_result() {
    let cluster = shared_cluster();
    let proxy = Proxy::start(cluster);
    let out = psql(
        &proxy.conninfo("postgres", "postgres"),
        "CREATE TEMP TABLE multi (x int); INSERT INTO multi VALUES (1), (2), (3); \
         SELECT sum(x) FROM multi; SELECT 'done'",
    );
    out.assert_success("multi-statement query");
    assert_eq!(out.lines(), vec!["6", "done"]);

    let out = psql(&proxy.conninfo("postgres", "postgres"), "SELECT 1; SELECT 1/0; SELECT 3");
    assert!(!out.success(), "an error inside a multi-statement query must fail");
    assert!(out.stderr.contains("division by zero"), "stderr: {}", out.stderr);
    assert!(!out.lines().contains(&"3".to_string()), "statements after the error must not run: {}", out.stdout);
}

#[test]
fn session_continues_after_errors() {
    let cluster = shared_cluster();
    let proxy = Proxy::start(cluster);
    let script = "\
SELECT pg_backend_pid() AS first_pid \\gset
SELECT 'before';
SELECT 1/0;
SELECT 'after';
BEGIN;
SELECT 'in tx';
SELECT no_such_column FROM pg_class;
SELECT 'aborted';
ROLLBACK;
SELECT pg_backend_pid() = :first_pid;
";
    let out = psql_script(&proxy.conninfo("postgres", "postgres"), script, false);
    out.assert_success("psql script with errors");
    assert_eq!(out.lines(), vec!["before", "after", "in tx", "t"]);
    assert!(out.stderr.contains("division by zero"), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("current transaction is aborted"), "stderr: {}", out.stderr);
}
