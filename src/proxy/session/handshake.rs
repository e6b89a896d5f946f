//! The client's startup phase: SSL and GSS negotiation, CancelRequest, and the
//! StartupMessage with protocol version negotiation.

use bytes::BytesMut;
use tracing::debug;

use crate::proxy::cancel;
use crate::proxy::context::ProxyContext;
use crate::proxy::io::{read_startup, write_all};
use crate::proxy::session::admission::LoggingIn;
use crate::proxy::session::SessionError;
use crate::proxy::stream::ClientStream;
use crate::wire::backend;
use crate::wire::startup::{StartupMessage, StartupPacket};
use crate::wire::DEFAULT_MAX_STARTUP;

/// The outcome of the startup phase.
pub enum Accepted {
    /// A client that wants a session.
    Session { stream: ClientStream, startup: StartupMessage, pending: BytesMut },
    /// A cancel request, already handled; the connection is done.
    Cancelled,
}

/// What one startup packet leads to.
enum Step {
    /// Read the next packet.
    Again,
    /// Answered 'S' to an SSLRequest: run the TLS handshake, then read the next packet.
    StartTls,
    Session(StartupMessage),
    Cancelled,
}

/// Runs the startup phase on a new connection, within the bounds of its `login`. On
/// failure the stream comes back, so the caller can answer the client, unless it was lost
/// in the middle of a TLS handshake.
pub async fn accept(
    mut stream: ClientStream,
    ctx: &ProxyContext,
    login: &LoggingIn,
) -> Result<Accepted, (SessionError, Option<ClientStream>)> {
    // Empty until the client sends something: a connection that sends nothing holds little.
    let mut buf = BytesMut::new();
    loop {
        let stepped = match login.bound(step(&mut stream, &mut buf, ctx)).await {
            Ok(stepped) => stepped,
            Err(cut) => return Err((cut.error(login.admission().limits()), Some(stream))),
        };
        match stepped {
            Ok(Step::Again) => {}
            Ok(Step::StartTls) => {
                let (ClientStream::Tcp(tcp), Some(acceptor)) = (stream, &ctx.tls_acceptor) else {
                    unreachable!("TLS is offered only on a plain TCP stream with an acceptor");
                };
                stream = match login.bound(acceptor.accept(tcp).into_fallible()).await {
                    Ok(Ok(tls)) => ClientStream::Tls(Box::new(tls)),
                    Ok(Err((e, tcp))) => return Err((SessionError::ClientTls(e), Some(ClientStream::Tcp(tcp)))),
                    // Half a TLS handshake: no message can reach the client.
                    Err(cut) => return Err((cut.error(login.admission().limits()), None)),
                };
            }
            Ok(Step::Session(startup)) => return Ok(Accepted::Session { stream, startup, pending: buf }),
            Ok(Step::Cancelled) => return Ok(Accepted::Cancelled),
            Err(e) => return Err((e, Some(stream))),
        }
    }
}

async fn step(stream: &mut ClientStream, buf: &mut BytesMut, ctx: &ProxyContext) -> Result<Step, SessionError> {
    let packet = read_startup(stream, buf, DEFAULT_MAX_STARTUP).await.map_err(SessionError::from_client_read)?;
    match packet {
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
            if !buf.is_empty() {
                // Bytes sent before the TLS handshake could be injected by a third party.
                return Err(refused("08P01", "received unencrypted data after an encryption request".into()));
            }
            // Over TCP only: a Unix-domain socket is local, and PostgreSQL offers no TLS there.
            let offer_tls = packet == StartupPacket::SslRequest
                && ctx.tls_acceptor.is_some()
                && matches!(stream, ClientStream::Tcp(_));
            let answer = if offer_tls { b"S" } else { b"N" };
            write_all(stream, answer).await.map_err(SessionError::ClientIo)?;
            Ok(if offer_tls { Step::StartTls } else { Step::Again })
        }
        StartupPacket::Cancel { pid, key } => {
            match ctx.cancels.cancel(pid, key) {
                Some(target) => {
                    if let Err(e) = cancel::forward(&target, ctx.limits.connect_timeout).await {
                        ctx.metrics.upstream_error(&target.upstream.name, e.kind());
                        debug!(error = %e, "cancel forwarding failed");
                    }
                }
                None => debug!(pid, "cancel request for a held request or an unknown key"),
            }
            Ok(Step::Cancelled)
        }
        StartupPacket::Startup(startup) => {
            if startup.major() != 3 {
                let (major, minor) = (startup.major(), startup.minor());
                return Err(refused(
                    "0A000",
                    format!("unsupported frontend protocol {major}.{minor}: pgflip supports 3.0"),
                ));
            }
            let unknown: Vec<&str> =
                startup.params.iter().map(|(k, _)| k.as_str()).filter(|k| k.starts_with("_pq_.")).collect();
            if startup.minor() > 0 || !unknown.is_empty() {
                let mut out = Vec::new();
                backend::negotiate_protocol_version(&mut out, 0, &unknown);
                write_all(stream, &out).await.map_err(SessionError::ClientIo)?;
            }
            if startup.param("user").is_none_or(str::is_empty) {
                return Err(refused("28000", "no PostgreSQL user name specified in startup packet".into()));
            }
            Ok(Step::Session(startup))
        }
    }
}

fn refused(code: &'static str, message: String) -> SessionError {
    SessionError::Refused { code, message }
}
