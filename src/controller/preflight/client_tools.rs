//! The client programs the controller runs against both servers: pg_dump must be at least
//! as new as blue (it refuses a newer server), best as new as green (PostgreSQL recommends
//! the newer server's), and pg_restore from the same installation.

use std::path::PathBuf;

use super::report::{Report, Severity};

/// What `--version` said of one program: its major version and the whole line, or why it
/// could not be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramVersion {
    pub path: PathBuf,
    pub found: Result<(i32, String), String>,
}

impl ProgramVersion {
    /// Runs `path --version`.
    pub async fn probe(path: PathBuf) -> ProgramVersion {
        let output = tokio::process::Command::new(&path).arg("--version").output().await;
        let found = match output {
            Err(e) => Err(format!("cannot be run: {e}")),
            Ok(out) if !out.status.success() => Err(format!("--version failed ({})", out.status)),
            Ok(out) => {
                let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                major(&line).map(|m| (m, line.clone())).ok_or(format!("printed no version: {line:?}"))
            }
        };
        ProgramVersion { path, found }
    }
}

/// The major version in a `--version` line: `pg_dump (PostgreSQL) 15.14 (Debian ...)` is 15,
/// `9.6.24` is 9.
fn major(line: &str) -> Option<i32> {
    let version = line.split_whitespace().find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    version.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The programs preflight judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTools {
    pub pg_dump: ProgramVersion,
    pub pg_restore: ProgramVersion,
}

/// Judges `tools` against blue's and green's major versions.
pub(super) fn judge_client_tools(report: &mut Report, tools: &ClientTools, blue_major: i32, green_major: i32) {
    let fix = "install a newer PostgreSQL's client programs and name their directory in [tools] bin_dir";
    let dump = match &tools.pg_dump.found {
        Err(why) => {
            let message = format!("pg_dump ({}) {why}: {fix}", tools.pg_dump.path.display());
            return report.add(Severity::Blocker, "client_tools", message, vec![]);
        }
        Ok((major, line)) => (*major, line.clone()),
    };
    report.fact("pg_dump_version", dump.1.clone());
    if dump.0 < blue_major {
        let message = format!(
            "{} ({}) is older than blue (PostgreSQL {blue_major}): pg_dump must be at least as new as the server it \
             dumps; {fix} (PostgreSQL {green_major}'s, green's, is best)",
            dump.1,
            tools.pg_dump.path.display()
        );
        report.add(Severity::Blocker, "client_tools", message, vec![]);
    } else if dump.0 < green_major {
        let message = format!(
            "{} ({}) dumps blue; PostgreSQL recommends the pg_dump of the newer server (green's, {green_major})",
            dump.1,
            tools.pg_dump.path.display()
        );
        report.add(Severity::Info, "client_tools", message, vec![]);
    } else {
        let message = format!("{} ({})", dump.1, tools.pg_dump.path.display());
        report.add(Severity::Info, "client_tools", message, vec![]);
    }
    match &tools.pg_restore.found {
        Err(why) => {
            let message = format!("pg_restore ({}) {why}: {fix}", tools.pg_restore.path.display());
            report.add(Severity::Blocker, "client_tools", message, vec![]);
        }
        Ok((major, line)) if *major != dump.0 => {
            let message = format!(
                "{line} ({}) is not from pg_dump's installation ({}): they must be the same version",
                tools.pg_restore.path.display(),
                dump.1
            );
            report.add(Severity::Blocker, "client_tools", message, vec![]);
        }
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(line: &str) -> ProgramVersion {
        ProgramVersion { path: PathBuf::from("/opt/pg/bin/x"), found: Ok((major(line).unwrap(), line.to_owned())) }
    }

    #[test]
    fn versions_are_read_from_the_version_line() {
        assert_eq!(major("pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"), Some(15));
        assert_eq!(major("pg_restore (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(major("pg_dump (PostgreSQL) 18beta1"), Some(18));
        assert_eq!(major("no version here"), None);
    }

    #[test]
    fn a_pg_dump_older_than_blue_blocks_and_one_older_than_green_is_noted() {
        let tools = |dump: &str, restore: &str| ClientTools { pg_dump: program(dump), pg_restore: program(restore) };
        let mut report = Report::default();
        judge_client_tools(&mut report, &tools("pg_dump (PostgreSQL) 15.4", "pg_restore (PostgreSQL) 15.4"), 16, 17);
        let blocker = report.blockers().next().expect("a blocker");
        assert!(blocker.message.contains("older than blue (PostgreSQL 16)"), "{}", blocker.message);

        let mut report = Report::default();
        judge_client_tools(&mut report, &tools("pg_dump (PostgreSQL) 15.4", "pg_restore (PostgreSQL) 15.4"), 13, 17);
        assert!(report.is_ok());
        assert!(report.findings.iter().any(|f| f.message.contains("recommends")));

        let mut report = Report::default();
        judge_client_tools(&mut report, &tools("pg_dump (PostgreSQL) 17.1", "pg_restore (PostgreSQL) 15.4"), 15, 17);
        assert!(report.blockers().next().expect("a blocker").message.contains("same version"));
    }
}
