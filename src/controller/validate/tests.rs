//! Unit tests of the validation checks: the checksum SQL, how differences read, the report.

use super::*;
use crate::controller::plan::Check;

fn table(schema: &str, name: &str, columns: &[&str], key: &[&str]) -> TableToCompare {
    TableToCompare {
        schema: schema.into(),
        name: name.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        key: key.iter().map(|c| KeyColumn { name: c.to_string(), collatable: *c == "name" }).collect(),
    }
}

fn catalog(schema: &str, name: &str, columns: &[&str], primary_key: &[&str]) -> CatalogTable {
    CatalogTable {
        schema: schema.into(),
        name: name.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        primary_key: primary_key.iter().map(|c| c.to_string()).collect(),
        key_collatable: primary_key.iter().map(|c| *c == "name").collect(),
    }
}

fn rows(rows: &[&[Option<&str>]]) -> Vec<TextRow> {
    rows.iter().map(|row| row.iter().map(|v| v.map(str::to_owned)).collect()).collect()
}

fn outcome(name: &str, passed: bool, attempts: u32, detail: Option<&str>) -> CheckOutcome {
    CheckOutcome { name: name.into(), passed, attempts, detail: detail.map(str::to_owned) }
}

#[test]
fn checksums_sum_folded_md5s_in_key_ranges() {
    let t = table("My Schema", "t", &["id", "we\"ird"], &["id"]);
    assert_eq!(t.check_name(), "table My Schema.t");
    assert_eq!(
        t.sum_sql("true"),
        "SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(pg_catalog.md5(\
         ROW(\"id\", \"we\"\"ird\")::pg_catalog.text), 1, 16))::pg_catalog.bit(64)::pg_catalog.int8), 0) \
         FROM \"My Schema\".\"t\" WHERE true"
    );
    assert_eq!(
        t.bound_sql(None, 1000),
        "SELECT \"id\"::pg_catalog.text AS pgflip_key0 FROM \"My Schema\".\"t\" WHERE true ORDER BY \"id\" OFFSET 999 LIMIT 1"
    );
    // A text key is ordered in the "C" collation; bounds are literals.
    let named = table("public", "people", &["name", "n"], &["name", "n"]);
    let bound = named.bound_sql(Some(&["O'Brien".to_string(), "2".to_string()]), 50);
    assert!(
        bound.contains("WHERE ROW(\"name\" COLLATE pg_catalog.\"C\", \"n\") > ROW('O''Brien', '2') ORDER BY \"name\" COLLATE pg_catalog.\"C\", \"n\" OFFSET 49"),
        "{bound}"
    );
}

#[test]
fn catalog_sql_skips_generated_columns_from_12() {
    assert!(catalog_sql(120000).contains("a.attgenerated = ''"));
    assert!(!catalog_sql(110005).contains("attgenerated"));
}

#[test]
fn tables_match_by_schema_and_name_with_common_columns() {
    let blue = vec![
        catalog("public", "accounts", &["id", "name", "old"], &["id"]),
        catalog("public", "events", &["at", "what"], &[]),
        catalog("public", "gone", &["id"], &["id"]),
        catalog("public", "rekeyed", &["k", "v"], &["k"]),
    ];
    let green = vec![
        catalog("public", "accounts", &["name", "id", "new"], &["id"]),
        catalog("public", "events", &["what", "at"], &[]),
        catalog("other", "gone", &["id"], &["id"]),
        catalog("public", "rekeyed", &["v", "k2"], &["k2"]),
    ];
    assert_eq!(
        match_tables(blue, &green),
        vec![
            table("public", "accounts", &["id", "name"], &["id"]),
            table("public", "events", &["at", "what"], &[]),
            table("public", "rekeyed", &["v"], &[]),
        ]
    );
}

#[test]
fn same_rows_do_not_differ() {
    let a = rows(&[&[Some("1"), None], &[Some("2"), Some("x")]]);
    assert_eq!(describe_difference(&a, &a.clone()), None);
    assert_eq!(describe_difference(&[], &[]), None);
}

#[test]
fn the_first_differing_row_is_described() {
    let blue = rows(&[&[Some("1"), Some("10")], &[Some("2"), Some("20")], &[Some("1"), Some("500")]]);
    let green = rows(&[&[Some("1"), Some("10")], &[Some("2"), Some("20")], &[Some("1"), Some("499")]]);
    assert_eq!(describe_difference(&blue, &green).as_deref(), Some("row 3 differs: blue (1, 500) green (1, 499)"));
    let green = rows(&[&[Some("1"), Some("10")], &[Some("2"), None]]);
    assert_eq!(
        describe_difference(&blue, &green).as_deref(),
        Some("row 2 differs: blue (2, 20) green (2, NULL); blue returned 3 rows, green 2")
    );
}

#[test]
fn a_missing_row_is_described() {
    let blue = rows(&[&[Some("1")]]);
    let green = rows(&[&[Some("1")], &[Some("2")]]);
    assert_eq!(
        describe_difference(&blue, &green).as_deref(),
        Some("row 2 is only on green: (2); blue returned 1 row, green 2")
    );
    assert_eq!(
        describe_difference(&green, &[]).as_deref(),
        Some("row 1 is only on blue: (1); blue returned 2 rows, green 0")
    );
}

#[test]
fn long_values_are_cut() {
    let long = "é".repeat(100);
    let shown = show_row(&vec![Some(long), None]);
    assert_eq!(shown, format!("({}…, NULL)", "é".repeat(MAX_VALUE_CHARS)));
}

#[test]
fn empty_checks_show_the_first_row() {
    assert_eq!(describe_not_empty(&[]), None);
    let green = rows(&[&[Some("7"), Some("negative balance")], &[Some("9"), None]]);
    assert_eq!(describe_not_empty(&green).as_deref(), Some("green returned 2 rows, first: (7, negative balance)"));
}

#[test]
fn checksums_tell_counts_from_contents() {
    use super::checksum::describe_sums;
    let blue = rows(&[&[Some("10"), Some("123")]]);
    assert_eq!(describe_sums(&blue, &blue.clone()), None);
    let green = rows(&[&[Some("11"), Some("456")]]);
    assert_eq!(describe_sums(&blue, &green).as_deref(), Some("row counts differ: blue 10, green 11"));
    let green = rows(&[&[Some("10"), Some("456")]]);
    assert_eq!(
        describe_sums(&blue, &green).as_deref(),
        Some("same row count (10), different checksums: blue 123, green 456")
    );
}

#[test]
fn probes_follow_the_plan_then_the_tables() {
    let mut section = ValidateSection {
        window: Duration::from_secs(60),
        max_error_rate: 0.01,
        auto_rollback: true,
        table_checksums: true,
        checksum_chunk_rows: 100,
        consistent_point: true,
        checks: vec![
            Check { name: "balances".into(), sql: "SELECT 1".into(), mode: CheckMode::Compare },
            Check { name: "orphans".into(), sql: "SELECT 2".into(), mode: CheckMode::Empty },
        ],
    };
    let tables = [table("public", "t", &["id"], &["id"])];
    let kinds: Vec<(String, Kind)> = probes(&section, &tables).into_iter().map(|p| (p.outcome.name, p.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("balances".to_owned(), Kind::Compare),
            ("orphans".to_owned(), Kind::Empty),
            ("table public.t".to_owned(), Kind::Table)
        ]
    );
    section.table_checksums = false;
    assert_eq!(probes(&section, &tables).len(), 2);
}

#[test]
fn report_lists_every_check() {
    let report = ChecksReport {
        outcomes: vec![
            outcome("ledger balances", true, 2, None),
            outcome("no orphans", true, 1, None),
            outcome("table public.orders", false, 5, Some("row counts differ: blue 10, green 11")),
        ],
    };
    assert_eq!(
        report.to_string(),
        "ok   ledger balances (2 attempts)\n\
         ok   no orphans (1 attempt)\n\
         FAIL table public.orders (5 attempts): row counts differ: blue 10, green 11"
    );
    assert!(!report.passed());
    assert_eq!(report.failed().map(|o| o.name.as_str()).collect::<Vec<_>>(), vec!["table public.orders"]);
    assert!(ChecksReport::default().passed());
    assert_eq!(ChecksReport::default().to_string(), "");
}

#[test]
fn a_check_on_a_snapshot_is_a_transaction_of_its_own_whatever_the_check_ends_with() {
    let sql = super::point::on_snapshot("00000003-0000001B-1", "SELECT 1 -- the last line is a comment");
    assert_eq!(
        sql,
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '00000003-0000001B-1';\n\
         SELECT 1 -- the last line is a comment\n;\nCOMMIT"
    );
}
