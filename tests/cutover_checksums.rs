//! Table checksums in primary-key ranges against real clusters: many chunks, the same
//! verdict as one pass, a changed row found in its chunk, text keys in the "C" collation,
//! and a table without a primary key summed in one pass.

mod support;

use std::time::{Duration, Instant};

use pgflip::controller::plan::ValidateSection;
use pgflip::controller::validate::{self, checksum};
use support::blue_and_green;
use tokio_postgres::{Client, NoTls};

const TABLES: &str = "
DROP TABLE IF EXISTS numbers, people, loose;
CREATE TABLE numbers (id int PRIMARY KEY, v text);
INSERT INTO numbers SELECT g, 'value ' || g FROM generate_series(1, 1000) g;
CREATE TABLE people (name text, n int, note text, PRIMARY KEY (name, n));
INSERT INTO people SELECT CASE g % 3 WHEN 0 THEN 'Zoë' WHEN 1 THEN 'ábc' ELSE 'O''Brien' END || g, g % 7, 'x'
  FROM generate_series(1, 300) g;
CREATE TABLE loose (a int, b text);
INSERT INTO loose SELECT g, 'row' FROM generate_series(1, 200) g;
";

async fn connect(conninfo: String) -> Client {
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

fn section(chunk_rows: u64) -> ValidateSection {
    ValidateSection {
        window: Duration::ZERO,
        max_error_rate: 0.0,
        auto_rollback: false,
        table_checksums: true,
        checksum_chunk_rows: chunk_rows,
        consistent_point: false,
        checks: Vec::new(),
    }
}

#[test]
fn checksums_run_in_key_ranges_and_find_a_changed_row() {
    let (blue, green) = blue_and_green();
    for cluster in [blue, green] {
        cluster.psql(TABLES);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let b = connect(blue.conninfo("postgres", "postgres")).await;
        let g = connect(green.conninfo("postgres", "postgres")).await;
        let mut tables = validate::common_tables(&b, &g).await.expect("tables");
        tables.retain(|t| ["numbers", "people", "loose"].contains(&t.name.as_str()));
        let find = |name: &str| tables.iter().find(|t| t.name == name).expect(name).clone();
        let (numbers, people, loose) = (find("numbers"), find("people"), find("loose"));
        assert!(loose.key.is_empty() && people.key.len() == 2 && people.key[0].collatable);

        // 1000 rows, 37 a chunk: 27 full chunks, then the last one.
        let same = checksum::compare(&b, &g, &numbers, 37, None).await.expect("compare");
        assert_eq!((same.difference.as_deref(), same.chunks), (None, 28));
        let same = checksum::compare(&b, &g, &people, 16, None).await.expect("compare");
        assert_eq!(same.difference, None);
        assert!(same.chunks >= 19, "{same:?}");
        let one_pass = checksum::compare(&b, &g, &loose, 16, None).await.expect("compare");
        assert_eq!((one_pass.difference.as_deref(), one_pass.chunks), (None, 1));
        let deadline = Instant::now() + Duration::from_secs(5);
        let report = validate::run_checks(&b, &g, &section(37), &tables, deadline, None).await.expect("checks");
        assert!(report.passed(), "{report}");

        // One row changed on green, in the middle: found in its chunk.
        g.batch_execute("UPDATE numbers SET v = 'changed' WHERE id = 500").await.expect("update");
        let differ = checksum::compare(&b, &g, &numbers, 37, None).await.expect("compare");
        let detail = differ.difference.expect("a difference");
        assert!(
            detail.contains("same row count (37), different checksums") && detail.contains("after (481) up to (518)"),
            "{detail}"
        );
        assert_eq!(differ.chunks, 14, "it stops at the chunk that differs");
        g.batch_execute("DELETE FROM loose WHERE a = 7").await.expect("delete");
        let report = validate::run_checks(&b, &g, &section(37), &tables, Instant::now(), None).await.expect("checks");
        let failed: Vec<String> =
            report.failed().map(|o| format!("{}: {}", o.name, o.detail.clone().unwrap_or_default())).collect();
        let names: Vec<&str> = report.failed().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["table public.loose", "table public.numbers"], "{failed:?}");
        assert!(failed.iter().any(|f| f.contains("row counts differ: blue 200, green 199")), "{failed:?}");
    });
}
