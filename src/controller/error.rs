//! Why a cutover run stopped.

use super::journal::JournalError;
use super::plan::PlanError;
use super::replication::ReplicationError;
use super::target::PlaintextPassword;
use super::tools::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{what}: {}", describe(source))]
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
    #[error(transparent)]
    PlaintextPassword(#[from] PlaintextPassword),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// DDL on a serving side whose lock was not granted in time, after every attempt.
    #[error(transparent)]
    LockTimeout(Box<super::ddl::LockTimeout>),
    /// Another controller works on the plan.
    #[error("another controller is working on this plan: {holder}; wait for it to finish, or stop it")]
    Busy { holder: String },
    /// A side's URL now reaches another server or database than the journal recorded.
    #[error(transparent)]
    Repointed(Box<super::servers::Repointed>),
}

/// A SQL error as the server gave it (`ERROR 42P01: relation "x" does not exist`, with
/// its detail and hint); tokio-postgres's own text for others, with their cause
/// (`error performing TLS handshake: invalid peer certificate: UnknownIssuer`).
fn describe(error: &tokio_postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        };
    };
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" (detail: {detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!(" (hint: {hint})"));
    }
    text
}

impl CutoverError {
    /// Wraps a SQL error with what was being done.
    pub fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> CutoverError {
        let what = what.into();
        move |source| CutoverError::Sql { what, source }
    }
}
