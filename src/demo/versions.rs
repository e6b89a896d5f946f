//! Which PostgreSQL each side runs, read from `postgres --version` of its directory before
//! anything starts, and what the demo refuses itself: green older than blue (a dump of
//! blue does not restore into an older server) and blue older than its seeds. The range
//! pgflip supports (blue on 13 or later, green on 15 or later) is the controller's
//! preflight to judge, and the demo tells its verdict.

use std::path::Path;
use std::process::{Command, Stdio};

use super::error::DemoError;
use super::postgres::RunAs;

/// The oldest PostgreSQL `seeds/schema.sql` loads into (it uses CREATE OR REPLACE TRIGGER).
const OLDEST_SEEDED: u32 = 14;

/// One installation's server version: `15.14` of `postgres (PostgreSQL) 15.14 (Debian
/// 15.14-0+deb12u1)`, major 15.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub number: String,
    pub major: u32,
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgreSQL {}", self.number)
    }
}

impl ServerVersion {
    /// Runs `dir/postgres --version` as the user the clusters run as, which also proves
    /// that user can reach the program and load its libraries. `side` (blue or green)
    /// is for the error.
    pub fn read(dir: &Path, run_as: RunAs, side: &'static str) -> Result<ServerVersion, DemoError> {
        let program = dir.join("postgres");
        let mut command = Command::new(&program);
        command.arg("--version").stdin(Stdio::null());
        run_as.apply(&mut command);
        let unreadable = |output: String| DemoError::ServerVersion {
            side,
            program: program.clone(),
            hint: hint(dir, run_as, &output),
            output,
        };
        let output = command.output().map_err(|e| unreadable(e.to_string()))?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            return Err(unreadable(format!("{} ({})", text.trim(), output.status)));
        }
        parse(&text).ok_or_else(|| unreadable(format!("no version in {:?}", text.trim())))
    }
}

/// What to do when `postgres --version` fails, as a line of its own (or nothing): an npm
/// package's library links are made by its install script (`native/pg-symlinks.json`
/// lists them); as root, the `postgres` user must be able to reach the directory.
fn hint(dir: &Path, run_as: RunAs, output: &str) -> String {
    let mut hints = Vec::new();
    let package = dir.parent().and_then(Path::parent).filter(|p| p.join("native/pg-symlinks.json").is_file());
    if let Some(package) = package.filter(|_| output.contains("shared libraries")) {
        hints.push(format!(
            "an npm package's libraries are found through the links its install script makes: \
             `cd {} && node scripts/hydrate-symlinks.js`",
            package.display()
        ));
    }
    if run_as.is_postgres_user() && output.contains("Permission denied") {
        hints.push(format!(
            "running as root, the demo runs PostgreSQL as the postgres user, who must be able to reach {} \
             (o+x on every directory above it)",
            dir.display()
        ));
    }
    hints.iter().map(|hint| format!("\n{hint}")).collect()
}

/// The version in a `postgres --version` line: the first word that starts with a digit.
fn parse(line: &str) -> Option<ServerVersion> {
    let number = line.split_whitespace().find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    let major = number.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some(ServerVersion { number: number.to_owned(), major })
}

/// Refuses blue older than the seeds and green on an older major version than blue.
pub fn check(blue: &ServerVersion, green: &ServerVersion, blue_dir: &Path, green_dir: &Path) -> Result<(), DemoError> {
    if blue.major < OLDEST_SEEDED {
        return Err(DemoError::BlueOlderThanSeeds {
            dir: blue_dir.to_owned(),
            blue: blue.to_string(),
            oldest: OLDEST_SEEDED,
        });
    }
    if green.major < blue.major {
        return Err(DemoError::GreenOlderThanBlue {
            dir: green_dir.to_owned(),
            blue: blue.to_string(),
            green: green.to_string(),
            blue_major: blue.major,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_version_line() {
        let debian = parse("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n").unwrap();
        assert_eq!(debian, ServerVersion { number: "15.14".into(), major: 15 });
        assert_eq!(debian.to_string(), "PostgreSQL 15.14");
        assert_eq!(parse("postgres (PostgreSQL) 18beta1").unwrap().major, 18);
        assert_eq!(parse("postgres (PostgreSQL) 9.6.24").unwrap().major, 9);
        assert_eq!(parse("no version here"), None);
    }

    #[test]
    fn green_may_be_newer_or_the_same_major_but_not_older() {
        let version = |text: &str| parse(text).unwrap();
        let (blue_dir, dir) = (Path::new("/opt/pg/bin"), Path::new("/opt/pg14/bin"));
        assert!(check(&version("15.14"), &version("18.4"), blue_dir, dir).is_ok());
        assert!(check(&version("15.14"), &version("15.2"), blue_dir, dir).is_ok());
        let error = check(&version("15.14"), &version("14.19"), blue_dir, dir).unwrap_err().to_string();
        assert!(error.contains("--green-pg-bin /opt/pg14/bin") && error.contains("PostgreSQL 14.19"), "{error}");
        assert!(error.contains("PostgreSQL 15 or later"), "{error}");
    }

    #[test]
    fn blue_must_be_new_enough_for_the_seeds() {
        let version = |text: &str| parse(text).unwrap();
        let (blue_dir, dir) = (Path::new("/opt/pg13/bin"), Path::new("/opt/pg17/bin"));
        let error = check(&version("13.23"), &version("17.10"), blue_dir, dir).unwrap_err().to_string();
        assert!(error.contains("PostgreSQL 13.23 (/opt/pg13/bin)") && error.contains("14 or later"), "{error}");
        assert!(check(&version("14.23"), &version("17.10"), blue_dir, dir).is_ok());
    }
}
