//! A throwaway PgBouncer in session mode in front of the bench cluster, as the
//! reference proxy, listening on TCP and on a Unix-domain socket in its directory. It
//! refuses to run as root, so as root it runs as `postgres`.

use crate::support::{free_port, is_root, psql, tail_file, temp_dir, wait_until};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian and Ubuntu install PgBouncer.
pub const PGBOUNCER_BIN: &str = "/usr/sbin/pgbouncer";

/// A running PgBouncer; killed and its directory removed on drop.
pub struct PgBouncer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    ini: String,
}

impl PgBouncer {
    /// Starts PgBouncer for the cluster on `pg_port`, with a server pool of `pool_size`,
    /// and waits until a `SELECT 1` passes through it.
    pub fn start(pg_port: u16, pool_size: u32) -> Result<PgBouncer, String> {
        let dir = temp_dir("pgflip-bench-bouncer-");
        let port = free_port();
        let ini = ini(dir.path(), port, pg_port, pool_size);
        let write = |name: &str, contents: &str| {
            std::fs::write(dir.path().join(name), contents).map_err(|e| format!("write {name}: {e}"))
        };
        write("userlist.txt", "\"postgres\" \"\"\n")?;
        write("pgbouncer.ini", &ini)?;
        let out = std::fs::File::create(dir.path().join("pgbouncer.out")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(PGBOUNCER_BIN);
        cmd.arg(dir.path().join("pgbouncer.ini")).current_dir(dir.path()).stdin(Stdio::null());
        cmd.stdout(out.try_clone().map_err(|e| e.to_string())?).stderr(out);
        if let Some((uid, gid)) = postgres_user()? {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| format!("chown: {e}"))?;
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().map_err(|e| format!("cannot run {PGBOUNCER_BIN}: {e}"))?;
        let mut bouncer = PgBouncer { child, dir, port, ini };

        let listening = wait_until(Duration::from_secs(15), || {
            if !matches!(bouncer.child.try_wait(), Ok(None)) {
                return Some(false);
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok().then_some(true)
        });
        if listening != Some(true) {
            return Err(format!("PgBouncer did not start listening on port {port}\n{}", bouncer.log_tail()));
        }
        let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable");
        let answer = crate::caught(|| psql(&conninfo, "SELECT 1"))?;
        if !answer.success() || answer.stdout.trim() != "1" {
            return Err(format!("SELECT 1 through PgBouncer failed: {}\n{}", answer.stderr.trim(), bouncer.log_tail()));
        }
        Ok(bouncer)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PgBouncer process's id (the idle_sessions bench reads its memory).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory of its Unix-domain socket, `.s.PGSQL.PORT`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated pgbouncer.ini.
    pub fn ini(&self) -> &str {
        &self.ini
    }

    /// PgBouncer's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }

    /// PgBouncer's own output: what it logs, and errors from before its log file opens.
    fn log_tail(&self) -> String {
        format!("pgbouncer output:\n{}", tail_file(&self.dir.path().join("pgbouncer.out"), 30))
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PgBouncer 1.18.0`, the first line of `pgbouncer --version`.
pub fn version() -> String {
    Command::new(PGBOUNCER_BIN)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn ini(dir: &Path, port: u16, pg_port: u16, pool_size: u32) -> String {
    let dir = dir.display();
    // Room for every pooled client, and for the psql checks beside them.
    let max_clients = (pool_size + 20).max(100);
    format!(
        "[databases]
* = host=127.0.0.1 port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {dir}
pool_mode = session
default_pool_size = {pool_size}
max_client_conn = {max_clients}
auth_type = trust
auth_file = {dir}/userlist.txt
server_tls_sslmode = disable
logfile = {dir}/pgbouncer.log
"
    )
}

/// uid and gid of the `postgres` system user when we are root, which PgBouncer refuses.
fn postgres_user() -> Result<Option<(u32, u32)>, String> {
    if !is_root() {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id").args([flag, "postgres"]).output().map_err(|e| format!("run id: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| "running as root needs a `postgres` system user for PgBouncer".to_string())
    };
    Ok(Some((id("-u")?, id("-g")?)))
}
