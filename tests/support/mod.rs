//! Shared harness for the integration tests and the end-to-end bench: throwaway
//! PostgreSQL clusters, a test CA, the `pgflip proxy` process and real clients.
#![allow(dead_code, unused_imports)]

pub mod clients;
pub mod cluster;
pub mod http;
pub mod pgversions;
pub mod proxy;
pub mod psql_session;
pub mod statements;
pub mod tls;
pub mod wire;

pub use clients::{pgbench, pgbench_at, psql, psql_script, CmdOutput, PgbenchSummary};
pub use cluster::{blue_and_green, pg_bin, shared_cluster, Cluster, ClusterOptions, MD5_PASSWORD, SCRAM_PASSWORD};
pub use http::{metric_samples, metric_sum};
pub use proxy::{Exited, Proxy, ProxyBuilder};
pub use psql_session::PsqlSession;
pub use tls::TestCa;
pub use wire::{assert_select_one, PgError, RawConn, ReadOutcome};

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// True when this process runs as root (uid 0).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .map(|uid| uid == "0")
        .unwrap_or(false)
}

/// A directory under /tmp, which the `postgres` system user can reach even when
/// TMPDIR points somewhere private to root.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp").expect("create temp dir in /tmp")
}

/// Removes the libpq environment variables of the caller so that a developer's
/// PGHOST or PGPASSWORD never leaks into a test client.
pub fn clear_pg_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str() {
            if key.starts_with("PG") && !key.starts_with("PGFLIP") {
                cmd.env_remove(key);
            }
        }
    }
    cmd
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident set size of a process in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
}

/// Sends a signal with the `kill` command (no libc, no unsafe).
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// Sends `signal` to every process of group `pgid` (a child spawned with
/// `process_group(0)` leads its own group); true when `kill` succeeded.
pub fn send_signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// The last `max_lines` lines of a text file, for failure messages.
pub fn tail_file(path: &Path, max_lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}
