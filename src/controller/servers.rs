//! Which servers a plan reaches. The journal records, at first contact, each side's
//! `system_identifier` (one per cluster, set by initdb) and the database the plan names
//! there; every later command refuses a plan whose URL now reaches another cluster or
//! names another database, since the journal's facts (slots, LSNs, fences) belong to the
//! first one.

use tokio_postgres::Client;
use tracing::info;

use super::error::CutoverError;
use super::journal::{Journal, Server};

/// A side whose URL reaches another server or database than the journal recorded.
#[derive(Debug, thiserror::Error)]
#[error(
    "{side} is not the server this plan's journal knows: the plan's URL reaches system identifier {now} \
     (database {now_database}), the journal {journal} recorded system identifier {was} (database \
     {was_database}). Point the plan back at it, or move the journal away to start a new cutover"
)]
pub struct Repointed {
    pub side: String,
    pub now: String,
    pub now_database: String,
    pub was: String,
    pub was_database: String,
    pub journal: String,
}

/// The system identifier of `client`'s server.
pub async fn system_identifier(client: &Client, side: &str) -> Result<String, CutoverError> {
    let row = client
        .query_one("SELECT system_identifier::text FROM pg_catalog.pg_control_system()", &[])
        .await
        .map_err(CutoverError::sql(format!("reading the system identifier of {side}")))?;
    Ok(row.get(0))
}

/// Records `side`'s server in the journal at first contact; later, refuses a server or
/// database other than the recorded one, naming both. Returns the server's identifier.
pub async fn check(client: &Client, side: &str, database: &str, journal: &mut Journal) -> Result<String, CutoverError> {
    let now = Server { system_identifier: system_identifier(client, side).await?, database: database.to_owned() };
    match journal.server(side) {
        None => {
            info!(side, system_identifier = %now.system_identifier, database, "first contact: server recorded");
            let identifier = now.system_identifier.clone();
            journal.record_server(side, now)?;
            Ok(identifier)
        }
        Some(was) if *was == now => Ok(now.system_identifier),
        Some(was) => Err(CutoverError::Repointed(Box::new(Repointed {
            side: side.to_owned(),
            now: now.system_identifier,
            now_database: now.database,
            was: was.system_identifier.clone(),
            was_database: was.database.clone(),
            journal: journal.path().display().to_string(),
        }))),
    }
}
