//! `pgflip cutover` flipping a fleet of three sidecars between two real clusters while a
//! writer works through each sidecar: cutover, validation, rollback, a second cutover and
//! promote with every acknowledged commit kept and no writer error; the aborts.

mod flip_support;
mod support;

use std::time::{Duration, Instant};

use flip_support::{
    controller, controller_crashing_at, pace, rows, text, wait_for_progress, write_pauses, writers, Fleet, APP,
    APP_PASSWORD, DB,
};

/// A fresh direct connection to `cluster` as the app role: Ok(()) when it can write.
fn direct_write(cluster: &support::Cluster) -> Result<(), String> {
    let conninfo = format!(
        "host=127.0.0.1 port={} user={APP} password={APP_PASSWORD} dbname={DB} sslmode=disable",
        cluster.port()
    );
    let out = support::psql(&conninfo, "UPDATE tallies SET n = n WHERE writer = 9");
    if out.status.success() {
        Ok(())
    } else {
        Err(out.stderr)
    }
}

/// How many pauses each sidecar has had.
fn pauses(fleet: &Fleet) -> Vec<f64> {
    fleet
        .sidecars
        .iter()
        .map(|p| {
            let (_, metrics) = p.admin_get("/metrics").expect("metrics");
            support::metric_sum(&metrics, "pgflip_pause_seconds_count", "")
        })
        .collect()
}

/// Stops the writers and checks none saw an error.
fn stop_clean(writers: Vec<flip_support::Writer>) {
    for (i, writer) in writers.into_iter().enumerate() {
        let (_, errors) = writer.stop();
        assert!(errors.is_empty(), "writer {i} saw errors: {errors:?}");
    }
}

/// The plan, run up to the catch-up (green subscribed), and the writers going.
fn caught_up(fleet: &Fleet) -> (std::path::PathBuf, Vec<flip_support::Writer>) {
    let plan = fleet.plan(&[], "");
    let out = controller(&plan, &["run", "--until", "catchup"]);
    assert!(out.status.success(), "{}", text(&out));
    let writers = writers(fleet);
    wait_for_progress(&writers, 2);
    (plan, writers)
}

#[test]
fn cutover_rollback_cutover_promote_keeps_every_acknowledged_commit() {
    let fleet = Fleet::start(3);
    let plan = fleet.plan(&[], "");
    let writers = writers(&fleet);
    wait_for_progress(&writers, 3);

    pace(&writers, 400);
    let out = controller(&plan, &["run"]);
    pace(&writers, 100);
    assert!(out.status.success(), "first cutover failed:\n{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green", "green"]);
    wait_for_progress(&writers, 3);
    // The fence holds on blue for anyone who bypasses the sidecars.
    let refused = direct_write(&fleet.blue).expect_err("the app role must not log in to blue after the fence");
    assert!(refused.contains("not permitted to log in"), "{refused}");
    // Sequences went on without a collision: green's ids are beyond blue's.
    let blue_max: i64 = fleet.blue.psql_db(DB, "SELECT max(id) FROM entries WHERE writer < 100").parse().unwrap_or(0);
    let green_max: i64 = fleet.green.psql_db(DB, "SELECT max(id) FROM entries").parse().expect("max id");
    assert!(green_max >= blue_max, "green {green_max} < blue {blue_max}");
    let config = std::fs::read_to_string(fleet.dir.path().join("sidecar.toml")).expect("sidecar config");
    assert!(config.contains("active = \"green\""), "{config}");

    let out = controller(&plan, &["rollback"]);
    assert!(out.status.success(), "rollback failed:\n{}", text(&out));
    assert_eq!(fleet.actives(), ["blue", "blue", "blue"]);
    wait_for_progress(&writers, 3);
    direct_write(&fleet.blue).expect("blue is open again after the rollback");
    let refused = direct_write(&fleet.green).expect_err("green is fenced after the rollback");
    assert!(refused.contains("not permitted to log in"), "{refused}");

    pace(&writers, 400);
    let out = controller(&plan, &["run"]);
    pace(&writers, 100);
    assert!(out.status.success(), "second cutover failed:\n{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green", "green"]);
    wait_for_progress(&writers, 3);

    let out = controller(&plan, &["promote"]);
    assert!(out.status.success(), "promote failed:\n{}", text(&out));
    for cluster in [&fleet.blue, &fleet.green] {
        let left = cluster.psql_db(
            DB,
            "SELECT (SELECT count(*) FROM pg_subscription) + (SELECT count(*) FROM pg_replication_slots) \
             + (SELECT count(*) FROM pg_publication)",
        );
        assert_eq!(left, "0", "replication objects left on port {}", cluster.port());
    }
    // The final archive of blue, and the retire command, run against blue.
    let archive = std::fs::read_dir(fleet.dir.path().join("archive")).expect("archive dir").next().expect("a dump");
    assert!(archive.expect("entry").path().join("toc.dat").exists(), "a directory-format dump");
    let retired = std::fs::read_to_string(fleet.dir.path().join("retired")).expect("the retire command ran");
    assert_eq!(retired.trim(), "1");
    wait_for_progress(&writers, 2);

    let stopped: Vec<(Vec<i32>, Vec<String>)> = writers.into_iter().map(|w| w.stop()).collect();
    let on_green = rows(&fleet.green);
    let mut acknowledged = 0;
    for (i, (acked, errors)) in stopped.iter().enumerate() {
        assert!(errors.is_empty(), "writer {i} saw errors: {errors:?}");
        for seq in acked {
            assert!(on_green.contains(&(i as i32, *seq)), "writer {i} seq {seq} was acknowledged but is not on green");
        }
        let tally = fleet.green.psql_db(DB, &format!("SELECT n FROM tallies WHERE writer = {i}"));
        assert_eq!(tally, acked.last().expect("acks").to_string(), "writer {i}'s tally");
        acknowledged += acked.len();
    }
    let log = std::fs::read_to_string(plan.with_file_name("cutover.log")).unwrap_or_default();
    let pauses = write_pauses(&log);
    assert_eq!(pauses.len(), 3, "three flips, each reporting its write pause:\n{log}");
    eprintln!("acknowledged commits: {acknowledged}; write pauses (ms): {pauses:?}");
}

#[test]
fn an_unreachable_sidecar_refuses_the_cutover_before_any_pause() {
    let fleet = Fleet::start(2);
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let plan = fleet.plan(std::slice::from_ref(&dead), "");
    let writers = writers(&fleet);
    let out = controller(&plan, &["run"]);
    assert!(!out.status.success(), "the cutover must fail");
    let said = text(&out);
    assert!(said.contains("nothing was paused") && said.contains(&dead), "{said}");
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    assert_eq!(pauses(&fleet), [0.0, 0.0], "a flip that cannot finish pauses nobody");
    wait_for_progress(&writers, 3);
    direct_write(&fleet.blue).expect("blue is not fenced");
    stop_clean(writers);
}

/// Row count of `table` on `cluster`.
fn count(cluster: &support::Cluster, table: &str) -> i64 {
    cluster.psql_db(DB, &format!("SELECT count(*) FROM {table}")).parse().expect("a count")
}

#[test]
fn tables_made_on_both_sides_during_catch_up_reach_green_and_come_back() {
    let fleet = Fleet::start(2);
    let (plan, writers) = caught_up(&fleet);
    // A deploy adds a table and a monthly partition on both sides while green catches up.
    let ddl = "CREATE TABLE late (id int PRIMARY KEY, note text); \
               CREATE TABLE events (id int, month int, PRIMARY KEY (id, month)) PARTITION BY LIST (month); \
               CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1)";
    for cluster in [&fleet.blue, &fleet.green] {
        cluster.psql_db(DB, ddl);
    }
    fleet.blue.psql_db(DB, "INSERT INTO late SELECT g, 'before' FROM generate_series(1, 50) g");
    fleet.blue.psql_db(DB, "INSERT INTO events SELECT g, 1 FROM generate_series(1, 50) g");
    for cluster in [&fleet.blue, &fleet.green] {
        cluster.psql_db(DB, "CREATE TABLE events_2 PARTITION OF events FOR VALUES IN (2)");
    }
    fleet.blue.psql_db(DB, "INSERT INTO events SELECT g, 2 FROM generate_series(1, 30) g");
    // A table only blue has: the flip is refused, naming it.
    fleet.blue.psql_db(DB, "CREATE TABLE only_blue (id int PRIMARY KEY)");
    let out = controller(&plan, &["run", "--until", "cutover"]);
    let said = text(&out);
    assert!(!out.status.success(), "a table green lacks must refuse the flip:\n{said}");
    assert!(
        said.contains("blue publishes tables green lacks: public.only_blue") && said.contains("nothing was paused"),
        "{said}"
    );
    assert_eq!(pauses(&fleet), [0.0, 0.0]);
    fleet.green.psql_db(DB, "CREATE TABLE only_blue (id int PRIMARY KEY)");
    fleet.blue.psql_db(
        DB,
        "INSERT INTO late SELECT g, 'later' FROM generate_series(51, 60) g; INSERT INTO only_blue VALUES (1)",
    );

    let out = controller(&plan, &["run", "--until", "cutover"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green"]);
    assert_eq!(
        (count(&fleet.green, "late"), count(&fleet.green, "events"), count(&fleet.green, "only_blue")),
        (60, 80, 1)
    );
    assert_eq!(count(&fleet.green, "events_2"), 30);

    // The same on the way back: a table made on both sides while green serves, with a row
    // the deploy put on both (PostgreSQL's copy would add green's to it: pgflip copies).
    for cluster in [&fleet.blue, &fleet.green] {
        cluster.psql_db(DB, "CREATE TABLE after_cutover (id int PRIMARY KEY); INSERT INTO after_cutover VALUES (0)");
    }
    fleet
        .green
        .psql_db(DB, "INSERT INTO after_cutover SELECT generate_series(1, 20); INSERT INTO late VALUES (61, 'green')");
    let out = controller(&plan, &["rollback"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("blue now applies public.after_cutover (it exists on both sides; rows copied by pgflip)"),
        "{said}"
    );
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    assert_eq!((count(&fleet.blue, "after_cutover"), count(&fleet.blue, "late")), (21, 61));
    stop_clean(writers);
}

#[test]
fn a_stopped_subscription_refuses_the_flip_before_any_pause_and_an_unfinished_rollback_refuses_promote() {
    let fleet = Fleet::start(2);
    let (plan, writers) = caught_up(&fleet);
    // As disable_on_error leaves it after an apply error.
    fleet.green.psql_db(DB, "ALTER SUBSCRIPTION pgflip_ledger_fwd DISABLE");
    let out = controller(&plan, &["run"]);
    let said = text(&out);
    assert!(!out.status.success(), "the cutover must be refused:\n{said}");
    assert!(
        said.contains("replication from blue to green is disabled") && said.contains("nothing was paused"),
        "{said}"
    );
    assert_eq!(pauses(&fleet), [0.0, 0.0], "nobody was paused");
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    // Enabled again, the same run goes through.
    fleet.green.psql_db(DB, "ALTER SUBSCRIPTION pgflip_ledger_fwd ENABLE");
    let out = controller(&plan, &["run", "--until", "cutover"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green"]);

    // A rollback that dies part-way: promote (and run) refuse until it is resolved.
    let out = controller_crashing_at(&plan, &["rollback"], Some("before-switch"));
    assert!(!out.status.success(), "the failpoint ends the rollback");
    for action in ["promote", "run"] {
        let out = controller(&plan, &[action]);
        let said = text(&out);
        assert!(!out.status.success(), "{action} must refuse:\n{said}");
        assert!(
            said.contains("the rollback stopped part-way") && said.contains("run `pgflip cutover rollback`"),
            "{action}: {said}"
        );
    }
    // The next rollback undoes the interrupted one (no sidecar had switched) and says so;
    // the one after rolls back afresh.
    let out = controller(&plan, &["rollback"]);
    assert!(!out.status.success() && text(&out).contains("Run again to start it afresh"), "{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green"]);
    let out = controller(&plan, &["rollback"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    stop_clean(writers);
}

#[test]
fn green_killed_while_waiting_for_the_fence_lsn_aborts_back_to_blue() {
    let fleet = Fleet::start(2);
    let (plan, writers) = caught_up(&fleet);
    // Green's apply waits behind these row locks, so the fence LSN cannot arrive.
    let green_conninfo = fleet.green.conninfo("postgres", DB);
    let mut locker = std::process::Command::new(support::pg_bin().join("psql"))
        .arg(&green_conninfo)
        .args(["-c", "BEGIN; SELECT * FROM tallies FOR UPDATE; SELECT pg_sleep(60);"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("locker");
    let mut child = flip_support::spawn_controller(&plan, &["run"], "killed-green.log");
    let log_path = plan.with_file_name("killed-green.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("waiting for the fence LSN") {
        assert!(Instant::now() < deadline, "the cutover never waited for the fence LSN");
        std::thread::sleep(Duration::from_millis(20));
    }
    fleet.green.kill();
    let _ = locker.kill();
    let _ = locker.wait();
    let status = child.wait().expect("controller");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!status.success(), "the cutover must fail without green:\n{log}");
    assert!(log.contains("aborted"), "{log}");
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    direct_write(&fleet.blue).expect("blue is unfenced after the abort");
    wait_for_progress(&writers, 3);
    stop_clean(writers);
}

#[test]
fn a_controller_dead_after_the_first_switch_is_finished_by_the_next_run() {
    let fleet = Fleet::start(3);
    let (plan, writers) = caught_up(&fleet);
    let out = controller_crashing_at(&plan, &["run"], Some("after-first-switch"));
    assert_eq!(out.status.code(), Some(86), "{}", text(&out));
    let actives = fleet.actives();
    assert_eq!(actives.iter().filter(|a| *a == "green").count(), 1, "{actives:?}");
    pace(&writers, 400);
    let out = controller(&plan, &["run"]);
    pace(&writers, 100);
    assert!(out.status.success(), "the re-run must finish the cutover:\n{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green", "green"]);
    wait_for_progress(&writers, 3);
    stop_clean(writers);
}

#[test]
fn a_controller_dead_before_any_switch_is_undone_by_the_next_run() {
    let fleet = Fleet::start(2);
    let (plan, writers) = caught_up(&fleet);
    // Blue fenced, green opened and replicating back, no sidecar switched.
    let out = controller_crashing_at(&plan, &["run"], Some("before-switch"));
    assert_eq!(out.status.code(), Some(86), "{}", text(&out));
    direct_write(&fleet.blue).expect_err("blue is fenced while the flip is half done");
    let out = controller(&plan, &["run"]);
    assert!(!out.status.success(), "the re-run undoes the flip and says so");
    assert!(text(&out).contains("undone"), "{}", text(&out));
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    direct_write(&fleet.blue).expect("blue is unfenced");
    direct_write(&fleet.green).expect_err("green is fenced again");
    wait_for_progress(&writers, 3);
    // A later run cuts over cleanly.
    pace(&writers, 400);
    let out = controller(&plan, &["run"]);
    pace(&writers, 100);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green"]);
    wait_for_progress(&writers, 2);
    stop_clean(writers);
}

#[test]
fn a_failed_validation_rolls_back_by_itself() {
    let fleet = Fleet::start(2);
    let extra = r#"[[validate.check]]
name = "never empty"
sql = "SELECT 1"
mode = "empty""#;
    let plan = fleet.plan(&[], extra);
    let plan_text = std::fs::read_to_string(&plan).expect("plan");
    std::fs::write(&plan, plan_text.replace("auto_rollback = false", "auto_rollback = true")).expect("plan");
    let writers = writers(&fleet);
    wait_for_progress(&writers, 2);
    pace(&writers, 400);
    let out = controller(&plan, &["run"]);
    pace(&writers, 100);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("never empty") && said.contains("Rolled back"), "{said}");
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    direct_write(&fleet.blue).expect("blue is open after the automatic rollback");
    wait_for_progress(&writers, 3);
    stop_clean(writers);
}
