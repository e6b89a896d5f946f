//! The PostgreSQL client programs the controller runs (pg_dump, pg_restore, pg_dumpall)
//! and the plan's own commands: where they are ([`Tools`]; the installations found and
//! the choice among them in [`installations`] and [`choice`]), and running them with their
//! output passed on line by line and the last lines kept for the error when they fail.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tracing::{debug, info};

pub mod choice;
pub mod installations;
mod version;

pub use version::{major_version, ProgramVersion};

/// Lines of output kept for the error message of a failed command.
const KEPT_LINES: usize = 20;

/// A command that could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{what}: could not start {program}: {source}")]
    Spawn { what: String, program: String, source: std::io::Error },
    #[error("{what} failed ({status}); its last lines:\n{last_lines}")]
    Failed { what: String, status: std::process::ExitStatus, last_lines: String },
}

/// Where the PostgreSQL client programs are: a directory, or PATH (by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    bin_dir: Option<PathBuf>,
}

impl Tools {
    /// The programs in `dir`: the plan's `[tools] bin_dir`, or the installation chosen
    /// for the servers' versions ([`super::client_programs`]).
    pub fn in_dir(dir: &Path) -> Tools {
        Tools { bin_dir: Some(dir.to_path_buf()) }
    }

    /// The programs by name, as PATH finds them: before a choice was made, or when no
    /// installation was found (preflight then says so).
    pub fn on_path() -> Tools {
        Tools { bin_dir: None }
    }

    /// The path to run program `name` by.
    pub fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The directory, unless the programs are found on PATH by name.
    pub fn bin_dir(&self) -> Option<&Path> {
        self.bin_dir.as_deref()
    }
}

/// The newest `/usr/lib/postgresql/*/bin` (Debian's layout) that has all of `programs`.
pub fn newest_debian_bin_dir(programs: &[&str]) -> Option<PathBuf> {
    installations::debian_bin_dirs(Path::new(installations::DEBIAN_ROOT))
        .into_iter()
        .rev()
        .map(|(_, bin)| bin)
        .find(|bin| programs.iter().all(|program| bin.join(program).is_file()))
}

/// Points a client program at `endpoint`'s `database`: `--dbname` without the password,
/// which goes in `PGPASSWORD` (a command line is visible to other local users), and the
/// controller's TLS in the URL and in `PGSSLMODE` and `PGSSLROOTCERT`.
pub fn connect_to(command: &mut Command, endpoint: &super::plan::Endpoint, database: &str) {
    let (url, password) = endpoint.for_program(database);
    command.arg("--dbname").arg(url);
    command.envs(endpoint.program_env());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
}

/// Which lines of a program's output a person follows at INFO; the rest go to DEBUG.
pub type Notable = fn(&str) -> bool;

/// Every line is worth showing (the plan's own commands).
pub fn every_line(_: &str) -> bool {
    true
}

/// pg_dump and pg_restore in `--verbose` mode: the lines about table data and indexes (the
/// long part, and so the progress), warnings and errors; not the catalog reading.
pub fn data_progress(line: &str) -> bool {
    ["TABLE DATA", "contents of table", "data for table", "INDEX", "warning", "error", "WARNING", "ERROR"]
        .iter()
        .any(|word| line.contains(word))
}

/// Runs `command`, logging each line it prints (the `notable` ones at INFO, the others at
/// DEBUG), and fails with its exit status and last lines unless it exits 0.
pub async fn run_logged(mut command: Command, what: &str, notable: Notable) -> Result<(), CommandError> {
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| CommandError::Spawn { what: what.to_owned(), program, source })?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (out_lines, err_lines) = tokio::join!(pass_on(stdout, what, notable), pass_on(stderr, what, notable));
    let status = child.wait().await.map_err(|source| CommandError::Spawn {
        what: what.to_owned(),
        program: String::new(),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    let mut last: Vec<String> = out_lines.into_iter().chain(err_lines).collect();
    let skip = last.len().saturating_sub(KEPT_LINES);
    last.drain(..skip);
    Err(CommandError::Failed { what: what.to_owned(), status, last_lines: last.join("\n") })
}

/// Runs `command` and returns what it printed on stdout; fails like [`run_logged`].
pub async fn run_captured(mut command: Command, what: &str) -> Result<String, CommandError> {
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output =
        command.output().await.map_err(|source| CommandError::Spawn { what: what.to_owned(), program, source })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let last_lines = lines[lines.len().saturating_sub(KEPT_LINES)..].join("\n");
    Err(CommandError::Failed { what: what.to_owned(), status: output.status, last_lines })
}

/// Logs every line of `stream`; returns the last [`KEPT_LINES`].
async fn pass_on(stream: Option<impl AsyncRead + Unpin>, what: &str, notable: Notable) -> VecDeque<String> {
    let mut kept = VecDeque::with_capacity(KEPT_LINES);
    let Some(stream) = stream else {
        return kept;
    };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if notable(&line) {
            info!(target: "pgflip::cutover::output", program = what, "{line}");
        } else {
            debug!(target: "pgflip::cutover::output", program = what, "{line}");
        }
        if kept.len() == KEPT_LINES {
            kept.pop_front();
        }
        kept.push_back(line);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_command_reports_its_status_and_last_lines() {
        let mut command = Command::new("sh");
        command.arg("-c").arg("for i in $(seq 1 30); do echo line $i; done; echo oops >&2; exit 3");
        let err = run_logged(command, "migrate", every_line).await.expect_err("exit 3");
        let text = err.to_string();
        assert!(text.starts_with("migrate failed (exit status: 3)"), "{text}");
        assert!(text.contains("line 30") && text.contains("oops") && !text.contains("line 5\n"), "{text}");
        let mut ok = Command::new("sh");
        ok.arg("-c").arg("echo fine");
        run_logged(ok, "smoke", every_line).await.expect("exit 0");
        assert!(data_progress("pg_dump: finished item 3217 TABLE DATA big"));
        assert!(!data_progress("pg_dump: reading user-defined operators"));
    }

    #[test]
    fn programs_run_from_the_directory_or_by_name() {
        assert_eq!(Tools::in_dir(Path::new("/opt/pg/bin")).program("pg_dump"), PathBuf::from("/opt/pg/bin/pg_dump"));
        assert_eq!(Tools::on_path().program("pg_restore"), PathBuf::from("pg_restore"));
    }
}
