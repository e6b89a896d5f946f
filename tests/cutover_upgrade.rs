//! Major-version upgrades with no restart: blue on PostgreSQL 13 to green on 17, and 15 to
//! 18 (every server from npm; the client programs are the system's, chosen by the
//! controller for the servers' versions), writers through the sidecars across catch-up,
//! cutover, rollback, a second cutover and promote, every acknowledged write checked key
//! by key; the settings and prepared statements of a psql session and of a tokio-postgres
//! session carried across every version change. A session that set a setting green lacks
//! (`force_parallel_mode`, gone in 16) holds the cutover up, by name, before anything is
//! fenced, until it resets it.
//!
//! The migration widens a table on green, so the way back publishes it with a column list
//! (blue on 13 applies what a 17 publisher sends of it). While green serves, a deploy adds
//! a table on both sides, with a column only green has,
//! and a writer fills it on green: the rollback takes it back to blue (on 13, whose own
//! initial copy ignores column lists, by pgflip's copy; on 15 by PostgreSQL's) with the
//! writer running, and the second cutover carries blue's rows of it forward again.

mod flip_support;
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use flip_support::{controller, pace, rows, text, wait_for_progress, writers, Fleet, APP, DB};
use support::{pgversions, Cluster, ClusterOptions, PsqlSession};

/// The migration: green's `entries` gets a column blue does not have.
const WIDEN: &str = "ALTER TABLE entries ADD COLUMN source text NOT NULL DEFAULT 'green'";

fn upgrade(blue: u32, green: u32) {
    let (blue_bin, green_bin) = match (pgversions::server_bin(blue), pgversions::server_bin(green)) {
        (Ok(b), Ok(g)) => (b, g),
        (Err(message), _) | (_, Err(message)) => return eprintln!("skipped: {message}"),
    };
    let fleet =
        Fleet::start_on(2, ClusterOptions::default().bin_dir(blue_bin), ClusterOptions::default().bin_dir(green_bin));
    for (cluster, major) in [(&fleet.blue, blue), (&fleet.green, green)] {
        let version = cluster.psql("SHOW server_version_num");
        assert!(version.starts_with(&major.to_string()), "PostgreSQL {major} reports {version}");
    }
    // The migration widens `entries` on green: the way back publishes it with a column list.
    let migrate = format!(
        "[migrate]\ncommand = \"{} -v ON_ERROR_STOP=1 -c \\\"{WIDEN}\\\"\"\n",
        support::pg_bin().join("psql").display()
    );
    let plan = fleet.plan(&[], &migrate);
    // No [tools] bin_dir: the controller chooses among what is installed.
    let text_of_plan = std::fs::read_to_string(&plan).expect("plan");
    let bin_dir_line =
        text_of_plan.lines().find(|l| l.starts_with("bin_dir = ")).expect("the plan's bin_dir").to_owned();
    std::fs::write(&plan, text_of_plan.replace(&format!("[tools]\n{bin_dir_line}\n"), "")).expect("plan");
    let writers = writers(&fleet);
    wait_for_progress(&writers, 3);
    // A session with its own setting and a prepared statement, kept across every flip.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let conninfo = fleet.sidecars[1].conninfo(flip_support::APP, DB);
    let (session, prepared) = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute("SET work_mem = '7MB'").await.expect("SET");
        let prepared =
            client.prepare("SELECT $1::int + 1, current_setting('server_version_num')").await.expect("prepare");
        (client, prepared)
    });
    let check = |expected_major: u32| {
        runtime.block_on(async {
            let work_mem: String = session.query_one("SHOW work_mem", &[]).await.expect("SHOW").get(0);
            assert_eq!(work_mem, "7MB", "the session's setting after the flip to {expected_major}");
            let row = session.query_one(&prepared, &[&41i32]).await.expect("the prepared statement");
            assert_eq!(row.get::<_, i32>(0), 42);
            let version: String = row.get(1);
            assert!(version.starts_with(&expected_major.to_string()), "served by {version}");
        })
    };
    let mut psql = PsqlSession::start(&fleet.sidecars[0].conninfo(flip_support::APP, DB));
    psql.run(
        "SET work_mem = '3MB';\nSET search_path = pg_catalog, public;\n\
         PREPARE next_of(int) AS SELECT $1 + 1, current_setting('server_version_num');",
    );
    let check_psql = |psql: &mut PsqlSession, major: u32| {
        let out = psql.run("SHOW work_mem;\nSHOW search_path;\nEXECUTE next_of(41);");
        assert_eq!(out.len(), 3, "psql on {major}: {out:?}; stderr:\n{}", psql.errors());
        assert_eq!(out[..2], ["3MB", "pg_catalog, public"], "psql's settings on {major}");
        assert!(out[2].starts_with(&format!("42|{major}")), "psql's prepared statement on {major}: {}", out[2]);
        assert_eq!(psql.errors(), "", "psql on {major}");
    };
    check(blue);
    check_psql(&mut psql, blue);

    // A session with a setting green lacks keeps the flip from starting, by name.
    let mut holdout = PsqlSession::start(&fleet.sidecars[1].conninfo(flip_support::APP, DB));
    holdout.run("SET force_parallel_mode = on;");
    let out = controller(&plan, &["run", "--until", "cutover"]);
    assert!(!out.status.success(), "the cutover went ahead:\n{}", text(&out));
    let said = text(&out);
    assert!(said.contains("force_parallel_mode"), "{said}");
    // That first run chose the client programs (preflight, snapshot and restore ran).
    let chose = said.lines().find(|l| l.starts_with("client programs: pg_dump (PostgreSQL) "));
    let chose = chose.unwrap_or_else(|| panic!("the choice of client programs is printed:\n{said}"));
    assert!(
        chose.contains(&format!("green's version ({green})"))
            || chose
                .contains(&format!("none of green's version ({green}) was found: the newest from blue's ({blue}) up")),
        "{chose}"
    );
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    holdout.run("RESET force_parallel_mode;");

    let mut notes_writer = None;
    let mut kept_tags: i64 = 0;
    for (args, serving) in
        [(&["run", "--until", "cutover"][..], green), (&["rollback"], blue), (&["run", "--until", "cutover"], green)]
    {
        pace(&writers, 400);
        let out = controller(&plan, args);
        pace(&writers, 100);
        let said = text(&out);
        assert!(out.status.success(), "{blue} -> {green}, {args:?}:\n{said}");
        check(serving);
        check_psql(&mut psql, serving);
        assert_eq!(holdout.run("SELECT current_setting('server_version_num')::int / 10000;"), [serving.to_string()]);
        wait_for_progress(&writers, 3);
        match args {
            ["run", ..] if notes_writer.is_none() => {
                let sent = fleet.green.psql_db(
                    DB,
                    "SELECT attnames FROM pg_publication_tables WHERE pubname = 'pgflip_ledger_rev' AND tablename = 'entries'",
                );
                assert_eq!(sent.trim(), "{id,writer,seq}", "the way back sends blue's columns of entries");
                notes_writer = Some(window_table(&fleet));
                // Values of green's own column, which no copy from blue may wipe out.
                let kept = fleet
                    .green
                    .psql_db(DB, "WITH u AS (UPDATE notes SET tag = 'kept' RETURNING 1) SELECT count(*) FROM u");
                kept_tags = kept.trim().parse().expect("a count");
            }
            ["rollback"] => {
                // What the writers committed on green came back through the column list.
                let on_blue = rows(&fleet.blue);
                for (i, writer) in writers.iter().enumerate() {
                    let acked = writer.acked.lock().unwrap().clone();
                    let lost: Vec<&i32> = acked.iter().filter(|seq| !on_blue.contains(&(i as i32, **seq))).collect();
                    assert!(lost.is_empty(), "{blue} -> {green}: writer {i}'s commits not on blue: {lost:?}");
                }
                let writer = notes_writer.as_ref().expect("the notes writer");
                assert!(
                    said.contains("blue now applies public.notes (it exists on both sides; rows copied by"),
                    "{said}"
                );
                assert!(said.contains("green now applies public.notes on the way back"), "{said}");
                let copier = if blue < 15 { "pgflip" } else { "PostgreSQL" };
                assert!(said.contains(&format!("rows copied by {copier})")), "{said}");
                let acked_before = writer.acked();
                writer.wait_for(acked_before.len() + 5);
                let on_blue = notes(&fleet.blue);
                let lost: Vec<&i32> = acked_before.iter().filter(|id| !on_blue.contains(*id)).collect();
                assert!(lost.is_empty(), "{blue} -> {green}: notes acknowledged on green, not on blue: {lost:?}");
                let log = std::fs::read_to_string(fleet.blue.dir().join("server.log")).expect("blue's log");
                assert!(
                    !log.contains("missing replicated column") && !log.contains("missing some replicated columns"),
                    "{}",
                    fleet.blue.log_tail(40)
                );
            }
            _ => {
                // The way back took the table in at the rollback, with the rows equal on both sides.
                assert!(!said.contains("green now applies public.notes"), "{said}");
                let kept = fleet.green.psql_db(DB, "SELECT count(*) FROM notes WHERE tag = 'kept'");
                assert_eq!(kept.trim().parse::<i64>().expect("a count"), kept_tags, "green's own column kept");
            }
        }
    }
    let notes_acked = notes_writer.expect("the notes writer").stop();
    assert_eq!(fleet.actives(), ["green", "green"]);
    let out = controller(&plan, &["promote"]);
    assert!(out.status.success(), "promote:\n{}", text(&out));
    wait_for_progress(&writers, 2);
    let stopped: Vec<(Vec<i32>, Vec<String>)> = writers.into_iter().map(|w| w.stop()).collect();
    let notes_on_green = notes(&fleet.green);
    let lost: Vec<&i32> = notes_acked.iter().filter(|id| !notes_on_green.contains(*id)).collect();
    assert!(lost.is_empty(), "{blue} -> {green}: notes acknowledged, not on green: {lost:?}");
    let on_green = rows(&fleet.green);
    for (i, (acked, errors)) in stopped.into_iter().enumerate() {
        assert!(errors.is_empty(), "writer {i} saw errors: {errors:?}");
        let missing: Vec<i32> = acked.iter().copied().filter(|seq| !on_green.contains(&(i as i32, *seq))).collect();
        assert!(
            missing.is_empty(),
            "{blue} -> {green}: writer {i}: acknowledged {} commits, {missing:?} not on green",
            acked.len()
        );
    }
}

#[test]
fn blue_13_to_green_17() {
    upgrade(13, 17);
}

#[test]
fn blue_15_to_green_18() {
    upgrade(15, 18);
}

/// The deploy while green serves: `notes` on both sides (blue first: it receives), green's
/// with a column blue lacks, and a writer that inserts into it through a sidecar.
fn window_table(fleet: &Fleet) -> NotesWriter {
    fleet
        .blue
        .psql_db(DB, &format!("CREATE TABLE notes (id int PRIMARY KEY, body text); GRANT INSERT ON notes TO {APP}"));
    fleet.green.psql_db(
        DB,
        &format!(
            "CREATE TABLE notes (id int PRIMARY KEY, body text, tag text NOT NULL DEFAULT 'green'); \
             GRANT INSERT ON notes TO {APP}"
        ),
    );
    let writer = NotesWriter::start(fleet.sidecars[0].conninfo(APP, DB));
    writer.wait_for(20);
    writer
}

/// The ids in `notes` on `cluster`.
fn notes(cluster: &Cluster) -> BTreeSet<i32> {
    cluster.psql_db(DB, "SELECT id FROM notes").lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// One connection through a sidecar inserting into `notes` every 20 ms, each id recorded
/// once its commit is acknowledged; it stops at the first error.
struct NotesWriter {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i32>>>,
    errors: Arc<Mutex<Vec<String>>>,
    handle: thread::JoinHandle<()>,
}

impl NotesWriter {
    fn start(conninfo: String) -> NotesWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<i32>>> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (flag, acks, errs) = (Arc::clone(&stop), Arc::clone(&acked), Arc::clone(&errors));
        let handle = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let client = match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
                    Ok((client, connection)) => {
                        tokio::spawn(connection);
                        client
                    }
                    Err(e) => return errs.lock().unwrap().push(format!("connect: {e}")),
                };
                let mut id = 0;
                while !flag.load(Ordering::Relaxed) {
                    id += 1;
                    let body = format!("note {id}");
                    match client.execute("INSERT INTO notes (id, body) VALUES ($1, $2)", &[&id, &body]).await {
                        Ok(_) => acks.lock().unwrap().push(id),
                        Err(e) => return errs.lock().unwrap().push(format!("id {id}: {e:?}")),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        });
        NotesWriter { stop, acked, errors, handle }
    }

    fn acked(&self) -> Vec<i32> {
        self.acked.lock().unwrap().clone()
    }

    /// Waits until `n` inserts in all were acknowledged.
    fn wait_for(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.acked.lock().unwrap().len() < n {
            assert!(
                self.errors.lock().unwrap().is_empty(),
                "the notes writer failed: {:?}",
                self.errors.lock().unwrap()
            );
            assert!(std::time::Instant::now() < deadline, "the notes writer made no progress");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it; every id acknowledged. Panics if it saw an error.
    fn stop(self) -> Vec<i32> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("notes writer thread");
        let errors = self.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "the notes writer saw errors: {errors:?}");
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}
