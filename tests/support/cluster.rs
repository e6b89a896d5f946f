//! Throwaway PostgreSQL clusters: initdb into a temp dir, a free port, trust for
//! `postgres`, md5 and SCRAM roles for the auth tests, optional server TLS.
//! As root the server runs as the `postgres` system user.

use super::{clear_pg_env, free_port, is_root, tail_file, temp_dir, tls::TestCa};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Password of the `scramuser` role (stored as a SCRAM-SHA-256 verifier).
pub const SCRAM_PASSWORD: &str = "scram-secret";
/// Password of the `md5user` role (stored as an md5 hash).
pub const MD5_PASSWORD: &str = "md5-secret";

/// Directory of the PostgreSQL server binaries: `PGFLIP_PG_BIN`, else the highest
/// `/usr/lib/postgresql/*/bin` that has initdb, else `pg_config --bindir`.
pub fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGFLIP_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    match out {
        Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        _ => panic!(
            "no PostgreSQL server binaries found: install postgresql or set PGFLIP_PG_BIN \
             to the directory holding initdb"
        ),
    }
}

/// uid and gid of the `postgres` system user, when we are root and must drop to it.
fn server_user() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("run id");
        assert!(out.status.success(), "running as root needs a `postgres` system user (useradd postgres)");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("numeric id")
    };
    Some((id("-u"), id("-g")))
}

/// A command for a server binary (initdb, pg_ctl) of `bin`, run as `postgres` when we are root.
fn server_command(bin: &Path, name: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new(bin.join(name));
    clear_pg_env(&mut cmd);
    cmd.current_dir(cwd).env("LC_ALL", "C").stdin(Stdio::null());
    if let Some((uid, gid)) = server_user() {
        // Root's HOME is closed to `postgres`: the server's own libpq connections (a
        // subscription's) would fail reading ~/.postgresql/postgresql.crt there.
        cmd.uid(uid).gid(gid).env("HOME", cwd);
    }
    cmd
}

fn chown_to_server(path: &Path) {
    if let Some((uid, gid)) = server_user() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Settings for a cluster beyond the defaults.
#[derive(Default, Clone)]
pub struct ClusterOptions {
    ssl: Option<(PathBuf, PathBuf, PathBuf)>,
    extra_conf: Vec<String>,
    bin_dir: Option<PathBuf>,
}

impl ClusterOptions {
    /// Turns on `ssl` with the CA's server certificate (localhost and 127.0.0.1).
    pub fn ssl(mut self, ca: &TestCa) -> Self {
        self.ssl = Some((ca.ca_cert.clone(), ca.server_cert.clone(), ca.server_key.clone()));
        self
    }

    /// Appends one line to postgresql.conf.
    pub fn conf(mut self, line: &str) -> Self {
        self.extra_conf.push(line.to_string());
        self
    }

    /// Runs initdb, pg_ctl and postgres from `dir` instead of [`pg_bin`].
    pub fn bin_dir(mut self, dir: PathBuf) -> Self {
        self.bin_dir = Some(dir);
        self
    }

    /// Runs PostgreSQL `major` (13 to 18), fetched by [`super::pgversions::server_bin`];
    /// panics when it is unavailable (tests that skip instead call `server_bin` first).
    pub fn version(self, major: u32) -> Self {
        let dir = super::pgversions::server_bin(major).unwrap_or_else(|message| panic!("{message}"));
        self.bin_dir(dir)
    }
}

/// A running cluster; stopped (immediate mode) and deleted on drop, and by a
/// watchdog process when the test process ends without dropping it.
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    watchdog: Mutex<Child>,
}

/// The cluster shared by every test of one test binary, started on first use.
pub fn shared_cluster() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(Cluster::start)
}

/// Blue (the shared cluster) and green (a second one, started on first use), each with a
/// one-row table `marker(side)` naming it, so that a test can ask a session where it is.
pub fn blue_and_green() -> (&'static Cluster, &'static Cluster) {
    static GREEN: OnceLock<Cluster> = OnceLock::new();
    static MARKED: OnceLock<()> = OnceLock::new();
    let blue = shared_cluster();
    let green = GREEN.get_or_init(Cluster::start);
    MARKED.get_or_init(|| {
        for (cluster, side) in [(blue, "blue"), (green, "green")] {
            cluster.psql(&format!(
                "CREATE TABLE IF NOT EXISTS marker(side text); TRUNCATE marker; INSERT INTO marker VALUES ('{side}')"
            ));
        }
    });
    (blue, green)
}

const HBA: &str = "\
local all all trust
host all postgres 127.0.0.1/32 trust
host all md5user 127.0.0.1/32 md5
host all all 127.0.0.1/32 scram-sha-256
";

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions) -> Cluster {
        let bin = options.bin_dir.clone().unwrap_or_else(pg_bin);
        let dir = temp_dir("pgflip-pg-");
        chown_to_server(dir.path());
        let data = dir.path().join("data");
        run_ok(
            server_command(&bin, "initdb", dir.path())
                .arg("-D")
                .arg(&data)
                .args(["-A", "trust", "-U", "postgres", "--no-sync"])
                .args(["-E", "UTF8", "--locale=C"]),
            "initdb",
        );
        std::fs::write(data.join("pg_hba.conf"), HBA).expect("write pg_hba.conf");
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = logical\nfsync = off\nsynchronous_commit = off\n\
             full_page_writes = off\nmax_connections = 200\nshared_buffers = 32MB\n\
             max_wal_senders = 10\nmax_replication_slots = 10\n",
            dir.path().display()
        );
        if let Some((ca, cert, key)) = &options.ssl {
            std::fs::copy(ca, dir.path().join("ca.pem")).expect("copy CA cert");
            let cert_copy = dir.path().join("server.crt");
            let key_copy = dir.path().join("server.key");
            std::fs::copy(cert, &cert_copy).expect("copy server cert");
            std::fs::copy(key, &key_copy).expect("copy server key");
            std::fs::set_permissions(&key_copy, std::fs::Permissions::from_mode(0o600)).expect("chmod server key");
            chown_to_server(&cert_copy);
            chown_to_server(&key_copy);
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert_copy.display(),
                key_copy.display()
            ));
        }
        for line in &options.extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = data.join("postgresql.conf");
        let mut base = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        base.push_str(&conf);

        let log = dir.path().join("server.log");
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            std::fs::write(&conf_path, format!("{base}port = {port}\n")).expect("write postgresql.conf");
            let out = server_command(&bin, "pg_ctl", dir.path())
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"])
                .output()
                .expect("run pg_ctl start");
            if out.status.success() {
                let watchdog = spawn_watchdog(dir.path());
                let cluster = Cluster { dir, port, bin, watchdog: Mutex::new(watchdog) };
                cluster.create_roles();
                return cluster;
            }
            last_error = format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail_file(&log, 30)
            );
        }
        panic!("pg_ctl start failed three times:\n{last_error}");
    }

    fn create_roles(&self) {
        self.psql(&format!(
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE scramuser LOGIN PASSWORD '{SCRAM_PASSWORD}';
             SET password_encryption = 'md5';
             CREATE ROLE md5user LOGIN PASSWORD '{MD5_PASSWORD}';
             GRANT ALL ON SCHEMA public TO scramuser, md5user;"
        ));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Upstream URL without a user: the client's user passes through.
    pub fn url(&self) -> String {
        format!("postgres://127.0.0.1:{}", self.port)
    }

    /// Upstream URL that logs in as `user` (with `password` when given).
    pub fn url_as(&self, user: &str, password: Option<&str>) -> String {
        match password {
            Some(password) => format!("postgres://{user}:{password}@127.0.0.1:{}", self.port),
            None => format!("postgres://{user}@127.0.0.1:{}", self.port),
        }
    }

    /// libpq conninfo for a direct connection (not through the proxy).
    pub fn conninfo(&self, user: &str, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname={dbname} sslmode=disable", self.port)
    }

    /// Runs SQL directly as `postgres` and returns unaligned, tuples-only output.
    /// Panics when psql fails.
    /// A tokio-postgres client of `dbname` as `postgres`; its connection runs on the
    /// current runtime.
    pub async fn client(&self, dbname: &str) -> tokio_postgres::Client {
        let conninfo = self.conninfo("postgres", dbname);
        let connecting = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(std::time::Duration::from_secs(20), connecting)
            .await
            .expect("connect: no answer within 20 s")
            .expect("connect");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    pub fn psql(&self, sql: &str) -> String {
        self.psql_db("postgres", sql)
    }

    pub fn psql_db(&self, dbname: &str, sql: &str) -> String {
        let out = super::psql(&self.conninfo("postgres", dbname), sql);
        out.assert_success("direct psql");
        out.stdout.trim_end().to_string()
    }

    /// Creates a database owned by `postgres` (for tests that want their own).
    pub fn create_database(&self, name: &str) {
        self.psql(&format!("CREATE DATABASE \"{name}\""));
    }

    /// Copies of the TLS files the cluster was started with: (CA cert, server cert,
    /// server key). They live as long as the cluster, unlike the `TestCa`.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf, PathBuf)> {
        let ca = self.dir.path().join("ca.pem");
        ca.exists().then(|| (ca, self.dir.path().join("server.crt"), self.dir.path().join("server.key")))
    }

    /// The server log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.dir.path().join("server.log"), lines)
    }
}

impl Cluster {
    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn kill(&self) {
        let _ = server_command(&self.bin, "pg_ctl", self.dir.path())
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill();
        if let Ok(mut watchdog) = self.watchdog.lock() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// A shell loop that outlives a test process which never drops its cluster (a
/// `static`): once the process is gone it stops the postmaster and deletes the dir.
fn spawn_watchdog(dir: &Path) -> Child {
    let script = r#"
        while [ -d "/proc/$1" ] && [ -d "$2" ]; do sleep 0.5; done
        pidfile="$2/data/postmaster.pid"
        if [ -f "$pidfile" ]; then
            pm=$(head -n 1 "$pidfile")
            kill -QUIT "$pm" 2>/dev/null
            n=0
            while [ -d "/proc/$pm" ] && ! grep -q '^State:.*Z' "/proc/$pm/status" 2>/dev/null \
                && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
        fi
        rm -rf "$2"
    "#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("pgflip-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cluster watchdog")
}

/// What the soak does to a running server: restart it, list its processes.
mod faults;
