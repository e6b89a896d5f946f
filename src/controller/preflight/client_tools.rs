//! The client programs the controller runs against both servers: pg_dump must be at least
//! as new as blue (it refuses a newer server), best as new as green (PostgreSQL recommends
//! the newer server's), and pg_restore from the same installation.

use super::report::{Report, Severity};
pub use crate::controller::tools::ProgramVersion;

/// The programs preflight judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTools {
    pub pg_dump: ProgramVersion,
    pub pg_restore: ProgramVersion,
    /// Every installation found when the controller chose these itself (each as
    /// `/usr/lib/postgresql/15/bin (15)`), for a refusal to name; `None` when the plan's
    /// `[tools] bin_dir` named them.
    pub found: Option<Vec<String>>,
}

/// Judges `tools` against blue's and green's major versions.
pub(super) fn judge_client_tools(report: &mut Report, tools: &ClientTools, blue_major: i32, green_major: i32) {
    let fix = fix(tools, blue_major, green_major);
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
             dumps; {fix}",
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

/// What to do about unusable programs: what was found (when the controller looked) and
/// what is needed.
fn fix(tools: &ClientTools, blue_major: i32, green_major: i32) -> String {
    let needed = format!("the client programs of PostgreSQL {green_major} (green's; at least {blue_major}, blue's)");
    match &tools.found {
        None => format!("install {needed} and name their directory in [tools] bin_dir"),
        Some(found) => {
            let found = match found.is_empty() {
                true => "no pg_dump with its pg_restore was found on PATH or in /usr/lib/postgresql/*/bin".to_owned(),
                false => format!("found: {}", found.join(", ")),
            };
            format!(
                "{found}. Install {needed} on PATH or in /usr/lib/postgresql/{green_major}/bin, or name their \
                 directory in [tools] bin_dir"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::controller::tools::major_version;

    fn program(line: &str) -> ProgramVersion {
        ProgramVersion {
            path: PathBuf::from("/opt/pg/bin/x"),
            found: Ok((major_version(line).unwrap(), line.to_owned())),
        }
    }

    #[test]
    fn a_pg_dump_older_than_blue_blocks_and_one_older_than_green_is_noted() {
        let tools = |dump: &str, restore: &str| ClientTools {
            pg_dump: program(dump),
            pg_restore: program(restore),
            found: None,
        };
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

    #[test]
    fn a_refusal_names_what_was_found_and_what_is_needed() {
        let tools = ClientTools {
            pg_dump: program("pg_dump (PostgreSQL) 13.2"),
            pg_restore: program("pg_restore (PostgreSQL) 13.2"),
            found: Some(vec!["/usr/lib/postgresql/13/bin (13)".into(), "/opt/pg12/bin (12)".into()]),
        };
        let mut report = Report::default();
        judge_client_tools(&mut report, &tools, 15, 17);
        let message = &report.blockers().next().expect("a blocker").message;
        for part in [
            "older than blue (PostgreSQL 15)",
            "found: /usr/lib/postgresql/13/bin (13), /opt/pg12/bin (12)",
            "PostgreSQL 17 (green's; at least 15, blue's)",
            "[tools] bin_dir",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }
        let none = ClientTools {
            found: Some(Vec::new()),
            pg_dump: ProgramVersion {
                path: "pg_dump".into(),
                found: Err("cannot be run: No such file or directory (os error 2)".into()),
            },
            ..tools
        };
        let mut report = Report::default();
        judge_client_tools(&mut report, &none, 15, 17);
        let message = &report.blockers().next().expect("a blocker").message;
        assert!(
            message.contains("no pg_dump with its pg_restore was found on PATH or in /usr/lib/postgresql/*/bin"),
            "{message}"
        );
    }
}
