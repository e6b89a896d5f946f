//! Why a cutover run stopped.

use super::journal::JournalError;
use super::plan::PlanError;
use super::replication::ReplicationError;
use super::tools::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{what}: {source}")]
    Sql { what: String, source: tokio_postgres::Error },
    #[error("creating the replication slot on blue: {0}")]
    Replication(#[from] ReplicationError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("preflight found blockers:\n{0}")]
    Preflight(String),
    #[error("{0}")]
    Refused(String),
    #[error("catch-up: {0}")]
    Catchup(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl CutoverError {
    /// Wraps a SQL error with what was being done.
    pub fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> CutoverError {
        let what = what.into();
        move |source| CutoverError::Sql { what, source }
    }
}
