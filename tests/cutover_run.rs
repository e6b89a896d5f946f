//! `pgflip cutover run` against two real clusters: green ends up an exact copy of blue with
//! every write made before the slot, during the dump and during catch-up; a run killed in
//! the dump, the restore or the catch-up resumes to the same end; the lag metrics are real.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{free_port, Cluster};

const DB: &str = "shop";

/// The schema and first rows on blue: a table with a sequence and an enum column, one
/// without a primary key (REPLICA IDENTITY FULL), one of a million rows.
const SCHEMA: &str = "
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE orders (id bigserial PRIMARY KEY, status status NOT NULL, amount numeric(12, 2) NOT NULL, note text);
CREATE TABLE notes (author text NOT NULL, body text NOT NULL);
CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, pad text NOT NULL);
INSERT INTO orders (status, amount, note) SELECT 'new', g, 'first ' || g FROM generate_series(1, 1000) g;
INSERT INTO notes SELECT 'a' || g, 'note ' || g FROM generate_series(1, 100) g;
INSERT INTO big SELECT g, g * 3, 'p' FROM generate_series(1, 1000000) g;
ANALYZE;
";

fn clusters() -> (Cluster, Cluster) {
    let (blue, green) = (Cluster::start(), Cluster::start());
    blue.create_database(DB);
    blue.psql_db(DB, SCHEMA);
    (blue, green)
}

/// Writes a plan for `blue` -> `green` in `dir`; `extra` is appended (TOML).
fn write_plan(dir: &Path, blue: &Cluster, green: &Cluster, extra: &str) -> PathBuf {
    let migrate = format!(
        "{} -v ON_ERROR_STOP=1 -c 'ALTER TABLE orders ADD COLUMN IF NOT EXISTS region text; \
         CREATE TABLE IF NOT EXISTS audit (id int PRIMARY KEY)'",
        support::pg_bin().join("psql").display()
    );
    let plan = format!(
        r#"[blue]
url = "postgres://postgres@127.0.0.1:{}/{DB}?sslmode=disable"
[green]
url = "postgres://postgres@127.0.0.1:{}/{DB}?sslmode=disable"
[app]
roles = []
[migrate]
command = "{}"
[smoke]
command = "test \"$PGDATABASE\" = {DB}"
[catchup]
max_lag_bytes = 1048576
max_lag_seconds = 5
stable_seconds = 2
timeout_seconds = 120
[preflight]
allow_replica_identity_full = ["public.notes"]
[tools]
bin_dir = "{}"
{extra}
"#,
        blue.port(),
        green.port(),
        migrate.replace('\\', "\\\\").replace('"', "\\\""),
        support::pg_bin().display()
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, plan).expect("write plan");
    path
}

fn cutover(plan: &Path, args: &[&str]) -> Child {
    let log = std::fs::File::create(plan.with_file_name("cutover.log")).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_pgflip"))
        .arg("cutover")
        .arg("--plan")
        .arg(plan)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        // Its own process group, so that a kill takes its pg_dump and pg_restore with it,
        // as the end of a controller pod would.
        .process_group(0)
        .spawn()
        .expect("spawn pgflip cutover")
}

fn wait_ok(mut child: Child, plan: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let log = std::fs::read_to_string(plan.with_file_name("cutover.log")).unwrap_or_default();
            assert!(status.success(), "pgflip cutover failed ({status}):\n{log}");
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let log = std::fs::read_to_string(plan.with_file_name("cutover.log")).unwrap_or_default();
            panic!("pgflip cutover did not finish within {within:?}:\n{log}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn kill_group(child: &mut Child) {
    support::send_signal_group(child.id(), "KILL");
    let _ = child.wait();
}

/// The journal, once it exists and parses.
fn journal(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("pgflip-journal.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Waits until `ready` holds for the journal (and `dir`), or panics.
fn wait_for(dir: &Path, what: &str, ready: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if journal(dir).is_some_and(|j| ready(&j)) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("waited 120 s for {what}; journal: {:?}", journal(dir));
}

fn running(journal: &Value, phase: &str) -> bool {
    let record = &journal["phases"][phase];
    !record["started_at"].is_null() && record["ended_at"].is_null()
}

/// Keeps inserting, updating and deleting on blue until stopped; returns how many rounds.
fn start_writer(blue: &Cluster) -> (Arc<AtomicBool>, thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let conninfo = blue.conninfo("postgres", DB);
    let flag = stop.clone();
    let handle = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await.expect("writer");
            tokio::spawn(connection);
            let mut round = 0u64;
            while !flag.load(Ordering::Relaxed) {
                round += 1;
                let sql = format!(
                    "INSERT INTO orders (status, amount, note) VALUES ('new', {round}, 'w{round}');
                     UPDATE orders SET status = 'paid', amount = amount + 1 WHERE id = {};
                     DELETE FROM orders WHERE id = {};
                     INSERT INTO notes VALUES ('w', 'n{round}');
                     UPDATE notes SET body = body || '+' WHERE author = 'a{}';
                     DELETE FROM notes WHERE author = 'a{}';
                     UPDATE big SET v = v + 1 WHERE id = {};",
                    round % 1000 + 1,
                    round * 7 % 1000 + 1,
                    round % 100,
                    (round + 50) % 100,
                    round * 7919 % 1_000_000 + 1
                );
                client.batch_execute(&sql).await.expect("writer round");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            round
        })
    });
    (stop, handle)
}

/// A digest of each table's whole contents.
fn contents(cluster: &Cluster) -> Vec<String> {
    [
        "SELECT count(*) || ':' || md5(string_agg(o::text, ',' ORDER BY id)) FROM (SELECT id, status, amount, note FROM orders) o",
        "SELECT count(*) || ':' || md5(string_agg(n::text, ',' ORDER BY author, body)) FROM notes n",
        "SELECT count(*) || ':' || md5(string_agg(b::text, ',' ORDER BY id)) FROM big b",
    ]
    .iter()
    .map(|sql| cluster.psql_db(DB, sql))
    .collect()
}

/// Waits until green's tables equal blue's (replication applies asynchronously).
fn assert_same_contents(blue: &Cluster, green: &Cluster) {
    let expected = contents(blue);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = contents(green);
        if got == expected {
            return;
        }
        assert!(Instant::now() < deadline, "green differs from blue after 60 s:\nblue  {expected:?}\ngreen {got:?}");
        thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn green_becomes_a_migrated_copy_that_keeps_up() {
    let (blue, green) = clusters();
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = write_plan(dir.path(), &blue, &green, "");
    let (stop, writer) = start_writer(&blue);
    thread::sleep(Duration::from_millis(300));
    wait_ok(cutover(&plan, &["run", "--until", "catchup"]), &plan, Duration::from_secs(300));
    let journal = journal(dir.path()).expect("journal");
    for phase in ["preflight", "snapshot", "restore", "migrate", "smoke", "catchup"] {
        assert!(!journal["phases"][phase]["ended_at"].is_null(), "{phase} not done: {journal}");
    }
    assert!(journal["phases"]["snapshot"]["facts"]["consistent_lsn"].is_string(), "{journal}");
    // Writes go on during catch-up too, then stop.
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().expect("writer");
    assert!(rounds > 20, "the writer ran {rounds} rounds only");
    assert_same_contents(&blue, &green);
    // The migration ran on green and did not stop the apply.
    assert_eq!(green.psql_db(DB, "SELECT count(*) FROM audit"), "0");
    assert_eq!(green.psql_db(DB, "SELECT count(region) FROM orders"), "0");
    // Running again has nothing left to do.
    wait_ok(cutover(&plan, &["run", "--until", "catchup"]), &plan, Duration::from_secs(60));
    let status = Command::new(env!("CARGO_BIN_EXE_pgflip"))
        .args(["cutover", "--plan"])
        .arg(&plan)
        .arg("status")
        .output()
        .expect("status");
    // Next is the cutover, which needs sidecars.
    assert!(String::from_utf8_lossy(&status.stdout).contains("next phase: cutover"), "{status:?}");
}

#[test]
fn a_run_killed_in_dump_restore_and_catchup_resumes_to_the_same_end() {
    let (blue, green) = clusters();
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = write_plan(dir.path(), &blue, &green, "");
    let (stop, writer) = start_writer(&blue);

    let mut child = cutover(&plan, &["run", "--until", "catchup"]);
    let dump = dir.path().join("pgflip-dump");
    wait_for(dir.path(), "the dump to start", |j| running(j, "snapshot") && dump.exists());
    thread::sleep(Duration::from_millis(200));
    kill_group(&mut child);

    let mut child = cutover(&plan, &["run", "--until", "catchup"]);
    wait_for(dir.path(), "the restore to start", |j| {
        running(j, "restore") && !j["phases"]["restore"]["facts"]["roles_created"].is_null()
    });
    thread::sleep(Duration::from_millis(500));
    kill_group(&mut child);

    let mut child = cutover(&plan, &["run", "--until", "catchup"]);
    wait_for(dir.path(), "the catch-up to start", |j| running(j, "catchup"));
    thread::sleep(Duration::from_millis(800));
    kill_group(&mut child);

    wait_ok(cutover(&plan, &["run", "--until", "catchup"]), &plan, Duration::from_secs(300));
    let journal = journal(dir.path()).expect("journal");
    assert!(journal["phases"]["snapshot"]["attempts"].as_u64() >= Some(2), "{journal}");
    assert!(journal["phases"]["restore"]["attempts"].as_u64() >= Some(2), "{journal}");
    assert!(journal["phases"]["catchup"]["attempts"].as_u64() >= Some(2), "{journal}");
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert_same_contents(&blue, &green);
    assert_eq!(blue.psql_db(DB, "SELECT count(*) FROM pg_replication_slots"), "1", "one slot, no leftovers");
    assert_eq!(green.psql_db(DB, "SELECT count(*) FROM pg_subscription"), "1");
}

#[test]
fn lag_metrics_rise_with_a_write_burst_and_fall_back() {
    let (blue, green) = clusters();
    blue.psql_db(DB, "CREATE TABLE burst (id int PRIMARY KEY, pad text NOT NULL)");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let plan = write_plan(dir.path(), &blue, &green, &extra);
    // Long enough a wait for the burst to happen inside the catch-up phase.
    let text = std::fs::read_to_string(&plan).unwrap().replace("stable_seconds = 2", "stable_seconds = 6");
    std::fs::write(&plan, text).unwrap();
    let child = cutover(&plan, &["run", "--until", "catchup"]);
    wait_for(dir.path(), "the catch-up to start", |j| running(j, "catchup"));
    let burst = thread::spawn({
        let conninfo = blue.conninfo("postgres", DB);
        move || {
            support::psql(&conninfo, "INSERT INTO burst SELECT g, repeat('x', 300) FROM generate_series(1, 400000) g")
                .assert_success("burst");
        }
    });
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match support::http::request(port, "GET", "/metrics", &[], "") {
            Ok((200, text)) => {
                let bytes = support::metric_sum(&text, "pgflip_replication_lag_bytes", "");
                let seconds = support::metric_sum(&text, "pgflip_replication_lag_seconds", "");
                assert!(text.contains("pgflip_cutover_phase 6"), "{text}");
                samples.push((bytes, seconds));
            }
            _ if !samples.is_empty() => break,
            _ => {}
        }
        thread::sleep(Duration::from_millis(100));
    }
    burst.join().expect("burst");
    wait_ok(child, &plan, Duration::from_secs(120));
    let peak = samples.iter().map(|s| s.0).fold(0.0, f64::max);
    let peak_at = samples.iter().position(|s| s.0 == peak).unwrap_or(0);
    assert!(peak > 1_048_576.0, "lag never rose above 1 MiB: {samples:?}");
    assert!(
        samples[peak_at..].iter().any(|s| s.0 <= 1_048_576.0 && s.1 <= 5.0),
        "lag did not fall back under the thresholds: {samples:?}"
    );
    assert_eq!(green.psql_db(DB, "SELECT count(*) FROM burst"), "400000");
}

#[test]
fn preflight_blockers_stop_the_run_with_a_clear_message() {
    let blue = Cluster::start();
    blue.create_database(DB);
    blue.psql_db(DB, "CREATE TABLE events (at timestamptz, what text)");
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = write_plan(dir.path(), &blue, &blue, "").to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&plan).unwrap().replace(r#"["public.notes"]"#, "[]");
    std::fs::write(&plan, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgflip"))
        .args(["cutover", "--plan", &plan, "run"])
        .output()
        .expect("run pgflip cutover");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // The report is a progress line, on stdout; the error that ends the run, on stderr,
    // with the log from info up when stderr is no terminal (a Job's log, a CI step).
    assert!(stdout.contains("preflight: started") && stdout.contains("preflight FAILED"), "{stdout}");
    assert!(stdout.contains("public.events"), "{stdout}");
    assert!(stderr.contains("public.events") && stderr.contains("INFO pgflip::controller"), "{stderr}");
    // At a terminal (script(1) runs it on a pseudo-terminal): the same progress lines, and of
    // the log only its warnings unless asked for more.
    let command = format!("{} cutover --plan {plan} run", env!("CARGO_BIN_EXE_pgflip"));
    let at_terminal = |rust_log: Option<&str>| {
        let mut script = Command::new("script");
        script.args(["-qec", &command, "/dev/null"]).stdin(Stdio::null()).env_remove("RUST_LOG").env("NO_COLOR", "1");
        if let Some(level) = rust_log {
            script.env("RUST_LOG", level);
        }
        let out = script.output().expect("run script(1)");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, shown) = at_terminal(None);
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("preflight: started") && shown.contains("preflight FAILED"), "{shown}");
    assert!(shown.contains("public.events") && !shown.contains("INFO pgflip"), "{shown}");
    let (_, shown) = at_terminal(Some("info"));
    assert!(shown.contains("INFO pgflip::controller"), "RUST_LOG asks for the log: {shown}");
    let journal = journal(dir.path()).expect("journal");
    assert!(journal["phases"]["preflight"]["ended_at"].is_null(), "{journal}");
    assert!(journal["phases"]["snapshot"].is_null(), "nothing ran after the preflight: {journal}");
    // A plan with a mistake names the key.
    std::fs::write(&plan, "[blue]\nurl = \"postgres://x@h/db\"\n[catchup]\nmax_lag_seconds = -1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pgflip")).args(["cutover", "--plan", &plan, "run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[green] url") || stderr.contains("max_lag_seconds"), "{stderr}");
}
