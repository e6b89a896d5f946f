//! One psql process kept open as a long-lived session: commands go to its stdin one batch
//! at a time and each batch's output is read back, so that a test can act between them
//! (a switch, a cutover) while psql keeps its one connection.

use super::{clear_pg_env, pg_bin};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one batch may take.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `psql -X -A -t -q` on one connection; killed on drop.
pub struct PsqlSession {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    batches: u64,
}

impl PsqlSession {
    /// Starts psql on `conninfo`, going on after errors (as an interactive user would).
    pub fn start(conninfo: &str) -> PsqlSession {
        let mut command = Command::new(pg_bin().join("psql"));
        clear_pg_env(&mut command);
        let mut child = command
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=0", "-d", conninfo])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start psql");
        let stdin = child.stdin.take().expect("stdin");
        let (sender, lines) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, errors) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut all = errors.lock().unwrap_or_else(|e| e.into_inner());
                all.push_str(&line);
                all.push('\n');
            }
        });
        PsqlSession { child, stdin, lines, stderr, batches: 0 }
    }

    /// Runs `commands` (SQL and backslash commands, one per line) and returns the
    /// output lines they printed. Panics when psql does not finish them in time.
    pub fn run(&mut self, commands: &str) -> Vec<String> {
        self.batches += 1;
        let marker = format!("-- end of batch {} --", self.batches);
        writeln!(self.stdin, "{commands}\n\\echo '{marker}'").expect("write to psql");
        self.stdin.flush().expect("flush psql's stdin");
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(BATCH_TIMEOUT) {
                Ok(line) if line == marker => return lines,
                Ok(line) => lines.push(line),
                Err(e) => panic!("psql did not finish {commands:?} ({e}); stderr:\n{}", self.errors()),
            }
        }
    }

    /// Everything psql printed on stderr so far (errors, notices).
    pub fn errors(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for PsqlSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
