//! Real PostgreSQL clients (psql, pgbench) run as child processes with a time
//! limit, returning their exit status and output.

use super::{clear_pg_env, pg_bin};
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Exit status and captured output of a client program.
#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the output when the program did not exit 0.
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(self.success(), "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}", self.status, self.stdout, self.stderr);
        self
    }

    /// Non-empty stdout lines, trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines().map(|line| line.trim().to_string()).filter(|line| !line.is_empty()).collect()
    }
}

/// Runs `cmd` with `stdin` fed to it, killing it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, stdin: Option<&str>, timeout: Duration) -> CmdOutput {
    clear_pg_env(cmd);
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let feeder = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let text = text.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let mut stdout_pipe = child.stdout.take().expect("stdout pipe");
    let mut stderr_pipe = child.stderr.take().expect("stderr pipe");
    let stdout_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buf);
        buf
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = stdout_reader.join().unwrap_or_default();
            let stderr = stderr_reader.join().unwrap_or_default();
            panic!(
                "{:?} {:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                cmd.get_program(),
                cmd.get_args().collect::<Vec<_>>(),
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    CmdOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout_reader.join().unwrap_or_default()).to_string(),
        stderr: String::from_utf8_lossy(&stderr_reader.join().unwrap_or_default()).to_string(),
    }
}

/// `psql -X -A -t -q -v ON_ERROR_STOP=1 -d CONNINFO -c SQL`.
pub fn psql(conninfo: &str, sql: &str) -> CmdOutput {
    run_with_timeout(
        Command::new(pg_bin().join("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo])
            .args(["-c", sql]),
        None,
        Duration::from_secs(120),
    )
}

/// psql reading a script on stdin; with `on_error_stop` false it goes on after errors.
pub fn psql_script(conninfo: &str, script: &str, on_error_stop: bool) -> CmdOutput {
    let stop = format!("ON_ERROR_STOP={}", u8::from(on_error_stop));
    run_with_timeout(
        Command::new(pg_bin().join("psql")).args(["-X", "-A", "-t", "-q", "-v", &stop, "-d", conninfo, "-f", "-"]),
        Some(script),
        Duration::from_secs(120),
    )
}

/// pgbench with the given arguments (connection options included by the caller).
pub fn pgbench(args: &[&str]) -> CmdOutput {
    run_with_timeout(Command::new(pg_bin().join("pgbench")).args(args), None, Duration::from_secs(300))
}

/// pgbench with `args` against database `postgres`, as user `postgres`, on 127.0.0.1:`port`.
pub fn pgbench_at(port: u16, args: &[&str]) -> CmdOutput {
    let port = port.to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "postgres"]);
    pgbench(&all)
}

/// The figures of a pgbench run summary that tests assert on.
#[derive(Debug, PartialEq, Eq)]
pub struct PgbenchSummary {
    pub processed: u64,
    pub failed: u64,
}

impl PgbenchSummary {
    /// Reads "number of transactions actually processed: N[/M]" and
    /// "number of failed transactions: N (..%)" (absent before PostgreSQL 15: 0).
    pub fn parse(stdout: &str) -> Option<PgbenchSummary> {
        let number_after = |prefix: &str| -> Option<u64> {
            let line = stdout.lines().find(|line| line.starts_with(prefix))?;
            let rest = line[prefix.len()..].trim();
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        };
        let processed = number_after("number of transactions actually processed:")?;
        let failed = number_after("number of failed transactions:").unwrap_or(0);
        Some(PgbenchSummary { processed, failed })
    }
}
