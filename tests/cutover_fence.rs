//! The write fence against writers outside the fleet, and recovery from a controller that
//! dies at any step of a flip, with writers running through the sidecars throughout.

mod flip_support;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flip_support::{
    controller, controller_crashing_at, pace, text, wait_for_progress, writers, DirectWriter, Fleet, Writer, DB,
};

/// The seqs of `writer` on `cluster`.
fn seqs(cluster: &support::Cluster, writer: i32) -> BTreeSet<i32> {
    cluster
        .psql_db(DB, &format!("SELECT seq FROM entries WHERE writer = {writer}"))
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Waits until every seq in `acked` of `writer` is on `cluster` (replication may trail).
fn wait_for_rows(cluster: &support::Cluster, writer: i32, acked: &[i32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let present = seqs(cluster, writer);
        let missing: Vec<&i32> = acked.iter().filter(|s| !present.contains(s)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: writer {writer}'s acknowledged seqs {missing:?} are missing");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn superuser(cluster: &support::Cluster, application: &str) -> String {
    format!("{} application_name={application}", cluster.conninfo("postgres", DB))
}

/// A superuser's direct write to `cluster`: Ok(()) when it commits.
fn direct_superuser_write(cluster: &support::Cluster, writer: i32, seq: i32) -> Result<(), String> {
    let sql = format!("INSERT INTO entries (writer, seq) VALUES ({writer}, {seq})");
    let out = support::psql(&superuser(cluster, "direct"), &sql);
    if out.status.success() {
        Ok(())
    } else {
        Err(out.stderr)
    }
}

fn fence_triggers(cluster: &support::Cluster) -> i64 {
    cluster.psql_db(DB, "SELECT count(*) FROM pg_trigger WHERE tgname = 'pgflip_fence'").parse().expect("count")
}

fn stop_all(writers: Vec<Writer>) -> Vec<Vec<i32>> {
    writers
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let (acked, errors) = w.stop();
            assert!(errors.is_empty(), "writer {i} saw errors: {errors:?}");
            acked
        })
        .collect()
}

#[test]
fn a_superuser_writing_to_blue_is_stopped_by_the_fence_and_loses_nothing() {
    let fleet = Fleet::start(2);
    let plan = fleet.plan(&[], "");
    let out = controller(&plan, &["run", "--until", "catchup"]);
    assert!(out.status.success(), "{}", text(&out));
    let writers = writers(&fleet);
    let outsider = DirectWriter::start(50, superuser(&fleet.blue, "outsider"));
    // A superuser transaction that has written and not committed when the fence comes.
    let mut holdout = std::process::Command::new(support::pg_bin().join("psql"))
        .arg(superuser(&fleet.blue, "holdout"))
        .args(["-c", "BEGIN; INSERT INTO entries (writer, seq) VALUES (51, 1); SELECT pg_sleep(120); COMMIT;"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("holdout psql");
    wait_for_progress(&writers, 3);
    assert!(!outsider.acked.lock().unwrap().is_empty(), "the outsider writes to blue before the cutover");

    pace(&writers, 400);
    let out = controller(&plan, &["run", "--until", "cutover"]);
    pace(&writers, 100);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("the fence ended") && said.contains("holdout"), "the ended session is named:\n{said}");
    assert!(!holdout.wait().expect("holdout").success(), "the holdout's transaction was ended");
    assert_eq!(fleet.actives(), ["green", "green"]);

    // The outsider keeps trying on blue; every try after the fence fails.
    let failures_at_cutover = outsider.errors().len();
    let acked_at_cutover = outsider.acked.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(600));
    let (acked, errors) = outsider.stop();
    assert_eq!(acked.len(), acked_at_cutover, "the outsider committed on blue after the fence: {errors:?}");
    assert!(errors.len() > failures_at_cutover, "the outsider kept trying");
    assert!(errors.last().is_some_and(|e| e.contains("25006") && e.contains("fenced")), "{errors:?}");
    // Every write the outsider saw acknowledged is on green; the holdout's is nowhere.
    wait_for_rows(&fleet.green, 50, &acked, "green after the cutover");
    assert!(seqs(&fleet.green, 51).is_empty() && seqs(&fleet.blue, 51).is_empty());

    // Reverse replication still applies into fenced blue.
    wait_for_progress(&writers, 5);
    let acked_on_green: Vec<Vec<i32>> = writers.iter().map(|w| w.acked.lock().unwrap().clone()).collect();
    for (i, acked) in acked_on_green.iter().enumerate() {
        wait_for_rows(&fleet.blue, i as i32, acked, "blue, by the reverse link");
    }
    let refused = direct_superuser_write(&fleet.blue, 52, 1).expect_err("blue stays fenced");
    assert!(refused.contains("fenced"), "{refused}");
    assert_eq!(fence_triggers(&fleet.green), 0, "green is not fenced");

    pace(&writers, 400);
    let out = controller(&plan, &["rollback"]);
    pace(&writers, 100);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    assert_eq!(fence_triggers(&fleet.blue), 0, "the rollback removed blue's fence");
    direct_superuser_write(&fleet.blue, 52, 2).expect("blue takes writes again");
    let refused = direct_superuser_write(&fleet.green, 52, 3).expect_err("green is fenced now");
    assert!(refused.contains("fenced"), "{refused}");
    wait_for_progress(&writers, 3);
    let acked = stop_all(writers);
    for (i, acked) in acked.iter().enumerate() {
        wait_for_rows(&fleet.blue, i as i32, acked, "blue after the rollback");
        wait_for_rows(&fleet.green, i as i32, acked, "green, by the forward link");
    }
}

/// Where a flip may die, in the order it passes them.
const CRASH_POINTS: [&str; 5] =
    ["after-fence", "after-fence-lsn", "after-detach", "before-switch", "after-first-switch"];

/// Crashes `args` (a cutover or a rollback) at every point in turn, each followed by a run
/// that resolves it: back for every point before the first switch, forward after. At
/// `before-switch` the new side is open and replicates back: a superuser commits there
/// (writer 60), and the back-out must carry it to the old side; after each back-out a
/// superuser commits on the reopened old side (writer 61). Returns those seqs.
fn crash_everywhere(fleet: &Fleet, plan: &std::path::Path, args: &[&str], base: i32) -> (Vec<i32>, Vec<i32>) {
    let rollback = args[0] == "rollback";
    let (from, to) = if rollback { ("green", "blue") } else { ("blue", "green") };
    let (old, new) = if rollback { (&fleet.green, &fleet.blue) } else { (&fleet.blue, &fleet.green) };
    let (mut on_new, mut on_old) = (Vec::new(), Vec::new());
    for (n, point) in CRASH_POINTS.into_iter().enumerate() {
        let seq = base + n as i32;
        let out = controller_crashing_at(plan, args, Some(point));
        assert_eq!(out.status.code(), Some(86), "{args:?} at {point}:\n{}", text(&out));
        let mut blocker = None;
        if point == "before-switch" {
            // The old side's apply of this write waits behind a transaction that inserts
            // the same key there and rolls back after 2 s: a back-out that does not wait for
            // the way back loses the write.
            let sql = format!(
                "SET session_replication_role = replica; BEGIN; \
                 INSERT INTO entries (writer, seq) VALUES (60, {seq}); SELECT pg_sleep(2); ROLLBACK;"
            );
            blocker = Some(
                std::process::Command::new(support::pg_bin().join("psql"))
                    .arg(superuser(old, "blocker"))
                    .args(["-c", &sql])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("blocker"),
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while old.psql_db(
                DB,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'blocker' \
                 AND backend_xid IS NOT NULL",
            ) != "1"
            {
                assert!(Instant::now() < deadline, "the blocker never began");
                std::thread::sleep(Duration::from_millis(20));
            }
            direct_superuser_write(new, 60, seq).expect("the new side is open before the switch");
            on_new.push(seq);
        }
        let out = controller(plan, args);
        let said = text(&out);
        if let Some(mut blocker) = blocker {
            blocker.wait().expect("blocker");
        }
        if point == "after-first-switch" {
            assert!(out.status.success(), "{args:?} after {point} is finished:\n{said}");
            assert!(fleet.actives().iter().all(|a| a == to), "{point}: {:?}", fleet.actives());
        } else {
            assert!(!out.status.success() && said.contains("undone"), "{args:?} at {point} is undone:\n{said}");
            assert!(fleet.actives().iter().all(|a| a == from), "{point}: {:?}", fleet.actives());
            assert_eq!(fence_triggers(old), 0, "{point}: the old side is open again");
            direct_superuser_write(old, 61, seq).expect("the old side takes writes again");
            on_old.push(seq);
        }
    }
    (on_new, on_old)
}

#[test]
fn crashes_at_every_flip_and_rollback_step_lose_no_acknowledged_commit() {
    let fleet = Fleet::start(2);
    let plan = fleet.plan(&[], "");
    let out = controller(&plan, &["run", "--until", "catchup"]);
    assert!(out.status.success(), "{}", text(&out));
    let writers = writers(&fleet);
    wait_for_progress(&writers, 3);

    let (mut on_new, mut on_old) = crash_everywhere(&fleet, &plan, &["run", "--until", "cutover"], 1000);
    wait_for_progress(&writers, 3);
    let (back_new, back_old) = crash_everywhere(&fleet, &plan, &["rollback"], 2000);
    on_new.extend(back_new);
    on_old.extend(back_old);
    wait_for_progress(&writers, 3);

    // Blue serves; green is fed by the forward link. Key by key, both have every
    // acknowledged commit: the writers' through the sidecars, the outsider's drained back.
    let acked = stop_all(writers);
    let mut total = 0;
    for (i, acked) in acked.iter().enumerate() {
        wait_for_rows(&fleet.blue, i as i32, acked, "blue at the end");
        wait_for_rows(&fleet.green, i as i32, acked, "green at the end");
        total += acked.len();
    }
    for (writer, seqs) in [(60, &on_new), (61, &on_old)] {
        wait_for_rows(&fleet.blue, writer, seqs, "blue: direct writes");
        wait_for_rows(&fleet.green, writer, seqs, "green: direct writes");
    }
    eprintln!("acknowledged commits through the sidecars: {total}; direct writes drained back: {}", on_new.len());
}
