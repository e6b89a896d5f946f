//! A partitioned table the migration widens on green cuts over, rolls back and cuts over
//! again with every row on both sides; a REPLICA IDENTITY FULL table it widens refuses the
//! cutover (nothing paused) until the plan accepts it as one-way, and validation then
//! leaves it out.

mod flip_support;
mod support;

use std::time::{Duration, Instant};

use flip_support::{controller, pace, text, wait_for_progress, writers, Fleet, APP, DB};

const EVENTS: &str = "
CREATE TABLE events (id int NOT NULL, at date NOT NULL, v int NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
INSERT INTO events SELECT g, DATE '2026-06-01' + g * 2, g FROM generate_series(1, 200) g;
GRANT SELECT, INSERT, UPDATE ON events TO app;
";

/// The migration: both tables get a column blue does not have.
fn migrate() -> String {
    let sql =
        "ALTER TABLE events ADD COLUMN note text NOT NULL DEFAULT 'green'; ALTER TABLE tallies ADD COLUMN note text";
    format!(
        "[migrate]\ncommand = \"{} -v ON_ERROR_STOP=1 -c \\\"{sql}\\\"\"\n",
        support::pg_bin().join("psql").display()
    )
}

/// `(id, at, v)` of every event on `cluster`, in order.
fn events(cluster: &support::Cluster) -> String {
    cluster.psql_db(DB, "SELECT string_agg(id || '/' || at || '/' || v, ',' ORDER BY id) FROM events")
}

/// Inserts events `ids` (one in each partition) and updates event 1, through `fleet`'s
/// first sidecar as the app.
fn write_events(fleet: &Fleet, ids: [i32; 2]) {
    let conninfo = fleet.sidecars[0].conninfo(APP, DB);
    let sql = format!(
        "INSERT INTO events (id, at, v) VALUES ({a}, '2026-03-01', {a}), ({b}, '2027-03-01', {b}); \
         UPDATE events SET v = v + 1 WHERE id = 1",
        a = ids[0],
        b = ids[1]
    );
    let out = support::psql(&conninfo, &sql);
    assert!(out.status.success(), "{}", out.stderr);
}

/// Waits until `cluster` has the same events as `source`.
fn wait_same_events(source: &support::Cluster, cluster: &support::Cluster, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(cluster) != events(source) {
        assert!(Instant::now() < deadline, "{what}: events differ:\n{}\n{}", events(source), events(cluster));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pauses(fleet: &Fleet) -> f64 {
    fleet
        .sidecars
        .iter()
        .map(|p| support::metric_sum(&p.admin_get("/metrics").expect("metrics").1, "pgflip_pause_seconds_count", ""))
        .sum()
}

#[test]
fn a_partitioned_table_widened_by_the_migration_cuts_over_and_rolls_back() {
    let fleet = Fleet::start(2);
    fleet.blue.psql_db(DB, EVENTS);
    let plan = fleet.plan(&[], &migrate());
    let out = controller(&plan, &["run", "--until", "catchup"]);
    assert!(out.status.success(), "{}", text(&out));
    let writers = writers(&fleet);
    wait_for_progress(&writers, 2);
    write_events(&fleet, [1001, 1002]);

    // tallies is REPLICA IDENTITY FULL and now wider on green: its writes could not go back.
    let out = controller(&plan, &["run", "--until", "cutover"]);
    let said = text(&out);
    assert!(!out.status.success() && said.contains("public.tallies") && said.contains("one_way_tables"), "{said}");
    assert_eq!(pauses(&fleet), 0.0, "a refused cutover pauses nothing");
    assert_eq!(fleet.actives(), ["blue", "blue"]);

    let plan = fleet.plan_with(&[], "one_way_tables = [\"public.tallies\"]", &migrate());
    pace(&writers, 400);
    let out = controller(&plan, &["run"]);
    pace(&writers, 100);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("leaves out one-way tables") && said.contains("public.tallies"), "{said}");
    assert_eq!(fleet.actives(), ["green", "green"]);
    // Rows written on green, in both partitions, reach blue's partitions by the way back.
    write_events(&fleet, [2001, 2002]);
    wait_same_events(&fleet.green, &fleet.blue, "blue after the cutover");
    assert_eq!(fleet.green.psql_db(DB, "SELECT count(*) FROM events WHERE note = 'green'"), "204");

    pace(&writers, 400);
    let out = controller(&plan, &["rollback"]);
    pace(&writers, 100);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    write_events(&fleet, [3001, 3002]);
    wait_same_events(&fleet.blue, &fleet.green, "green after the rollback");
    assert_eq!(fleet.blue.psql_db(DB, "SELECT count(*) FROM events_2027"), events_2027(&fleet.green));

    pace(&writers, 400);
    let out = controller(&plan, &["run", "--until", "cutover"]);
    pace(&writers, 100);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green"]);
    write_events(&fleet, [4001, 4002]);
    wait_same_events(&fleet.green, &fleet.blue, "blue after the second cutover");
    wait_for_progress(&writers, 2);
    for (i, writer) in writers.into_iter().enumerate() {
        let (_, errors) = writer.stop();
        assert!(errors.is_empty(), "writer {i}: {errors:?}");
    }
}

fn events_2027(cluster: &support::Cluster) -> String {
    cluster.psql_db(DB, "SELECT count(*) FROM events_2027")
}
