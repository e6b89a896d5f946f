//! PostgreSQL's way into TLS on a fresh TCP connection: an SSLRequest, the server's one-byte
//! answer (`S` or `N`), then the rustls handshake. The sidecar's upstream connections and
//! the controller's replication connection both go through here.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::wire::startup::ssl_request;

/// What the server made of the SSLRequest.
#[derive(Debug)]
pub enum Negotiated {
    /// It answered `S` and the handshake succeeded.
    Tls(Box<TlsStream<TcpStream>>),
    /// It answered `N`: the connection goes on in plain text, if the caller allows it.
    Declined(TcpStream),
}

/// Why the negotiation failed.
#[derive(Debug, thiserror::Error)]
pub enum NegotiateError {
    /// Writing the SSLRequest or reading the answer.
    #[error("{0}")]
    Io(std::io::Error),
    /// The server answered neither `S` nor `N`.
    #[error("the server answered the SSLRequest with {0:?}, neither S nor N")]
    Answer(char),
    /// The TLS handshake (certificate checks included).
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
}

/// Sends an SSLRequest on `tcp` and, when the server agrees, does the TLS handshake with
/// `config`, checking `server_name`.
pub async fn request_tls(
    mut tcp: TcpStream,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> Result<Negotiated, NegotiateError> {
    tcp.write_all(&ssl_request()).await.map_err(NegotiateError::Io)?;
    match tcp.read_u8().await.map_err(NegotiateError::Io)? {
        b'S' => {
            let tls = TlsConnector::from(config).connect(server_name, tcp).await.map_err(NegotiateError::Handshake)?;
            Ok(Negotiated::Tls(Box::new(tls)))
        }
        b'N' => Ok(Negotiated::Declined(tcp)),
        other => Err(NegotiateError::Answer(char::from(other))),
    }
}
