//! SQL connections of the controller (tokio-postgres), each named for its errors.

use tokio_postgres::{Client, Config, NoTls};
use tracing::warn;

use super::error::CutoverError;

/// Connects with `config`; the connection task logs when it ends with an error.
pub async fn connect(config: &Config, side: &str) -> Result<Client, CutoverError> {
    let mut config = config.clone();
    config.application_name("pgflip");
    let (client, connection) =
        config.connect(NoTls).await.map_err(CutoverError::sql(format!("connecting to {side}")))?;
    let side = side.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(side = %side, error = %e, "a controller connection ended");
        }
    });
    Ok(client)
}

/// A string literal for SQL, whatever `standard_conforming_strings` is.
pub fn literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

/// An identifier, always quoted.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
