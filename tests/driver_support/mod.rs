//! What the driver tests share: blue with user types, green restored from it by pg_dump and
//! pg_restore (so every user OID differs), a sidecar in front of both, the drivers fetched
//! from their registries into `target/`, and the switch protocol a driver script speaks on
//! its stdout and stdin.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, clients::run_with_timeout, pg_bin, Cluster, Proxy, ProxyBuilder};

/// The types every driver reads and writes: an enum, a composite with an enum field, a
/// domain, and arrays of each; and `level`, which each driver meets only after its first
/// switch, away from home, so that it looks it up there.
const SCHEMA: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE level AS ENUM ('low', 'high');
CREATE TYPE pair AS (m mood, n int4);
CREATE DOMAIN score AS int4 CHECK (VALUE >= 0);
CREATE TABLE readings (id serial PRIMARY KEY, m mood, p pair, s score, ms mood[], ps pair[], ss score[], who text);
INSERT INTO readings (m, p, s, ms, ps, ss) VALUES ('happy', ROW('ok', 7), 3, '{sad,happy}', ARRAY[ROW('sad', 1)::pair], '{1,2}');
CREATE TABLE plain (who text, n int);
";

/// Blue, with objects made and dropped before the schema so that its OIDs are not those a
/// fresh server gives; green, a restore of blue's dump.
pub fn clusters() -> (&'static Cluster, &'static Cluster) {
    static PAIR: OnceLock<(Cluster, Cluster)> = OnceLock::new();
    let (blue, green) = PAIR.get_or_init(|| {
        let blue = Cluster::start();
        blue.psql("CREATE TABLE churn1 (x int); CREATE TYPE churn2 AS ENUM ('x'); DROP TABLE churn1; DROP TYPE churn2");
        blue.psql(SCHEMA);
        let green = Cluster::start();
        let dir = support::temp_dir("pgflip-drivers-dump-");
        let dump = dir.path().join("blue.dump");
        let out = run_with_timeout(
            Command::new(pg_bin().join("pg_dump"))
                .args(["-Fc", "-f"])
                .arg(&dump)
                .arg(blue.conninfo("postgres", "postgres")),
            None,
            Duration::from_secs(120),
        );
        out.assert_success("pg_dump of blue");
        let out = run_with_timeout(
            Command::new(pg_bin().join("pg_restore")).arg("-d").arg(green.conninfo("postgres", "postgres")).arg(&dump),
            None,
            Duration::from_secs(120),
        );
        out.assert_success("pg_restore into green");
        for name in ["mood", "level"] {
            let oid = |c: &Cluster| c.psql(&format!("SELECT '{name}'::regtype::oid")).trim().to_string();
            assert_ne!(oid(&blue), oid(&green), "the restore must give {name} another OID");
        }
        (blue, green)
    });
    (blue, green)
}

/// `level`'s OID on blue, the drivers' home.
pub fn home_level_oid() -> u32 {
    let oid = clusters().0.psql("SELECT 'level'::regtype::oid");
    oid.trim().parse().unwrap_or_else(|e| panic!("level's OID {oid:?}: {e}"))
}

/// A sidecar in front of blue (active) and green.
pub fn proxy() -> Proxy {
    let (blue, green) = clusters();
    ProxyBuilder::for_cluster(blue).upstream("green", &green.url()).spawn()
}

/// Switches `proxy` to `to`; panics unless every session moved.
pub fn switch(proxy: &Proxy, to: &str) -> Value {
    let body = format!(r#"{{"to": "{to}", "drain_timeout_ms": 10000}}"#);
    let (status, text) = proxy.admin_post("/v1/switch", &body).expect("switch");
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!((status, answer["failed"].as_u64()), (200, Some(0)), "switch to {to}: {answer}");
    answer
}

/// True when a prerequisite is there; outside CI a missing one skips the test (after
/// saying what to install), in CI (`CI=true`) it fails it.
pub fn have(what: &str, present: bool, install: &str) -> bool {
    if present {
        return true;
    }
    let message = format!("{what} is missing: {install}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    false
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Where the drivers are fetched to.
fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("drivers")
}

/// One fetch at a time across the tests of this binary.
static FETCH: Mutex<()> = Mutex::new(());

/// psycopg 3 and asyncpg from PyPI, into `target/`; `None` (skipped) without pip.
pub fn python_packages() -> Option<PathBuf> {
    if !have("python3 with pip", runs("python3", &["-m", "pip", "--version"]), "apt-get install -y python3-pip") {
        return None;
    }
    let _one = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = drivers_dir().join("python");
    if !dir.join("asyncpg").is_dir() || !dir.join("psycopg").is_dir() {
        let out = run_with_timeout(
            Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"])
                .arg("--target")
                .arg(&dir)
                .args(["psycopg[binary]==3.3.*", "asyncpg==0.32.*"]),
            None,
            Duration::from_secs(300),
        );
        out.assert_success("pip install psycopg asyncpg");
    }
    Some(dir)
}

/// node-postgres and pg-copy-streams from npm, into `target/`; `None` (skipped) without
/// node and npm.
pub fn node_packages() -> Option<PathBuf> {
    let present = runs("node", &["--version"]) && runs("npm", &["--version"]);
    if !have("node and npm", present, "apt-get install -y nodejs npm") {
        return None;
    }
    let _one = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = drivers_dir().join("node");
    if !dir.join("node_modules/pg").is_dir() || !dir.join("node_modules/pg-copy-streams").is_dir() {
        std::fs::create_dir_all(&dir).expect("create the node directory");
        let out = run_with_timeout(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .args(["pg@8", "pg-copy-streams@6"]),
            None,
            Duration::from_secs(300),
        );
        out.assert_success("npm install pg");
    }
    Some(dir)
}

/// Debian's pgjdbc jar; `None` (skipped) without a JDK and the jar.
pub fn pgjdbc_jar() -> Option<PathBuf> {
    let jar = PathBuf::from("/usr/share/java/postgresql.jar");
    let present = runs("java", &["-version"]) && jar.is_file();
    let install = "apt-get install -y default-jdk-headless libpostgresql-jdbc-java";
    have("a JDK and pgjdbc (/usr/share/java/postgresql.jar)", present, install).then_some(jar)
}

/// A driver script's source file under `tests/drivers/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers").join(name)
}

/// Runs a driver script, answering its switch requests on `proxy`, which starts on blue;
/// returns the sides it saw after each switch. Panics with its output when it fails. The
/// script finds `level`'s home OID in `PGFLIP_HOME_LEVEL_OID`.
pub fn run_driver(mut command: Command, proxy: &Proxy) -> Vec<String> {
    let started = Instant::now();
    support::clear_pg_env(&mut command);
    command.env("PGFLIP_HOME_LEVEL_OID", home_level_oid().to_string());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut side = "blue".to_string();
    let mut pending: Option<thread::JoinHandle<Value>> = None;
    let mut done = None;
    let mut said = Vec::new();
    let other = |side: &str| if side == "blue" { "green" } else { "blue" }.to_string();
    for line in stdout.lines() {
        let line = line.expect("read the driver's output");
        said.push(line.clone());
        let reply = match line.trim() {
            "SWITCH" => {
                side = other(&side);
                switch(proxy, &side);
                format!("OK {side}")
            }
            "SWITCH_BEGIN" => {
                side = other(&side);
                let (admin, to) = (proxy.admin_port(), side.clone());
                pending = Some(thread::spawn(move || {
                    let body = format!(r#"{{"to": "{to}", "drain_timeout_ms": 10000}}"#);
                    let addr = ([127, 0, 0, 1], admin).into();
                    let (status, text) =
                        support::http::request_to(addr, "POST", "/v1/switch", &[], &body).expect("switch");
                    let answer: Value = serde_json::from_str(&text).expect("JSON");
                    assert_eq!((status, answer["failed"].as_u64()), (200, Some(0)), "{answer}");
                    answer
                }));
                // Let the switch begin (its pre-warm, then its pause) before the driver goes on.
                thread::sleep(Duration::from_millis(50));
                "STARTED".to_string()
            }
            "SWITCH_WAIT" => {
                let answer = pending.take().expect("a switch begun").join().expect("the switch");
                assert!(answer["moved"].as_u64().unwrap_or(0) >= 1, "{answer}");
                format!("OK {side}")
            }
            other if other.starts_with("DONE") => {
                done = Some(other.trim_start_matches("DONE").trim().to_string());
                continue;
            }
            _ => continue,
        };
        writeln!(stdin, "{reply}").and_then(|_| stdin.flush()).expect("answer the driver");
    }
    drop(stdin);
    let status = child.wait().expect("wait for the driver");
    let errors = errors.join().unwrap_or_default();
    let report = format!(
        "{command:?} exited {status} after {:?}\nstdout:\n{}\nstderr:\n{errors}",
        started.elapsed(),
        said.join("\n")
    );
    assert!(status.success(), "{report}");
    let sides: Vec<String> =
        done.unwrap_or_else(|| panic!("no DONE line: {report}")).split(',').map(str::to_string).collect();
    assert!(sides.len() >= 5, "at least five switches: {report}");
    sides
}
