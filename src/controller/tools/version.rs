//! What a client program says of its version (`pg_dump --version`).

use std::path::PathBuf;

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
                major_version(&line).map(|m| (m, line.clone())).ok_or(format!("printed no version: {line:?}"))
            }
        };
        ProgramVersion { path, found }
    }

    /// The major version, when the program ran and printed one.
    pub fn major(&self) -> Option<i32> {
        self.found.as_ref().ok().map(|(major, _)| *major)
    }
}

/// The major version in a `--version` line: `pg_dump (PostgreSQL) 15.14 (Debian ...)` is 15,
/// `9.6.24` is 9.
pub fn major_version(line: &str) -> Option<i32> {
    let version = line.split_whitespace().find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    version.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_version_line() {
        assert_eq!(major_version("pg_dump (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"), Some(15));
        assert_eq!(major_version("pg_restore (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(major_version("pg_dump (PostgreSQL) 18beta1"), Some(18));
        assert_eq!(major_version("no version here"), None);
    }
}
