//! What can stop the demo.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "PostgreSQL's server programs (initdb, pg_ctl, postgres, psql) were not found on PATH or under \
/usr/lib/postgresql/*/bin. Install them (Debian or Ubuntu: `apt-get install -y postgresql`; macOS: \
`brew install postgresql@16`) or name their directory with --pg-bin DIR"
    )]
    NoPostgres,
    #[error("{flag} {}: {what} is not there", dir.display())]
    MissingProgram { flag: &'static str, dir: PathBuf, what: &'static str },
    /// `hint` is empty or a line of its own, starting with a newline.
    #[error("cannot tell which PostgreSQL {side} would run: `{} --version`: {output}{hint}", program.display())]
    ServerVersion { side: &'static str, program: PathBuf, output: String, hint: String },
    #[error(
        "--green-pg-bin {}: green would run {green}, older than blue's {blue}: a dump of blue does not \
restore into an older server. Name the server programs of PostgreSQL {blue_major} or later",
        dir.display()
    )]
    GreenOlderThanBlue { dir: PathBuf, blue: String, green: String, blue_major: u32 },
    #[error(
        "blue would run {blue} ({}): the demo's seeds need PostgreSQL {oldest} or later (CREATE OR REPLACE \
TRIGGER). Name a newer installation with --pg-bin DIR",
        dir.display()
    )]
    BlueOlderThanSeeds { dir: PathBuf, blue: String, oldest: u32 },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{what} failed ({status}):\n{output}")]
    Command { what: String, status: String, output: String },
    #[error("running as root, but there is no `postgres` user to run PostgreSQL as: {0}")]
    NoPostgresUser(String),
    #[error("{what}: {source}")]
    Sql { what: String, source: tokio_postgres::Error },
    #[error("sidecar {index}: {message}")]
    Sidecar { index: usize, message: String },
    #[error("the cutover's {phase} failed: {source}")]
    Cutover { phase: String, source: crate::controller::CutoverError },
}

impl DemoError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
        let what = what.into();
        move |source| DemoError::Io { what, source }
    }

    pub fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> DemoError {
        let what = what.into();
        move |source| DemoError::Sql { what, source }
    }
}
