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
    #[error("--pg-bin {}: {what} is not there", dir.display())]
    MissingProgram { dir: PathBuf, what: &'static str },
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
