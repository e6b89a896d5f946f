//! What the fleet cutover tests share: blue and green clusters with an app role, three
//! sidecars in front of them, writers that keep one connection each through their
//! sidecar and record every commit acknowledged to them, the plan, and the controller.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Cluster, ClusterOptions, Proxy, ProxyBuilder};

pub const DB: &str = "ledger";
pub const APP: &str = "app";
pub const APP_PASSWORD: &str = "app-secret";
/// The sidecars' admin token; the plan names a file holding it.
pub const ADMIN_TOKEN: &str = "flip-admin-token";

/// Blue's schema: a table with a sequence, and a REPLICA IDENTITY FULL table every writer
/// updates (one row per writer, no primary key).
const SCHEMA: &str = "
CREATE TABLE entries (id bigserial PRIMARY KEY, writer int NOT NULL, seq int NOT NULL, UNIQUE (writer, seq));
CREATE TABLE tallies (writer int NOT NULL, n int NOT NULL);
INSERT INTO tallies SELECT g, 0 FROM generate_series(0, 9) g;
INSERT INTO entries (writer, seq) SELECT 100, g FROM generate_series(1, 500) g;
GRANT SELECT, INSERT, UPDATE ON entries, tallies TO app;
GRANT USAGE ON SEQUENCE entries_id_seq TO app;
";

pub struct Fleet {
    pub blue: Cluster,
    pub green: Cluster,
    pub sidecars: Vec<Proxy>,
    pub dir: tempfile::TempDir,
}

impl Fleet {
    pub fn start(sidecars: usize) -> Fleet {
        Fleet::start_on(sidecars, ClusterOptions::default(), ClusterOptions::default())
    }

    /// [`Fleet::start`] with blue and green started from `blue` and `green` (another
    /// PostgreSQL version, say).
    pub fn start_on(sidecars: usize, blue: ClusterOptions, green: ClusterOptions) -> Fleet {
        let (blue, green) = (Cluster::start_with(blue), Cluster::start_with(green));
        blue.psql(&format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {APP} LOGIN PASSWORD '{APP_PASSWORD}'"
        ));
        blue.create_database(DB);
        blue.psql_db(DB, SCHEMA);
        let url = |c: &Cluster| format!("postgres://{APP}:{APP_PASSWORD}@127.0.0.1:{}/{DB}", c.port());
        let sidecars = (0..sidecars)
            .map(|_| {
                ProxyBuilder::default()
                    .upstream("blue", &url(&blue))
                    .upstream("green", &url(&green))
                    .active("blue")
                    .admin_token(ADMIN_TOKEN)
                    .spawn()
            })
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        Fleet { blue, green, sidecars, dir }
    }

    /// Writes the plan; `extra_sidecars` are added to the sidecar list (e.g. one that is down).
    pub fn plan(&self, extra_sidecars: &[String], extra: &str) -> PathBuf {
        self.plan_with(extra_sidecars, "", extra)
    }

    /// [`Fleet::plan`] with `cutover_extra` lines in `[cutover]`.
    pub fn plan_with(&self, extra_sidecars: &[String], cutover_extra: &str, extra: &str) -> PathBuf {
        let mut sidecars: Vec<String> =
            self.sidecars.iter().map(|p| format!("\"http://127.0.0.1:{}\"", p.admin_port())).collect();
        sidecars.extend(extra_sidecars.iter().map(|s| format!("\"{s}\"")));
        std::fs::write(self.dir.path().join("admin-token"), format!("{ADMIN_TOKEN}\n")).expect("token file");
        let config = self.dir.path().join("sidecar.toml");
        std::fs::write(&config, "listen = \"127.0.0.1:6432\"\nactive = \"blue\"\n\n[upstream]\nblue = \"postgres://b\"\ngreen = \"postgres://g\"\n")
            .expect("sidecar config");
        let plan = format!(
            r#"[blue]
url = "postgres://postgres@127.0.0.1:{blue}/{DB}?sslmode=disable"
[green]
url = "postgres://postgres@127.0.0.1:{green}/{DB}?sslmode=disable"
[app]
roles = ["{APP}"]
[catchup]
stable_seconds = 1
timeout_seconds = 120
[preflight]
allow_replica_identity_full = ["public.tallies"]
[tools]
bin_dir = "{bin}"
[cutover]
sidecars = [{sidecars}]
admin_token_file = "admin-token"
drain_timeout = 5
catchup_timeout = 20
max_write_pause = 30
sidecar_config = "sidecar.toml"
{cutover_extra}
[validate]
window = 4
max_error_rate = 0.0
auto_rollback = false
[retire]
archive_dir = "archive"
command = "{bin}/psql -Atc 'SELECT 1' > retired"
[[validate.check]]
name = "writers seen"
sql = "SELECT writer FROM tallies ORDER BY writer"
mode = "compare"
[[validate.check]]
name = "no negative tallies"
sql = "SELECT * FROM tallies WHERE n < 0"
mode = "empty"
{extra}
"#,
            blue = self.blue.port(),
            green = self.green.port(),
            bin = crate::support::pg_bin().display(),
            sidecars = sidecars.join(", "),
        );
        let path = self.dir.path().join("plan.toml");
        std::fs::write(&path, plan).expect("write plan");
        path
    }

    /// Which upstream every sidecar serves.
    pub fn actives(&self) -> Vec<String> {
        self.sidecars
            .iter()
            .map(|p| {
                let auth = format!("Bearer {ADMIN_TOKEN}");
                let (_, body) = crate::support::http::request(
                    p.admin_port(),
                    "GET",
                    "/v1/status",
                    &[("Authorization", auth.as_str())],
                    "",
                )
                .expect("status");
                let status: Value = serde_json::from_str(&body).expect("status JSON");
                status["active"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }
}

/// Every (writer, seq) the writers (not the initial rows) put on `cluster`.
pub fn rows(cluster: &Cluster) -> std::collections::BTreeSet<(i32, i32)> {
    cluster
        .psql_db(DB, "SELECT writer || ',' || seq FROM entries WHERE writer < 100")
        .lines()
        .filter_map(|line| {
            let (w, s) = line.split_once(',')?;
            Some((w.parse().ok()?, s.parse().ok()?))
        })
        .collect()
}

/// Runs `pgflip cutover --plan PLAN ARGS` to its end; its output is appended to cutover.log.
pub fn controller(plan: &Path, args: &[&str]) -> Output {
    controller_crashing_at(plan, args, None)
}

/// As [`controller`], with `PGFLIP_FAILPOINT` set to `failpoint` when given.
pub fn controller_crashing_at(plan: &Path, args: &[&str], failpoint: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pgflip"));
    if let Some(point) = failpoint {
        command.env("PGFLIP_FAILPOINT", point);
    }
    let output = command
        .args(["cutover", "--plan"])
        .arg(plan)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pgflip cutover");
    let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    let file = plan.with_file_name("cutover.log");
    let previous = std::fs::read_to_string(&file).unwrap_or_default();
    std::fs::write(&file, format!("{previous}\n==== {args:?}\n{log}")).expect("write log");
    output
}

/// Starts the controller in the background, output to `name`.
pub fn spawn_controller(plan: &Path, args: &[&str], name: &str) -> Child {
    let log = std::fs::File::create(plan.with_file_name(name)).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_pgflip"))
        .args(["cutover", "--plan"])
        .arg(plan)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("spawn pgflip cutover")
}

pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The write pauses the controller printed, in ms, in order.
pub fn write_pauses(log: &str) -> Vec<f64> {
    log.lines().filter_map(|line| line.split("write pause ").nth(1)?.split(" ms").next()?.trim().parse().ok()).collect()
}

/// One writer: one connection through its sidecar, never retried; each round inserts
/// (writer, seq) and sets its tally to seq in one transaction.
pub struct Writer {
    stop: Arc<AtomicBool>,
    /// Milliseconds between rounds.
    pub pace: Arc<AtomicU64>,
    handle: thread::JoinHandle<()>,
    /// The seqs whose COMMIT was acknowledged.
    pub acked: Arc<Mutex<Vec<i32>>>,
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl Writer {
    pub fn start(writer: i32, conninfo: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let pace = Arc::new(AtomicU64::new(100));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (flag, acks, errs, every) = (stop.clone(), acked.clone(), errors.clone(), pace.clone());
        let handle = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let (mut client, connection) = match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
                    Ok(pair) => pair,
                    Err(e) => return errs.lock().unwrap().push(format!("connect: {e}")),
                };
                tokio::spawn(connection);
                let mut seq = 0;
                while !flag.load(Ordering::Relaxed) {
                    seq += 1;
                    let round = async {
                        let tx = client.transaction().await?;
                        tx.execute("INSERT INTO entries (writer, seq) VALUES ($1, $2)", &[&writer, &seq]).await?;
                        tx.execute("UPDATE tallies SET n = $2 WHERE writer = $1", &[&writer, &seq]).await?;
                        tx.commit().await
                    };
                    match round.await {
                        Ok(()) => acks.lock().unwrap().push(seq),
                        Err(e) => {
                            errs.lock().unwrap().push(format!("seq {seq}: {e:?}"));
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(every.load(Ordering::Relaxed))).await;
                }
            })
        });
        Writer { stop, pace, handle, acked, errors }
    }

    pub fn stop(self) -> (Vec<i32>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("writer thread");
        let acked = self.acked.lock().unwrap().clone();
        let errors = self.errors.lock().unwrap().clone();
        (acked, errors)
    }
}

/// Starts one writer per sidecar.
pub fn writers(fleet: &Fleet) -> Vec<Writer> {
    fleet
        .sidecars
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let conninfo = format!("host=127.0.0.1 port={} user={APP} dbname={DB} sslmode=disable", p.port());
            Writer::start(i as i32, conninfo)
        })
        .collect()
}

/// Sets every writer's time between rounds. Compare checks under live writes pass only
/// when a round of them falls in a quiet moment: the validation window runs with slow writers.
pub fn pace(writers: &[Writer], ms: u64) {
    for writer in writers {
        writer.pace.store(ms, Ordering::Relaxed);
    }
}

/// Waits until every writer has at least `n` more acknowledged commits.
pub fn wait_for_progress(writers: &[Writer], n: usize) {
    let start: Vec<usize> = writers.iter().map(|w| w.acked.lock().unwrap().len()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while writers.iter().zip(&start).any(|(w, s)| w.acked.lock().unwrap().len() < s + n) {
        assert!(Instant::now() < deadline, "writers made no progress");
        assert!(writers.iter().all(|w| w.errors.lock().unwrap().is_empty()), "a writer failed");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A writer that bypasses the sidecars: its own connection straight to a server (as a
/// superuser, say), one autocommit insert of (writer, seq) per round, reconnecting when its
/// connection is ended; it records what was acknowledged and every error.
pub struct DirectWriter {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<()>,
    pub acked: Arc<Mutex<Vec<i32>>>,
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl DirectWriter {
    pub fn start(writer: i32, conninfo: String) -> DirectWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (flag, acks, errs) = (stop.clone(), acked.clone(), errors.clone());
        let handle = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let mut seq = 0;
                while !flag.load(Ordering::Relaxed) {
                    let client = match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
                        Ok((client, connection)) => {
                            tokio::spawn(connection);
                            client
                        }
                        Err(e) => {
                            errs.lock().unwrap().push(format!("connect: {e}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    while !flag.load(Ordering::Relaxed) {
                        seq += 1;
                        let sql = "INSERT INTO entries (writer, seq) VALUES ($1, $2)";
                        match client.execute(sql, &[&writer, &seq]).await {
                            Ok(_) => acks.lock().unwrap().push(seq),
                            Err(e) => {
                                let text = match e.as_db_error() {
                                    Some(db) => format!("seq {seq}: {} {}", db.code().code(), db.message()),
                                    None => format!("seq {seq}: {e}"),
                                };
                                errs.lock().unwrap().push(text);
                                if client.is_closed() {
                                    break;
                                }
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                }
            })
        });
        DirectWriter { stop, handle, acked, errors }
    }

    /// The errors seen so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    pub fn stop(self) -> (Vec<i32>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("direct writer thread");
        let acked = self.acked.lock().unwrap().clone();
        let errors = self.errors.lock().unwrap().clone();
        (acked, errors)
    }
}
