//! The preflight of `pgflip cutover` against real clusters: a clean database passes, and a
//! table without a primary key, `wal_level = replica` and large objects block the cutover.
//! Each test has its own database on the shared cluster (the tests run in parallel).

mod support;

use pgflip::controller::preflight::{self, Finding, PreflightOptions, Report, Severity};
use std::time::Duration;
use support::{shared_cluster, Cluster, ClusterOptions};
use tokio_postgres::Client;

/// A new database `name` on the shared cluster, with `setup` run in it.
fn database_with(name: &str, setup: &str) -> &'static Cluster {
    let cluster = shared_cluster();
    cluster.create_database(name);
    cluster.psql_db(name, setup);
    cluster
}

fn options(database: &str, allow_full: &[&str]) -> PreflightOptions {
    PreflightOptions {
        app_roles: vec!["app".to_string()],
        allow_replica_identity_full: allow_full.iter().map(|table| table.to_string()).collect(),
        database: database.to_string(),
        client_tools: None,
    }
}

async fn run(blue: &Client, green: &Client, options: &PreflightOptions) -> Report {
    tokio::time::timeout(Duration::from_secs(20), preflight::run(blue, green, options))
        .await
        .expect("preflight: no answer within 20 s")
        .expect("preflight queries")
}

/// Blue is `database` on `blue`; green is the shared cluster, reached through `postgres`.
async fn preflight_of(blue: &Cluster, database: &str, allow_full: &[&str]) -> Report {
    let blue = blue.client(database).await;
    let green = shared_cluster().client("postgres").await;
    run(&blue, &green, &options(database, allow_full)).await
}

fn finding<'a>(report: &'a Report, severity: Severity, check: &str) -> Option<&'a Finding> {
    report.findings.iter().find(|finding| finding.severity == severity && finding.check == check)
}

#[tokio::test]
async fn a_clean_database_passes_and_reports_its_size() {
    let cluster = database_with(
        "pf_clean",
        "CREATE TABLE pf_clean_items (id int PRIMARY KEY, name text);
         INSERT INTO pf_clean_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g;",
    );
    let blue = cluster.client("pf_clean").await;
    let green = cluster.client("postgres").await;
    let report = run(&blue, &green, &options("pf_clean", &[])).await;
    let text = report.to_string();

    assert!(report.is_ok(), "a clean database must pass:\n{text}");
    assert!(text.starts_with("preflight passed"), "{text}");
    assert!(text.contains("database_size: database pf_clean is"), "{text}");
    assert!(text.contains("public.pf_clean_items"), "the largest tables are listed:\n{text}");
    assert!(report.facts["database_size_bytes"].as_i64().unwrap_or(0) > 0, "{:?}", report.facts);
    assert!(report.facts["blue_server_version_num"].as_i64().unwrap_or(0) >= 100000, "{:?}", report.facts);
    assert!(report.facts["green_server_version_num"].as_i64().unwrap_or(0) >= 100000, "{:?}", report.facts);
    assert_eq!(report.facts["green_database_exists"], true);

    // The checks ran in a read-only transaction that is gone: the session is as it was.
    let row = blue.query_one("SELECT current_setting('transaction_read_only')", &[]).await.expect("read setting");
    assert_eq!(row.get::<_, String>(0), "off");
}

#[tokio::test]
async fn a_table_without_primary_key_blocks_unless_allowed_full() {
    let cluster = database_with(
        "pf_nopk",
        "CREATE TABLE pf_nopk_events (at timestamptz, what text);
         CREATE TABLE pf_nopk_full (at timestamptz);
         ALTER TABLE pf_nopk_full REPLICA IDENTITY FULL;
         CREATE TABLE pf_nopk_indexed (code text NOT NULL);
         CREATE UNIQUE INDEX pf_nopk_indexed_code ON pf_nopk_indexed (code);
         ALTER TABLE pf_nopk_indexed REPLICA IDENTITY USING INDEX pf_nopk_indexed_code;",
    );

    let report = preflight_of(cluster, "pf_nopk", &[]).await;
    let text = report.to_string();
    assert!(!report.is_ok(), "{text}");
    let blocker = finding(&report, Severity::Blocker, "replica_identity").expect("a replica_identity blocker");
    assert_eq!(blocker.items, ["public.pf_nopk_events"], "FULL and USING INDEX tables pass:\n{text}");
    assert!(text.contains("public.pf_nopk_events"), "{text}");

    let report = preflight_of(cluster, "pf_nopk", &["public.pf_nopk_events"]).await;
    let text = report.to_string();
    assert!(report.is_ok(), "an allowed table no longer blocks:\n{text}");
    let info = finding(&report, Severity::Info, "replica_identity").expect("an info on REPLICA IDENTITY FULL");
    assert_eq!(info.items, ["public.pf_nopk_events"]);
    assert!(info.message.contains("REPLICA IDENTITY FULL"), "{}", info.message);
    assert_eq!(report.facts["replica_identity_full"], serde_json::json!(["public.pf_nopk_events"]));
}

#[tokio::test]
async fn wal_level_replica_blocks_with_the_fix() {
    let replica = Cluster::start_with(ClusterOptions::default().conf("wal_level = replica"));
    let report = preflight_of(&replica, "postgres", &[]).await;
    let text = report.to_string();

    assert!(!report.is_ok(), "{text}");
    let blocker = finding(&report, Severity::Blocker, "wal_level").expect("a wal_level blocker");
    assert!(blocker.message.contains("wal_level is 'replica' on blue"), "{}", blocker.message);
    assert!(blocker.message.contains("ALTER SYSTEM SET wal_level = logical"), "{}", blocker.message);
    assert!(text.starts_with("preflight FAILED"), "{text}");
    assert_eq!(report.blockers().count(), 1, "only wal_level is wrong:\n{text}");
}

#[tokio::test]
async fn large_objects_block() {
    let cluster = database_with("pf_lobs", "SELECT lo_from_bytea(0, 'a large object');");
    let report = preflight_of(cluster, "pf_lobs", &[]).await;
    let text = report.to_string();

    assert!(!report.is_ok(), "{text}");
    let blocker = finding(&report, Severity::Blocker, "large_objects").expect("a large_objects blocker");
    assert!(blocker.message.contains("large objects (1)"), "{}", blocker.message);
}

#[tokio::test]
async fn login_roles_outside_the_plan_that_can_write_are_warned() {
    let cluster = database_with(
        "pf_roles",
        "CREATE TABLE pf_roles_items (id int PRIMARY KEY);
         CREATE ROLE pf_roles_app LOGIN;
         CREATE ROLE pf_roles_batch LOGIN;
         CREATE ROLE pf_roles_reader LOGIN;
         GRANT INSERT, UPDATE ON pf_roles_items TO pf_roles_app, pf_roles_batch;
         GRANT SELECT ON pf_roles_items TO pf_roles_reader;",
    );
    let blue = cluster.client("pf_roles").await;
    let green = cluster.client("postgres").await;
    let mut options = options("pf_roles", &[]);
    options.app_roles = vec!["pf_roles_app".to_string()];
    let report = run(&blue, &green, &options).await;
    let text = report.to_string();

    assert!(report.is_ok(), "a warning does not block:\n{text}");
    let warning = finding(&report, Severity::Warning, "writer_roles").expect("a writer_roles warning");
    assert_eq!(warning.items, ["pf_roles_batch"], "{text}");
}

#[tokio::test]
async fn objects_that_do_not_replicate_and_user_types_are_listed() {
    let cluster = database_with(
        "pf_misc",
        "CREATE TYPE pf_mood AS ENUM ('sad', 'happy');
         CREATE TYPE pf_pair AS (a int, b int);
         CREATE DOMAIN pf_positive AS int CHECK (VALUE > 0);
         CREATE TABLE pf_misc_orders (id int PRIMARY KEY, mood pf_mood, qty pf_positive);
         CREATE UNLOGGED TABLE pf_misc_cache (id int PRIMARY KEY);
         CREATE MATERIALIZED VIEW pf_misc_totals AS SELECT count(*) FROM pf_misc_orders;
         CREATE FUNCTION pf_misc_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TRIGGER pf_misc_audit BEFORE INSERT ON pf_misc_orders FOR EACH ROW EXECUTE FUNCTION pf_misc_touch();
         CREATE TRIGGER pf_misc_always BEFORE UPDATE ON pf_misc_orders FOR EACH ROW EXECUTE FUNCTION pf_misc_touch();
         ALTER TABLE pf_misc_orders ENABLE ALWAYS TRIGGER pf_misc_always;",
    );
    let report = preflight_of(cluster, "pf_misc", &[]).await;
    let text = report.to_string();
    let items = |severity, check| finding(&report, severity, check).map(|f| f.items.clone()).unwrap_or_default();

    assert!(report.is_ok(), "{text}");
    assert_eq!(items(Severity::Warning, "unlogged_tables"), ["public.pf_misc_cache"], "{text}");
    assert_eq!(items(Severity::Warning, "materialized_views"), ["public.pf_misc_totals"], "{text}");
    assert_eq!(items(Severity::Warning, "triggers"), ["public.pf_misc_orders: pf_misc_audit"], "{text}");
    assert_eq!(
        items(Severity::Info, "user_types"),
        ["public.pf_mood (enum)", "public.pf_pair (composite)", "public.pf_positive (domain)"],
        "{text}"
    );
}
