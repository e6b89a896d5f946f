//! Throwaway local PostgreSQL clusters: found binaries, `initdb` into the demo's directory,
//! a free loopback port, `wal_level = logical`; stopped at once when dropped. As root,
//! PostgreSQL refuses to run, so its programs run as the `postgres` user. Green's server
//! programs may come from another installation (`--green-pg-bin`); psql is always
//! `--pg-bin`'s.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::DemoError;

/// The programs the demo runs from `--pg-bin`.
const SERVER_PROGRAMS: [&str; 4] = ["initdb", "pg_ctl", "postgres", "psql"];

/// The programs green runs from `--green-pg-bin`: a server's, without client programs.
const GREEN_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Where PostgreSQL's programs are: `--pg-bin`, else the directory on PATH that has
/// them all, else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir(given: Option<&Path>) -> Result<PathBuf, DemoError> {
    if let Some(dir) = given {
        return check_dir("--pg-bin", dir, &SERVER_PROGRAMS);
    }
    let has_all = |dir: &Path| SERVER_PROGRAMS.iter().all(|p| dir.join(p).is_file());
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| has_all(dir)) {
            return Ok(dir);
        }
    }
    crate::controller::tools::newest_debian_bin_dir(&SERVER_PROGRAMS).ok_or(DemoError::NoPostgres)
}

/// Green's server programs: `--green-pg-bin`, else the same as blue's.
pub fn green_bin_dir(given: Option<&Path>, blue: &Path) -> Result<PathBuf, DemoError> {
    match given {
        Some(dir) => check_dir("--green-pg-bin", dir, &GREEN_PROGRAMS),
        None => Ok(blue.to_owned()),
    }
}

/// `dir` when it has every one of `programs`; else which one it lacks.
fn check_dir(flag: &'static str, dir: &Path, programs: &[&'static str]) -> Result<PathBuf, DemoError> {
    match programs.iter().find(|what| !dir.join(what).is_file()) {
        Some(&what) => Err(DemoError::MissingProgram { flag, dir: dir.to_owned(), what }),
        None => Ok(dir.to_owned()),
    }
}

/// The user PostgreSQL's programs run as: `None` to run them as ourselves, `Some((uid,
/// gid))` of `postgres` when we are root.
#[derive(Debug, Clone, Copy)]
pub struct RunAs(Option<(u32, u32)>);

impl RunAs {
    pub fn detect() -> Result<RunAs, DemoError> {
        let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(1);
        if uid != 0 {
            return Ok(RunAs(None));
        }
        let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| DemoError::NoPostgresUser(e.to_string()))?;
        let entry = passwd
            .lines()
            .find(|line| line.starts_with("postgres:"))
            .ok_or_else(|| DemoError::NoPostgresUser("/etc/passwd has no postgres entry".into()))?;
        let fields: Vec<&str> = entry.split(':').collect();
        match (fields.get(2).and_then(|u| u.parse().ok()), fields.get(3).and_then(|g| g.parse().ok())) {
            (Some(uid), Some(gid)) => Ok(RunAs(Some((uid, gid)))),
            _ => Err(DemoError::NoPostgresUser(format!("unreadable /etc/passwd entry {entry:?}"))),
        }
    }

    /// True when PostgreSQL runs as the `postgres` user rather than as ourselves.
    pub fn is_postgres_user(&self) -> bool {
        self.0.is_some()
    }

    /// Makes `path` belong to the user PostgreSQL runs as.
    pub fn give(&self, path: &Path) -> Result<(), DemoError> {
        if let Some((uid, gid)) = self.0 {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(DemoError::io(format!("giving {} to postgres", path.display())))?;
        }
        Ok(())
    }

    pub fn apply(&self, command: &mut Command) {
        if let Some((uid, gid)) = self.0 {
            command.uid(uid).gid(gid);
        }
    }
}

/// Where one cluster's programs are: its server's (initdb, pg_ctl, postgres) and the
/// psql the demo runs against it.
pub struct Programs<'a> {
    pub server: &'a Path,
    pub psql: &'a Path,
}

/// A running cluster in its own directory; stopped (immediate mode) when dropped.
pub struct LocalCluster {
    pub name: &'static str,
    pub port: u16,
    data: PathBuf,
    server_bin: PathBuf,
    psql_bin: PathBuf,
    run_as: RunAs,
}

impl LocalCluster {
    /// `initdb` into `dir/data` and start it on a free port, its server log in `log`.
    /// Loopback TCP only; the `postgres` superuser is trusted, every other role logs in
    /// with its password.
    pub fn start(
        name: &'static str,
        dir: &Path,
        programs: Programs,
        run_as: RunAs,
        log: &Path,
    ) -> Result<LocalCluster, DemoError> {
        std::fs::create_dir_all(dir).map_err(DemoError::io(format!("creating {}", dir.display())))?;
        run_as.give(dir)?;
        let data = dir.join("data");
        let mut initdb = Command::new(programs.server.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "-E", "UTF8", "--locale=C", "-A", "trust"]);
        run_as.apply(&mut initdb);
        run(initdb, &format!("initdb of {name}"))?;
        let port = free_port()?;
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             wal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10\nmax_connections = 200\n\
             fsync = off\nlogging_collector = off\n",
            dir.display()
        );
        append(&data.join("postgresql.conf"), &conf)?;
        let hba = "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(data.join("pg_hba.conf"), hba).map_err(DemoError::io("writing pg_hba.conf"))?;
        let cluster = LocalCluster {
            name,
            port,
            data,
            server_bin: programs.server.to_owned(),
            psql_bin: programs.psql.to_owned(),
            run_as,
        };
        let mut start = cluster.pg_ctl();
        start.arg("start").arg("-w").args(["-t", "60"]).arg("-l").arg(log);
        run(start, &format!("starting {name}"))?;
        Ok(cluster)
    }

    /// A superuser connection string for tokio-postgres.
    pub fn conninfo(&self, database: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname={database}", self.port)
    }

    /// Runs psql on `database` as the superuser with `args` (e.g. `-f file`), stopping at
    /// the first error.
    pub fn psql(&self, database: &str, args: &[&str]) -> Result<String, DemoError> {
        let mut psql = Command::new(self.psql_bin.join("psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .args(args);
        run(psql, &format!("psql on {}", self.name))
    }

    fn pg_ctl(&self) -> Command {
        let mut command = Command::new(self.server_bin.join("pg_ctl"));
        command.arg("-D").arg(&self.data);
        self.run_as.apply(&mut command);
        command
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let mut stop = self.pg_ctl();
        stop.args(["stop", "-m", "immediate", "-w"]).stdout(Stdio::null()).stderr(Stdio::null());
        let _ = stop.status();
    }
}

/// Runs `command` to the end; its output, or an error with that output.
fn run(mut command: Command, what: &str) -> Result<String, DemoError> {
    let output = command.stdin(Stdio::null()).output().map_err(DemoError::io(what.to_string()))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(DemoError::Command { what: what.to_string(), status: output.status.to_string(), output: text });
    }
    Ok(text)
}

fn append(path: &Path, text: &str) -> Result<(), DemoError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(DemoError::io(format!("opening {}", path.display())))?;
    file.write_all(text.as_bytes()).map_err(DemoError::io(format!("writing {}", path.display())))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16, DemoError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(DemoError::io("finding a free port"))?;
    listener.local_addr().map(|a| a.port()).map_err(DemoError::io("finding a free port"))
}
