//! Operating `pgflip cutover` on real clusters: two plans for two databases of one blue and
//! one green cluster run side by side, each with its own replication names; `abandon` after
//! a catch-up leaves nothing behind and blue serving; `status` reads both servers' slots and
//! subscriptions, and says when a side cannot be reached; one controller per plan, on the
//! servers its journal knows; DDL on blue waits for its lock and gives up naming the holder.

mod flip_support;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use flip_support::{controller, spawn_controller, text, Fleet, Writer, APP, DB};
use support::{Cluster, ProxyBuilder};

const DB2: &str = "ledger2";
const APP2: &str = "app2";

fn ok(output: &Output) -> String {
    let text = text(output);
    assert!(output.status.success(), "the controller failed:\n{text}");
    text
}

fn refused(output: &Output) -> String {
    let text = text(output);
    assert!(!output.status.success(), "the controller should have refused:\n{text}");
    text
}

/// Waits for a controller started with [`spawn_controller`] to succeed; its log is `log`.
fn wait_ok(mut child: Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            assert!(status.success(), "the controller failed ({status}):\n{text}");
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the controller did not finish:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The (writer, seq) rows of `writer` in `database` on `cluster`.
fn rows(cluster: &Cluster, database: &str, writer: i32) -> BTreeSet<i32> {
    let sql = format!("SELECT seq FROM entries WHERE writer = {writer}");
    cluster.psql_db(database, &sql).lines().filter_map(|l| l.parse().ok()).collect()
}

fn stop_clean(writer: Writer, name: &str) -> BTreeSet<i32> {
    let (acked, errors) = writer.stop();
    assert!(errors.is_empty(), "writer {name} saw errors: {errors:?}");
    assert!(!acked.is_empty(), "writer {name} wrote nothing");
    acked.into_iter().collect()
}

/// Database `DB2` on blue with role `APP2`, a sidecar in front of it, and a plan for it
/// in a directory of its own, made from `plan` (the plan of `DB`).
fn second_database(fleet: &Fleet, plan: &Path) -> (support::Proxy, PathBuf) {
    fleet.blue.psql(&format!("CREATE ROLE {APP2} LOGIN PASSWORD 'app2-secret'"));
    fleet.blue.create_database(DB2);
    fleet.blue.psql_db(
        DB2,
        &format!(
            "CREATE TABLE entries (id bigserial PRIMARY KEY, writer int NOT NULL, seq int NOT NULL, UNIQUE (writer, seq));
             CREATE TABLE tallies (writer int NOT NULL, n int NOT NULL);
             INSERT INTO tallies SELECT g, 0 FROM generate_series(0, 9) g;
             INSERT INTO entries (writer, seq) SELECT 200, g FROM generate_series(1, 50) g;
             GRANT SELECT, INSERT, UPDATE ON entries, tallies TO {APP2};
             GRANT USAGE ON SEQUENCE entries_id_seq TO {APP2};"
        ),
    );
    let url = |c: &Cluster| format!("postgres://{APP2}:app2-secret@127.0.0.1:{}/{DB2}", c.port());
    let sidecar = ProxyBuilder::default()
        .upstream("blue", &url(&fleet.blue))
        .upstream("green", &url(&fleet.green))
        .active("blue")
        .admin_token(flip_support::ADMIN_TOKEN)
        .spawn();
    let dir = fleet.dir.path().join("second");
    std::fs::create_dir(&dir).expect("second plan's directory");
    for file in ["admin-token", "sidecar.toml"] {
        std::fs::copy(fleet.dir.path().join(file), dir.join(file)).expect("copy");
    }
    let text = std::fs::read_to_string(plan)
        .expect("plan")
        .replace(&format!("/{DB}?"), &format!("/{DB2}?"))
        .replace(&format!("roles = [\"{APP}\"]"), &format!("roles = [\"{APP2}\"]"))
        .replace(
            &format!("http://127.0.0.1:{}", fleet.sidecars[0].admin_port()),
            &format!("http://127.0.0.1:{}", sidecar.admin_port()),
        );
    let second = dir.join("plan.toml");
    std::fs::write(&second, text).expect("second plan");
    (sidecar, second)
}

#[test]
fn two_plans_for_two_databases_of_one_cluster_pair_run_side_by_side() {
    let fleet = Fleet::start(1);
    let plan_a = fleet.plan(&[], "");
    let (sidecar_b, plan_b) = second_database(&fleet, &plan_a);
    let writer_a = Writer::start(0, format!("host=127.0.0.1 port={} user={APP} dbname={DB}", fleet.sidecars[0].port()));
    let writer_b = Writer::start(1, format!("host=127.0.0.1 port={} user={APP2} dbname={DB2}", sidecar_b.port()));

    // A restores first (it creates both app roles on green); then both catch up at once,
    // B's snapshot slot made while A's subscription streams from blue.
    ok(&controller(&plan_a, &["run", "--until", "restore"]));
    let a = spawn_controller(&plan_a, &["run", "--until", "catchup"], "a.log");
    let b = spawn_controller(&plan_b, &["run", "--until", "catchup"], "b.log");
    wait_ok(a, &plan_a.with_file_name("a.log"));
    wait_ok(b, &plan_b.with_file_name("b.log"));
    let slots = "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots";
    assert_eq!(fleet.blue.psql(slots), "pgflip_ledger2_fwd,pgflip_ledger_fwd");

    // Both flip at the same time.
    let a = spawn_controller(&plan_a, &["run", "--until", "cutover"], "a.log");
    let b = spawn_controller(&plan_b, &["run", "--until", "cutover"], "b.log");
    wait_ok(a, &plan_a.with_file_name("a.log"));
    wait_ok(b, &plan_b.with_file_name("b.log"));
    assert_eq!(fleet.actives(), ["green"]);
    let (_, status) = sidecar_b.admin_get("/v1/status").expect("status");
    assert!(status.contains("\"active\":\"green\""), "{status}");
    thread::sleep(Duration::from_millis(500));
    let acked_a = stop_clean(writer_a, "a");
    let acked_b = stop_clean(writer_b, "b");

    // Each database kept its own rows, every acknowledged write among them.
    assert_eq!(rows(&fleet.green, DB, 0), acked_a);
    assert_eq!(rows(&fleet.green, DB2, 1), acked_b);
    assert!(rows(&fleet.green, DB, 1).is_empty() && rows(&fleet.green, DB2, 0).is_empty());
    assert_eq!(rows(&fleet.green, DB, 100).len(), 500);
    assert_eq!((rows(&fleet.green, DB, 200).len(), rows(&fleet.green, DB2, 200).len()), (0, 50));
    assert_eq!(fleet.green.psql(slots), "pgflip_ledger2_rev,pgflip_ledger_rev");
    assert_eq!(fleet.blue.psql(slots), "");

    let status = ok(&controller(&plan_a, &["status"]));
    assert!(status.contains("replication names: forward pgflip_ledger_fwd, reverse pgflip_ledger_rev"), "{status}");
    assert!(status.contains("slot pgflip_ledger_rev, this plan (logical in ledger)"), "{status}");
    assert!(status.contains("slot pgflip_ledger2_rev (logical in ledger2)"), "{status}");
    assert!(status.contains("subscription pgflip_ledger2_rev (in ledger2, slot pgflip_ledger2_rev)"), "{status}");
    let status = ok(&controller(&plan_b, &["status"]));
    assert!(status.contains("slot pgflip_ledger2_rev, this plan"), "{status}");

    let refusal = refused(&controller(&plan_a, &["abandon"]));
    assert!(refusal.contains("green serves since the cutover: run `pgflip cutover rollback` first"), "{refusal}");
}

#[test]
fn abandon_after_a_catch_up_removes_everything_and_blue_keeps_serving() {
    let fleet = Fleet::start(1);
    let plan = fleet.plan(&[], "");
    ok(&controller(&plan, &["run", "--until", "catchup"]));
    let status = ok(&controller(&plan, &["status"]));
    for expected in [
        "blue: system identifier",
        "as the journal recorded",
        "slot pgflip_ledger_fwd, this plan (logical in ledger): active, retains",
        "wal_status reserved, safe_wal_size unlimited",
        "green: system identifier",
        "subscription pgflip_ledger_fwd, this plan (in ledger, slot pgflip_ledger_fwd): streaming (apply worker pid",
        "\"catchup\"",
    ] {
        assert!(status.contains(expected), "status lacks {expected:?}:\n{status}");
    }

    let out = ok(&controller(&plan, &["abandon"]));
    assert!(out.contains("abandon: removed subscription pgflip_ledger_fwd on green"), "{out}");
    assert!(out.contains("abandon: removed replication slot pgflip_ledger_fwd on blue"), "{out}");
    let leftovers = "SELECT (SELECT count(*) FROM pg_publication) + (SELECT count(*) FROM pg_subscription) \
                     + (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgflip')";
    for cluster in [&fleet.blue, &fleet.green] {
        assert_eq!(cluster.psql("SELECT count(*) FROM pg_replication_slots"), "0");
        assert_eq!(cluster.psql_db(DB, leftovers), "0");
    }
    assert!(!fleet.dir.path().join("pgflip-dump").exists(), "the dump is removed");

    // Blue takes writes through the sidecar, as before.
    let write = support::psql(
        &fleet.sidecars[0].conninfo(APP, DB),
        "INSERT INTO entries (writer, seq) VALUES (7, 1); UPDATE tallies SET n = 1 WHERE writer = 7",
    );
    assert!(write.status.success(), "{}", write.stderr);
    assert_eq!(fleet.blue.psql_db(DB, "SELECT count(*) FROM entries WHERE writer = 7"), "1");
    assert_eq!(fleet.actives(), ["blue"]);

    let again = refused(&controller(&plan, &["run"]));
    assert!(again.contains("this plan's cutover was abandoned"), "{again}");
    assert!(again.contains("move the journal"), "{again}");
    ok(&controller(&plan, &["abandon"]));

    fleet.green.kill();
    let status = ok(&controller(&plan, &["status"]));
    assert!(status.contains("green: cannot be reached"), "{status}");
    assert!(status.contains("abandoned since") && status.contains("\"abandon\""), "{status}");
}

#[test]
fn one_controller_per_plan_on_the_servers_its_journal_knows() {
    let fleet = Fleet::start(1);
    let plan = fleet.plan(&[], "[migrate]\ncommand = \"sleep 8\"");
    let first = spawn_controller(&plan, &["run", "--until", "migrate"], "first.log");
    let journal = plan.with_file_name("pgflip-journal.json");
    wait_until("the first controller migrates", || {
        std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"migrate\""))
    });

    let second = refused(&controller(&plan, &["run"]));
    assert!(second.contains("another controller is working on this plan"), "{second}");
    assert!(second.contains(&format!("pid {} on ", first.id())) && second.contains("pgflip cutover run"), "{second}");

    // Another journal, the same names: the servers' advisory lock keeps it out.
    let text = std::fs::read_to_string(&plan).expect("plan");
    let other = plan.with_file_name("other.toml");
    std::fs::write(&other, format!("{text}\n[journal]\npath = \"other-journal.json\"\n")).expect("other plan");
    let refusal = refused(&controller(&other, &["run"]));
    assert!(refusal.contains("on blue, server pid"), "{refusal}");
    assert!(refusal.contains(&format!("pgflip run pid {} on", first.id())), "{refusal}");
    assert!(refusal.contains("holds the advisory lock of pgflip_ledger_fwd"), "{refusal}");
    ok(&controller(&plan, &["status"]));
    wait_ok(first, &plan.with_file_name("first.log"));

    // The same journal, green's URL pointed at blue's cluster.
    let identifier = |c: &Cluster| c.psql("SELECT system_identifier FROM pg_control_system()");
    let moved = plan.with_file_name("moved.toml");
    let green_url = format!("127.0.0.1:{}/{DB}", fleet.green.port());
    std::fs::write(&moved, text.replace(&green_url, &format!("127.0.0.1:{}/{DB}", fleet.blue.port()))).expect("moved");
    let refusal = refused(&controller(&moved, &["run"]));
    assert!(refusal.contains("green is not the server this plan's journal knows"), "{refusal}");
    assert!(refusal.contains(&identifier(&fleet.blue)) && refusal.contains(&identifier(&fleet.green)), "{refusal}");
}

/// A session holding ACCESS SHARE on `tallies` on blue for `seconds`; returns it and its pid.
fn hold_tallies(blue: &Cluster, seconds: u32) -> (Child, String) {
    let holder = Command::new(support::pg_bin().join("psql"))
        .args(["-X", "-q", "-d", &blue.conninfo("postgres", DB), "-c"])
        .arg(format!("BEGIN; LOCK TABLE tallies IN ACCESS SHARE MODE; SELECT pg_sleep({seconds}); COMMIT"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql");
    let sql = "SELECT l.pid FROM pg_locks l WHERE l.relation = 'tallies'::regclass AND l.granted \
               AND l.mode = 'AccessShareLock' AND l.pid <> pg_backend_pid()";
    let mut pid = String::new();
    wait_until("the lock is held", || {
        pid = blue.psql_db(DB, sql);
        !pid.is_empty()
    });
    (holder, pid)
}

#[test]
fn ddl_on_blue_waits_for_its_lock_and_gives_up_naming_the_holder() {
    let fleet = Fleet::start(1);
    let plan = fleet.plan(&[], "[ddl]\nlock_timeout = \"200ms\"\nattempts = 3");
    ok(&controller(&plan, &["run", "--until", "preflight"]));

    let (mut holder, pid) = hold_tallies(&fleet.blue, 60);
    let refusal = refused(&controller(&plan, &["run", "--until", "snapshot"]));
    assert!(refusal.contains("setting REPLICA IDENTITY FULL on public.tallies on blue"), "{refusal}");
    assert!(refusal.contains("[ddl] lock_timeout = 200ms, 3 times"), "{refusal}");
    assert!(refusal.contains(&format!("pid {pid} (postgres, active")), "{refusal}");
    assert!(refusal.contains("holds AccessShareLock on tallies"), "{refusal}");
    fleet.blue.psql(&format!("SELECT pg_terminate_backend({pid})"));
    let _ = holder.wait();

    // A lock let go within the attempts: the DDL goes through.
    let plan = fleet.plan(&[], "[ddl]\nlock_timeout = \"200ms\"\nattempts = 6");
    let (mut holder, _) = hold_tallies(&fleet.blue, 2);
    let out = ok(&controller(&plan, &["run", "--until", "snapshot"]));
    assert!(out.contains("trying again"), "{out}");
    assert!(holder.wait().expect("psql").success());
    assert_eq!(fleet.blue.psql_db(DB, "SELECT relreplident FROM pg_class WHERE relname = 'tallies'"), "f");
}
