//! The one `replication=database` connection the controller needs, through the project's
//! own wire code (tokio-postgres cannot open one): it creates the logical slot with an
//! exported snapshot and then stays idle, since any further command on it would end the
//! snapshot that `pg_dump --snapshot` reads.

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::target::{PlaintextPassword, Target, Transport};
use crate::tls::{MaybeTls, NegotiateError, Negotiated, ServerStream};
use crate::wire::backend::{self, put_message, AuthRequest, ErrorFields};
use crate::wire::startup::StartupMessage;
use crate::wire::{frontend, PROTOCOL_3_0};

/// Largest message read on the replication connection (its answers are a few rows).
const MAX_MESSAGE: usize = 1 << 20;

/// Why the replication connection or one of its commands failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("connecting to {addr} for replication: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("the replication connection supports TCP hosts only, got {0}")]
    Host(String),
    #[error("the replication connection was lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("server: {} {}: {}", .0.severity, .0.code, .0.message)]
    Server(ErrorFields),
    #[error("authentication for replication failed: {0}")]
    Auth(String),
    #[error("protocol violation on the replication connection: {0}")]
    Protocol(String),
    #[error(transparent)]
    PlaintextPassword(#[from] PlaintextPassword),
    #[error("TLS with {addr} for replication ({tls}): {source}")]
    Tls { addr: String, tls: String, source: NegotiateError },
    #[error("{addr} does not offer TLS, which the replication connection needs ({tls})")]
    TlsRefused { addr: String, tls: String },
}

/// What `CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// The LSN from which the slot streams changes (the snapshot's point).
    pub consistent_point: String,
    /// The exported snapshot, usable by `pg_dump --snapshot` while this connection idles.
    pub snapshot_name: String,
}

/// An open replication connection.
pub struct ReplicationConn {
    stream: ServerStream,
    buf: BytesMut,
}

impl ReplicationConn {
    /// Connects to `target`'s first host as its user, with `replication=database`, with TLS
    /// as its `sslmode` and the plan's password rule say.
    pub async fn connect(target: &Target) -> Result<ReplicationConn, ReplicationError> {
        match target.transport()? {
            Transport::PlainThenTls => match ReplicationConn::connect_with(target, Transport::Plain).await {
                Err(ReplicationError::Server(fields)) if fields.code == "28000" => {
                    debug!(error = %fields.message, "the server refused a plain connection (sslmode=allow): trying TLS");
                    ReplicationConn::connect_with(target, Transport::Tls).await
                }
                other => other,
            },
            transport => ReplicationConn::connect_with(target, transport).await,
        }
    }

    async fn connect_with(target: &Target, transport: Transport) -> Result<ReplicationConn, ReplicationError> {
        let config = &target.config;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(other) => return Err(ReplicationError::Host(format!("{other:?}"))),
            None => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| ReplicationError::Connect { addr: addr.clone(), source })?;
        tcp.set_nodelay(true)?;
        let stream = match transport {
            Transport::Plain | Transport::PlainThenTls => MaybeTls::Plain(tcp),
            Transport::Tls | Transport::TlsIfOffered => {
                let tls = || target.describe_tls();
                let setup_error = |reason: String| ReplicationError::Tls {
                    addr: addr.clone(),
                    tls: tls(),
                    source: NegotiateError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)),
                };
                let client = target.tls.client.clone().ok_or_else(|| setup_error("no TLS configuration".into()))?;
                let name = crate::tls::server_name(&host).map_err(setup_error)?;
                match crate::tls::request_tls(tcp, client, name).await {
                    Ok(Negotiated::Tls(stream)) => MaybeTls::Tls(stream),
                    Ok(Negotiated::Declined(tcp)) if transport == Transport::TlsIfOffered => MaybeTls::Plain(tcp),
                    Ok(Negotiated::Declined(_)) => return Err(ReplicationError::TlsRefused { addr, tls: tls() }),
                    Err(source) => return Err(ReplicationError::Tls { addr, tls: tls(), source }),
                }
            }
        };
        let mut conn = ReplicationConn { stream, buf: BytesMut::with_capacity(4096) };
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let mut params = vec![("user".to_owned(), user.clone())];
        if let Some(db) = config.get_dbname() {
            params.push(("database".to_owned(), db.to_owned()));
        }
        params.push(("replication".to_owned(), "database".to_owned()));
        params.push(("application_name".to_owned(), "pgflip".to_owned()));
        let mut out = Vec::new();
        StartupMessage { version: PROTOCOL_3_0, params }.encode(&mut out);
        conn.stream.write_all(&out).await?;
        let password = config.get_password().map(|p| p.to_vec());
        conn.authenticate(&user, password.as_deref()).await?;
        Ok(conn)
    }

    async fn authenticate(&mut self, user: &str, password: Option<&[u8]>) -> Result<(), ReplicationError> {
        let need = || ReplicationError::Auth("the server asks for a password and the URL has none".into());
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = read_message(&mut self.stream, &mut self.buf).await?;
            let mut out = Vec::new();
            match tag {
                backend::AUTHENTICATION => {
                    let request = AuthRequest::parse(&body).map_err(|e| ReplicationError::Protocol(e.to_string()))?;
                    match request {
                        AuthRequest::Ok => {}
                        AuthRequest::Cleartext => frontend::password_message(&mut out, password.ok_or_else(need)?),
                        AuthRequest::Md5 { salt } => {
                            let hash = md5_hash(user.as_bytes(), password.ok_or_else(need)?, salt);
                            frontend::password_message(&mut out, hash.as_bytes());
                        }
                        AuthRequest::Sasl { mechanisms } if mechanisms.contains(&"SCRAM-SHA-256") => {
                            let client = ScramSha256::new(password.ok_or_else(need)?, ChannelBinding::unsupported());
                            frontend::sasl_initial_response(&mut out, "SCRAM-SHA-256", client.message());
                            scram = Some(client);
                        }
                        AuthRequest::SaslContinue(data) => {
                            let client =
                                scram.as_mut().ok_or_else(|| ReplicationError::Auth("SASL out of order".into()))?;
                            client.update(data).map_err(|e| ReplicationError::Auth(e.to_string()))?;
                            frontend::sasl_response(&mut out, client.message());
                        }
                        AuthRequest::SaslFinal(data) => {
                            let client =
                                scram.as_mut().ok_or_else(|| ReplicationError::Auth("SASL out of order".into()))?;
                            client.finish(data).map_err(|e| ReplicationError::Auth(e.to_string()))?;
                        }
                        other => return Err(ReplicationError::Auth(format!("unsupported method {other:?}"))),
                    }
                }
                backend::ERROR_RESPONSE => return Err(server_error(&body)?),
                backend::READY_FOR_QUERY => return Ok(()),
                _ => {}
            }
            if !out.is_empty() {
                self.stream.write_all(&out).await?;
            }
        }
    }

    /// Runs one replication command; its rows, as text.
    async fn command(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, ReplicationError> {
        let mut out = Vec::new();
        put_message(&mut out, frontend::QUERY, |b| {
            b.extend_from_slice(sql.as_bytes());
            b.push(0);
        });
        self.stream.write_all(&out).await?;
        let mut rows = Vec::new();
        let mut failure = None;
        loop {
            let (tag, body) = read_message(&mut self.stream, &mut self.buf).await?;
            match tag {
                backend::DATA_ROW => {
                    rows.push(backend::parse_data_row(&body).map_err(|e| ReplicationError::Protocol(e.to_string()))?)
                }
                backend::ERROR_RESPONSE => failure = failure.or(Some(server_error(&body)?)),
                backend::READY_FOR_QUERY => return failure.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }

    /// Creates logical slot `name` (pgoutput) with an exported snapshot, in the command's
    /// syntax for a server of `server_version_num`. The snapshot lives while this connection
    /// stays open and idle.
    pub async fn create_slot_with_snapshot(
        &mut self,
        name: &str,
        server_version_num: i32,
    ) -> Result<CreatedSlot, ReplicationError> {
        let rows = self.command(&create_slot_command(name, server_version_num)).await?;
        let row =
            rows.first().ok_or_else(|| ReplicationError::Protocol("CREATE_REPLICATION_SLOT returned no row".into()))?;
        let column = |i: usize| {
            row.get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| ReplicationError::Protocol(format!("slot row lacks column {i}")))
        };
        Ok(CreatedSlot { slot_name: column(0)?, consistent_point: column(1)?, snapshot_name: column(2)? })
    }

    /// Ends the connection (and with it the exported snapshot).
    pub async fn close(mut self) {
        let mut out = Vec::new();
        frontend::terminate(&mut out);
        let _ = self.stream.write_all(&out).await;
    }
}

fn server_error(body: &[u8]) -> Result<ReplicationError, ReplicationError> {
    let fields = ErrorFields::parse(body).map_err(|e| ReplicationError::Protocol(e.to_string()))?;
    Ok(ReplicationError::Server(fields))
}

async fn read_message<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<(u8, Vec<u8>), ReplicationError> {
    loop {
        if buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if !(4..=MAX_MESSAGE).contains(&len) {
                return Err(ReplicationError::Protocol(format!("message length {len} out of range")));
            }
            if buf.len() > len {
                let tag = buf[0];
                buf.advance(5);
                let body = buf.split_to(len - 4).to_vec();
                return Ok((tag, body));
            }
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(ReplicationError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

/// `CREATE_REPLICATION_SLOT` exporting a snapshot: PostgreSQL 15 took the option list
/// (`(SNAPSHOT 'export')`); before it only the keyword form exists, and the option list is a
/// syntax error there.
fn create_slot_command(name: &str, server_version_num: i32) -> String {
    if server_version_num >= 150000 {
        format!("CREATE_REPLICATION_SLOT {name} LOGICAL pgoutput (SNAPSHOT 'export')")
    } else {
        format!("CREATE_REPLICATION_SLOT {name} LOGICAL pgoutput EXPORT_SNAPSHOT")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_slot_command_speaks_each_servers_syntax() {
        assert_eq!(
            super::create_slot_command("s", 150004),
            "CREATE_REPLICATION_SLOT s LOGICAL pgoutput (SNAPSHOT 'export')"
        );
        assert_eq!(
            super::create_slot_command("s", 130023),
            "CREATE_REPLICATION_SLOT s LOGICAL pgoutput EXPORT_SNAPSHOT"
        );
    }
}
