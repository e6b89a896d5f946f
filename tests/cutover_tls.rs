//! The controller over TLS, against real clusters with `ssl = on` (a server certificate for
//! 127.0.0.1 and localhost, signed by a test CA): with `sslmode=verify-full` every
//! connection of a run (its own, the replication connection, pg_dump, pg_restore and
//! pg_dumpall, the plan's commands, the subscriptions between the servers) goes over TLS, as
//! a superuser the servers let in only over TLS; a wrong CA is refused; a password over plain
//! TCP is refused unless the plan opts in; the sidecars' admin API over HTTPS is checked
//! against the plan's CA file.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pgflip::controller::fleet::Fleet;
use pgflip::controller::plan::Plan;
use support::{free_port, pg_bin, wait_until, Cluster, ClusterOptions, TestCa};

const DB: &str = "shop";
/// A superuser that may log in only over TLS.
const TLS_ADMIN: &str = "tlsadmin";
/// A superuser that may log in with or without TLS.
const ANY_ADMIN: &str = "anyadmin";
const PASSWORD: &str = "admin-s3cret";

/// A cluster with `ssl = on`, database `shop` with a few rows, and the two superusers.
fn tls_cluster(ca: &TestCa) -> Cluster {
    let cluster = Cluster::start_with(ClusterOptions::default().ssl(ca));
    cluster.psql(&format!(
        "SET password_encryption = 'scram-sha-256';
         CREATE ROLE {TLS_ADMIN} SUPERUSER LOGIN PASSWORD '{PASSWORD}';
         CREATE ROLE {ANY_ADMIN} SUPERUSER LOGIN PASSWORD '{PASSWORD}';"
    ));
    let hba = cluster.dir().join("data/pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    let tls_only =
        format!("hostnossl all {TLS_ADMIN} 127.0.0.1/32 reject\nhostssl all {TLS_ADMIN} 127.0.0.1/32 scram-sha-256\n");
    std::fs::write(&hba, format!("{tls_only}{rules}")).expect("write pg_hba.conf");
    cluster.psql("SELECT pg_reload_conf()");
    let plain = format!("host=127.0.0.1 port={} user={TLS_ADMIN} dbname=postgres sslmode=disable", cluster.port());
    let refused = wait_until(Duration::from_secs(10), || {
        let out = support::psql(&format!("{plain} password={PASSWORD}"), "SELECT 1");
        (!out.status.success()).then_some(())
    });
    assert!(refused.is_some(), "{TLS_ADMIN} still logs in without TLS");
    cluster
}

fn with_blue_data(blue: &Cluster) {
    blue.create_database(DB);
    blue.psql_db(
        DB,
        "CREATE TABLE orders (id bigserial PRIMARY KEY, amount int NOT NULL);
         INSERT INTO orders (amount) SELECT g FROM generate_series(1, 500) g;",
    );
}

/// A URL of `cluster` for `user` with the password, then `params` (`sslmode=...`).
fn url(cluster: &Cluster, user: &str, params: &str) -> String {
    format!("postgres://{user}:{PASSWORD}@127.0.0.1:{}/{DB}?{params}", cluster.port())
}

fn write_plan(dir: &Path, blue_url: &str, green_url: &str, extra: &str) -> std::path::PathBuf {
    let plan = format!(
        "[blue]\nurl = \"{blue_url}\"\n[green]\nurl = \"{green_url}\"\n[app]\nroles = []\n\
         [tools]\nbin_dir = \"{}\"\n{extra}\n",
        pg_bin().display()
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, plan).expect("write plan");
    path
}

fn cutover(plan: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgflip"))
        .args(["cutover", "--plan"])
        .arg(plan)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pgflip cutover")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `pgflip proxy` whose admin API speaks HTTPS with the CA's server certificate.
struct HttpsSidecar {
    child: Child,
    admin_port: u16,
    _dir: tempfile::TempDir,
}

impl HttpsSidecar {
    fn spawn(ca: &TestCa, upstreams: &[(&str, String)]) -> HttpsSidecar {
        let dir = support::temp_dir("pgflip-https-sidecar-");
        let log = std::fs::File::create(dir.path().join("proxy.log")).expect("log file");
        let admin_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pgflip"));
        command
            .arg("proxy")
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--admin-tls-cert")
            .arg(&ca.server_cert)
            .arg("--admin-tls-key")
            .arg(&ca.server_key)
            .args(["--active", "blue"]);
        for (name, url) in upstreams {
            command.arg("--upstream").arg(format!("{name}={url}"));
        }
        let child = command.stdin(Stdio::null()).stdout(log.try_clone().expect("dup")).stderr(log).spawn();
        let sidecar = HttpsSidecar { child: child.expect("spawn pgflip proxy"), admin_port, _dir: dir };
        let ready = wait_until(Duration::from_secs(30), || {
            sidecar.ctl(Some(&ca.ca_cert), "status").status.success().then_some(())
        });
        assert!(ready.is_some(), "the sidecar's HTTPS admin API did not answer within 30 s");
        sidecar
    }

    /// `https://localhost:PORT`: the name the certificate is for.
    fn url(&self) -> String {
        format!("https://localhost:{}", self.admin_port)
    }

    /// `pgflip ctl --admin-url https://... [--ca-file CA] ACTION`.
    fn ctl(&self, ca_file: Option<&Path>, action: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pgflip"));
        command.args(["ctl", "--admin-url", &self.url()]);
        if let Some(ca) = ca_file {
            command.arg("--ca-file").arg(ca);
        }
        command.arg(action).stdin(Stdio::null()).output().expect("run pgflip ctl")
    }
}

impl Drop for HttpsSidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn verify_full_from_the_snapshot_to_the_flip_with_https_sidecars() {
    let ca = TestCa::new("run");
    let (blue, green) = (tls_cluster(&ca), tls_cluster(&ca));
    with_blue_data(&blue);
    // In a cluster's directory: the servers read it too, for the subscriptions' sslrootcert.
    let (ca_file, _, _) = blue.tls_files().expect("blue's TLS files");
    let upstream = |c: &Cluster| format!("postgres://127.0.0.1:{}/{DB}", c.port());
    let sidecar = HttpsSidecar::spawn(&ca, &[("blue", upstream(&blue)), ("green", upstream(&green))]);
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = format!("sslmode=verify-full&sslrootcert={}", ca_file.display());
    let psql = pg_bin().join("psql");
    let extra = format!(
        "[migrate]\ncommand = \"{psql} -v ON_ERROR_STOP=1 -c 'CREATE TABLE audit (id int PRIMARY KEY)'\"\n\
         [smoke]\ncommand = \"test $({psql} -Atc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()') = t\"\n\
         [catchup]\nstable_seconds = 1\ntimeout_seconds = 60\n\
         [cutover]\nsidecars = [\"{}\"]\nsidecar_ca_file = \"{}\"\ndrain_timeout = 5\ncatchup_timeout = 20\n",
        sidecar.url(),
        ca.ca_cert.display(),
        psql = psql.display(),
    );
    let plan = write_plan(dir.path(), &url(&blue, TLS_ADMIN, &tls), &url(&green, TLS_ADMIN, &tls), &extra);

    let started = Instant::now();
    let output = cutover(&plan, &["run", "--until", "cutover"]);
    assert!(output.status.success(), "the run failed:\n{}", text(&output));
    eprintln!("run through the cutover in {:?}", started.elapsed());

    assert_eq!(green.psql_db(DB, "SELECT count(*) FROM orders"), "500");
    assert_eq!(green.psql_db(DB, "SELECT count(*) FROM audit"), "0", "the migration ran on green");
    let status = sidecar.ctl(Some(&ca.ca_cert), "status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["active"], "green", "the sidecar was flipped over HTTPS");
    // Blue subscribes to green for the way back, with green's URL as the plan wrote it.
    let reverse_ssl = wait_until(Duration::from_secs(20), || {
        let ssl = green.psql("SELECT ssl FROM pg_stat_ssl JOIN pg_stat_replication USING (pid)");
        (!ssl.is_empty()).then_some(ssl)
    });
    assert_eq!(reverse_ssl.as_deref(), Some("t"), "the reverse subscription streams over TLS");
}

#[test]
fn a_wrong_ca_and_a_password_in_the_clear_are_refused() {
    let ca = TestCa::new("right");
    let wrong = TestCa::new("wrong");
    let cluster = tls_cluster(&ca);
    with_blue_data(&cluster);
    let preflight = |blue_url: &str, extra: &str| {
        // A journal of its own each time: a run skips a preflight that passed.
        let dir = tempfile::tempdir().expect("temp dir");
        let green_url = format!("postgres://postgres@127.0.0.1:{}/{DB}?sslmode=disable", cluster.port());
        cutover(&write_plan(dir.path(), blue_url, &green_url, extra), &["run", "--until", "preflight"])
    };

    let ca_param = |file: &Path| format!("sslmode=verify-full&sslrootcert={}", file.display());
    let right = preflight(&url(&cluster, TLS_ADMIN, &ca_param(&ca.ca_cert)), "");
    assert!(right.status.success(), "verify-full with the right CA:\n{}", text(&right));

    let refused = preflight(&url(&cluster, TLS_ADMIN, &ca_param(&wrong.ca_cert)), "");
    let said = text(&refused);
    assert!(!refused.status.success(), "a wrong CA was accepted:\n{said}");
    let context = format!("connecting to blue (sslmode=verify-full, sslrootcert={})", wrong.ca_cert.display());
    assert!(said.contains(&context) && said.contains("UnknownIssuer"), "{said}");

    let plain = url(&cluster, ANY_ADMIN, "sslmode=disable");
    let refused = preflight(&plain, "");
    let said = text(&refused);
    assert!(!refused.status.success(), "a password went over plain TCP:\n{said}");
    assert!(said.contains("[blue] url has a password and sslmode=disable"), "{said}");
    assert!(said.contains("[security] allow_plaintext_passwords = true") && !said.contains(PASSWORD), "{said}");
    let allowed = preflight(&plain, "[security]\nallow_plaintext_passwords = true");
    assert!(allowed.status.success(), "the plan allows plaintext passwords:\n{}", text(&allowed));

    // allow: plain first; TLS once the server refuses the plain connection (28000).
    let allow = url(&cluster, TLS_ADMIN, "sslmode=allow");
    let output = preflight(&allow, "[security]\nallow_plaintext_passwords = true");
    assert!(output.status.success(), "allow falls back to TLS:\n{}", text(&output));

    // prefer (the default) with a password insists on TLS, which this server offers.
    let prefer = format!("postgres://{ANY_ADMIN}:{PASSWORD}@127.0.0.1:{}/{DB}", cluster.port());
    let output = preflight(&prefer, "");
    assert!(output.status.success(), "prefer with a password over TLS:\n{}", text(&output));
}

#[test]
fn https_sidecars_are_checked_against_the_plans_ca() {
    let ca = TestCa::new("admin");
    let wrong = TestCa::new("not-admin");
    let sidecar = HttpsSidecar::spawn(&ca, &[("blue", "postgres://127.0.0.1:1/x".to_owned())]);
    let plan = |ca_file: Option<&Path>| {
        let ca_line = ca_file.map(|f| format!("sidecar_ca_file = \"{}\"\n", f.display())).unwrap_or_default();
        let text = format!(
            "[blue]\nurl = \"postgres://postgres@127.0.0.1:1/x\"\n[green]\nurl = \"postgres://postgres@127.0.0.1:2\"\n\
             [app]\nroles = []\n[cutover]\nsidecars = [\"{}\"]\n{ca_line}",
            sidecar.url()
        );
        Plan::parse(&text, Path::new("/"))
    };
    let err = plan(None).expect_err("https without a CA file").to_string();
    assert!(err.contains("[cutover] sidecars") && err.contains("sidecar_ca_file"), "{err}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let status = |ca_file: &Path| {
        let plan = plan(Some(ca_file)).expect("plan");
        runtime.block_on(async {
            let fleet = Fleet::discover(&plan.cutover).await.expect("fleet");
            fleet.status(Duration::from_secs(5)).await.remove(0)
        })
    };
    let answer = status(&ca.ca_cert).expect("status over HTTPS");
    assert_eq!(answer.active, "blue");
    let err = status(&wrong.ca_cert).expect_err("a wrong CA").to_string();
    assert!(err.contains("TLS with the sidecar's admin API") && err.contains("UnknownIssuer"), "{err}");

    let no_ca = sidecar.ctl(None, "status");
    let said = String::from_utf8_lossy(&no_ca.stderr);
    assert_eq!(no_ca.status.code(), Some(2), "{said}");
    assert!(said.contains("is https: give the CA file"), "{said}");
}
