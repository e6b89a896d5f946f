//! SQL connections of the controller (tokio-postgres), each named for its errors.

use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};
use tracing::{debug, warn};

use super::error::CutoverError;
use super::pg_tls::RustlsMaker;
use super::target::{Target, Transport};

/// Connects to `target`, with TLS as its `sslmode` and the plan's password rule say; the
/// connection task logs when it ends with an error.
pub async fn connect(target: &Target, side: &str) -> Result<Client, CutoverError> {
    connect_as(target, side, "pgflip").await
}

/// [`connect`], showing `application_name` in `pg_stat_activity`.
pub async fn connect_as(target: &Target, side: &str, application_name: &str) -> Result<Client, CutoverError> {
    let transport = target.transport()?;
    let mut config = target.config.clone();
    config.application_name(application_name);
    let maker = RustlsMaker(target.tls.client.clone());
    let what = || format!("connecting to {side} ({})", target.describe_tls());
    let mode = match transport {
        Transport::Plain | Transport::PlainThenTls => SslMode::Disable,
        Transport::TlsIfOffered => SslMode::Prefer,
        Transport::Tls => SslMode::Require,
    };
    let result = open(config.ssl_mode(mode), maker.clone(), side).await;
    let refused_plain = |e: &tokio_postgres::Error| e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
    match result {
        Err(e) if transport == Transport::PlainThenTls && refused_plain(&e) => {
            debug!(side, error = %e, "the server refused a plain connection (sslmode=allow): trying TLS");
            open(config.ssl_mode(SslMode::Require), maker, side).await.map_err(CutoverError::sql(what()))
        }
        other => other.map_err(CutoverError::sql(what())),
    }
}

async fn open(config: &Config, maker: RustlsMaker, side: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(maker).await?;
    let side = side.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(side = %side, error = %e, "a controller connection ended");
        }
    });
    Ok(client)
}

/// The major version of `client`'s server.
pub async fn server_major(client: &Client, side: &str) -> Result<i32, CutoverError> {
    let row = client
        .query_one("SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4 / 10000", &[])
        .await
        .map_err(CutoverError::sql(format!("reading {side}'s version")))?;
    Ok(row.get(0))
}

/// Keeps the statements `client` sends next out of the server's log: for the statements
/// that carry a password (a subscription's connection string, a role's password). Sent on
/// its own, since a server logs a query string before it runs any of it. Needs a superuser,
/// as the statements it guards do.
pub async fn without_statement_logging(client: &Client, side: &str) -> Result<(), CutoverError> {
    client
        .batch_execute(
            "SET log_statement = 'none'; SET log_min_error_statement = 'panic'; \
             SET log_min_duration_statement = -1",
        )
        .await
        .map_err(CutoverError::sql(format!(
            "turning off statement logging on {side} (for a statement with a password)"
        )))
}

/// `statement` with the text of any `PASSWORD '...'` replaced by `'***'`, for messages.
pub fn redact_password(statement: &str) -> String {
    let upper = statement.to_ascii_uppercase();
    let Some(at) = upper.find("PASSWORD '") else { return statement.to_owned() };
    let start = at + "PASSWORD '".len();
    // The literal ends at a quote that is not doubled.
    let bytes = statement.as_bytes();
    let mut end = start;
    while end < bytes.len() {
        if bytes[end] == b'\'' {
            if bytes.get(end + 1) == Some(&b'\'') {
                end += 2;
                continue;
            }
            break;
        }
        end += 1;
    }
    format!("{}***{}", &statement[..start], redact_password(&statement[end.min(statement.len())..]))
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

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_left_out_of_messages() {
        let statement = "ALTER ROLE app WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc''d$x:y';";
        assert_eq!(super::redact_password(statement), "ALTER ROLE app WITH LOGIN PASSWORD '***';");
        assert_eq!(super::redact_password("CREATE ROLE ro;"), "CREATE ROLE ro;");
    }
}
