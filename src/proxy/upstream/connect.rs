//! Opening a server connection: TCP, optional TLS, StartupMessage, authentication, and
//! the server's ParameterStatus and BackendKeyData up to its first ReadyForQuery.

use std::fmt;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::proxy::io::{read_message, write_all, MAX_HANDSHAKE_MESSAGE};
use crate::proxy::stream::{MaybeTls, ServerStream};
use crate::proxy::upstream::auth::{AuthRefusal, Authenticator};
use crate::proxy::upstream::{Upstream, UpstreamError};
use crate::tls::{self, NegotiateError, Negotiated};
use crate::wire::backend::{self, AuthRequest, ErrorFields};
use crate::wire::startup::StartupMessage;

/// The user and password a session logs in to the upstream with.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: Option<String>,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A server connection ready for queries.
#[derive(Debug)]
pub struct ServerConn {
    pub stream: ServerStream,
    /// ParameterStatus values the server reported at startup, in order.
    pub params: Vec<(String, String)>,
    /// The server's BackendKeyData (pid, secret key), for cancel requests.
    pub backend_key: (i32, i32),
    /// Bytes the server sent after its first ReadyForQuery.
    pub leftover: BytesMut,
}

impl ServerConn {
    /// The connection, for the proxy's own statements ([`super::query`]), reading through
    /// `leftover`.
    pub fn query<'a>(&'a mut self, upstream: &'a str) -> super::query::Conn<'a> {
        super::query::Conn { stream: &mut self.stream, buf: &mut self.leftover, upstream }
    }
}

/// Connects to `upstream` and logs in, sending the client's startup parameters, within
/// the URL's `connect_timeout` (none for `connect_timeout=0`), else the sidecar's `timeout`.
pub async fn connect(
    upstream: &Upstream,
    startup: &StartupMessage,
    login: &Login,
    timeout: Duration,
) -> Result<ServerConn, UpstreamError> {
    let connecting = connect_inner(upstream, startup, login);
    let Some(timeout) = upstream.url.connect_timeout.login_bound(timeout) else {
        return connecting.await;
    };
    match tokio::time::timeout(timeout, connecting).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout { upstream: upstream.name.clone(), addr: upstream.url.address() }),
    }
}

/// Opens TCP and, when the upstream's sslmode asks for it, TLS.
pub(crate) async fn open_stream(upstream: &Upstream) -> Result<ServerStream, UpstreamError> {
    let name = || upstream.name.clone();
    let addr = upstream.url.address();
    let tcp = TcpStream::connect(&addr).await.map_err(|source| UpstreamError::Connect {
        upstream: name(),
        addr: addr.clone(),
        source,
    })?;
    tcp.set_nodelay(true).map_err(|source| UpstreamError::Io { upstream: name(), source })?;
    let Some((config, server_name)) = &upstream.tls else {
        return Ok(MaybeTls::Plain(tcp));
    };
    match tls::request_tls(tcp, config.clone(), server_name.clone()).await {
        Ok(Negotiated::Tls(tls)) => Ok(MaybeTls::Tls(tls)),
        Ok(Negotiated::Declined(_)) | Err(NegotiateError::Answer(_)) => {
            Err(UpstreamError::TlsRefused { upstream: name() })
        }
        Err(NegotiateError::Io(source)) => Err(UpstreamError::Io { upstream: name(), source }),
        Err(NegotiateError::Handshake(source)) => Err(UpstreamError::Tls { upstream: name(), source }),
    }
}

async fn connect_inner(
    upstream: &Upstream,
    startup: &StartupMessage,
    login: &Login,
) -> Result<ServerConn, UpstreamError> {
    let name = upstream.name.as_str();
    let mut stream = open_stream(upstream).await?;
    let io_err = |source| UpstreamError::Io { upstream: name.to_owned(), source };

    let mut out = Vec::with_capacity(256);
    upstream_startup(startup, login, upstream).encode(&mut out);
    write_all(&mut stream, &out).await.map_err(io_err)?;

    let mut buf = BytesMut::with_capacity(4096);
    let mut auth = Authenticator::new(upstream, login, matches!(stream, MaybeTls::Tls(_)));
    let mut params = Vec::new();
    let mut backend_key = (0, 0);
    loop {
        let (tag, body) = read_message(&mut stream, &mut buf, MAX_HANDSHAKE_MESSAGE)
            .await
            .map_err(|e| UpstreamError::from_read(name, e))?;
        let protocol = |source| UpstreamError::Protocol { upstream: name.to_owned(), source };
        // Before AuthenticationOk, the server may only ask, refuse, or notice.
        let may_precede_ok = matches!(
            tag,
            backend::AUTHENTICATION
                | backend::ERROR_RESPONSE
                | backend::NOTICE_RESPONSE
                | backend::NEGOTIATE_PROTOCOL_VERSION
        );
        if !auth.is_done() && !may_precede_ok {
            let reason = AuthRefusal::OutOfOrder("the server went on without AuthenticationOk");
            return Err(UpstreamError::AuthRefused { upstream: name.to_owned(), reason });
        }
        match tag {
            backend::AUTHENTICATION => {
                let request = AuthRequest::parse(&body).map_err(protocol)?;
                out.clear();
                auth.answer(request, &mut out)?;
                if !out.is_empty() {
                    write_all(&mut stream, &out).await.map_err(io_err)?;
                }
            }
            backend::PARAMETER_STATUS => {
                let (k, v) = backend::parse_parameter_status(&body).map_err(protocol)?;
                params.push((k.to_owned(), v.to_owned()));
            }
            backend::BACKEND_KEY_DATA => backend_key = backend::parse_backend_key_data(&body).map_err(protocol)?,
            backend::ERROR_RESPONSE => {
                let fields = ErrorFields::parse(&body).map_err(protocol)?;
                let mut raw = Vec::with_capacity(body.len() + 5);
                backend::put_message(&mut raw, tag, |b| b.extend_from_slice(&body));
                return Err(UpstreamError::Server { upstream: name.to_owned(), fields, raw });
            }
            backend::READY_FOR_QUERY => {
                return Ok(ServerConn { stream, params, backend_key, leftover: buf });
            }
            // NoticeResponse and NegotiateProtocolVersion need no answer.
            backend::NOTICE_RESPONSE | backend::NEGOTIATE_PROTOCOL_VERSION => {}
            other => return Err(protocol(crate::wire::WireError::UnexpectedTag(other as char))),
        }
    }
}

/// The StartupMessage sent upstream: the client's parameters with the login's user,
/// without protocol extension options (`_pq_.*`), which the proxy declined.
fn upstream_startup(client: &StartupMessage, login: &Login, upstream: &Upstream) -> StartupMessage {
    let mut params: Vec<(String, String)> =
        client.params.iter().filter(|(k, _)| k != "user" && !k.starts_with("_pq_.")).cloned().collect();
    if client.param("database").is_none() {
        let db = upstream.url.database.clone().or_else(|| client.param("user").map(str::to_owned));
        if let Some(db) = db {
            params.push(("database".to_owned(), db));
        }
    }
    params.insert(0, ("user".to_owned(), login.user.clone()));
    StartupMessage { version: crate::wire::PROTOCOL_3_0, params }
}
