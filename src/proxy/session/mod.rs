//! One client session: startup, authentication, the server connection, and forwarding
//! until either side ends. One task per client.

mod client_auth;
mod error;
mod gauge;
mod handshake;
mod pump;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::{debug, info_span, warn, Instrument};

use prometheus::IntGauge;

use crate::proxy::cancel::{CancelHandle, CancelTarget};
use crate::proxy::context::ProxyContext;
use crate::proxy::io::write_all;
use crate::proxy::stream::{ClientStream, ServerStream};
use crate::proxy::upstream::{connect, ServerConn, Upstream};
use crate::wire::backend::{self, auth_code, Severity};

pub use error::SessionError;
pub use gauge::StateGauge;
use handshake::Accepted;
use pump::{Pump, PumpEnd};
pub use state::{SessionState, Tracker, TxStatus};

/// Serves one client connection to its end. Never panics on bad input; errors are
/// answered to the client where the protocol allows, then logged.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, ctx: Arc<ProxyContext>) {
    let span = info_span!("session", client.addr = %peer);
    let _ = tcp.set_nodelay(true);
    let entry = ctx.sessions.insert(peer);
    let gauge = StateGauge::new(ctx.metrics.clone(), entry, SessionState::Startup);
    let result = match establish(tcp, peer, &ctx, gauge).instrument(span.clone()).await {
        // Forwarding runs outside the span: entering it on every wake-up costs more than
        // the forwarding itself. Its end is logged inside the span.
        Ok(Some(session)) => forward(session, &ctx).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    let _entered = span.enter();
    match result {
        Ok(()) => debug!("session ended"),
        Err(SessionError::ClientClosed) => debug!("client closed the connection"),
        Err(e) => warn!(error = %e, side = e.side(), "session failed"),
    }
}

/// A session whose client and server are both ready for queries.
struct Established {
    client: ClientStream,
    server: ServerStream,
    upstream: Arc<Upstream>,
    pump: Pump,
    _cancel: CancelHandle,
    _server_gauge: ServerGauge,
}

/// Startup, client authentication and the upstream login. `None` for a cancel request.
async fn establish(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: &ProxyContext,
    mut gauge: StateGauge,
) -> Result<Option<Established>, SessionError> {
    let (mut client, startup, mut pending) = match handshake::accept(tcp, ctx).await {
        Ok(Accepted::Session { stream, startup, pending }) => (stream, startup, pending),
        Ok(Accepted::Cancelled) => return Ok(None),
        Err((e, mut stream)) => return Err(answer(&mut stream, ctx, e).await),
    };
    gauge.set(SessionState::Authenticating);
    let user = startup.param("user").unwrap_or_default().to_owned();
    if let Err(e) = client_auth::authenticate(&mut client, &mut pending, &user, peer, ctx).await {
        return Err(answer(&mut client, ctx, e).await);
    }

    let upstream = ctx.registry.active();
    let login = ctx.login_for(&upstream, &user);
    let server = match connect(&upstream, &startup, &login, ctx.limits.connect_timeout).await {
        Ok(server) => server,
        Err(e) => {
            ctx.metrics.upstream_error(&upstream.name, e.kind());
            return Err(answer(&mut client, ctx, e.into()).await);
        }
    };
    let ServerConn { stream: server_stream, params, backend_key, leftover } = server;
    let server_gauge = ServerGauge::new(ctx.metrics.server_connections(&upstream.name));
    gauge.info().set_server_pid(backend_key.0);
    let cancel =
        ctx.cancels.register(CancelTarget { upstream: upstream.clone(), pid: backend_key.0, key: backend_key.1 });
    debug!(upstream = %upstream.name, server.pid = backend_key.0, user = %login.user, "session established");

    let mut greeting = Vec::with_capacity(512);
    backend::authentication(&mut greeting, auth_code::OK, &[]);
    for (name, value) in &params {
        backend::parameter_status(&mut greeting, name, value);
    }
    let (pid, key) = cancel.client_key();
    backend::backend_key_data(&mut greeting, pid, key);
    backend::ready_for_query(&mut greeting, b'I');
    write_all(&mut client, &greeting).await.map_err(SessionError::ClientIo)?;

    let pump = Pump::new(pending, leftover, ctx.limits.max_message, gauge);
    Ok(Some(Established {
        client,
        server: server_stream,
        upstream,
        pump,
        _cancel: cancel,
        _server_gauge: server_gauge,
    }))
}

/// Forwards until either side ends, parking while the pause gate is closed.
async fn forward(session: Established, ctx: &ProxyContext) -> Result<(), SessionError> {
    let Established { mut client, mut server, upstream, mut pump, .. } = session;
    let mut gate = ctx.gate.subscribe();
    let kill = pump.info().kill.clone();
    loop {
        let end = tokio::select! {
            biased;
            end = pump.run(&mut client, &mut server, ctx) => end,
            // The pump reads the gate when it runs; a change only needs to wake it.
            _ = gate.changed() => continue,
            _ = kill.cancelled() => {
                if pump.client_at_message_start() {
                    let message = "terminating connection: pgflip could not wait for this session's transaction to end";
                    send_error(&mut client, ctx, Severity::Fatal, "57P01", message).await;
                }
                return Ok(());
            }
            _ = ctx.terminate.cancelled() => {
                if pump.client_at_message_start() {
                    let message = "terminating connection due to administrator command: pgflip is shutting down";
                    send_error(&mut client, ctx, Severity::Fatal, "57P01", message).await;
                }
                return Ok(());
            }
        };
        match end {
            PumpEnd::Parked => debug!(upstream = %upstream.name, "session parked"),
            end => return finish(end, &mut pump, &mut client, &upstream, ctx).await,
        }
    }
}

/// Handles the end of forwarding: tells the client what happened when the server vanished.
async fn finish(
    end: PumpEnd,
    pump: &mut Pump,
    client: &mut ClientStream,
    upstream: &Upstream,
    ctx: &ProxyContext,
) -> Result<(), SessionError> {
    match end {
        PumpEnd::Parked | PumpEnd::ClientTerminated => Ok(()),
        PumpEnd::ClientClosed => Err(SessionError::ClientClosed),
        PumpEnd::ClientIo(e) => Err(SessionError::ClientIo(e)),
        PumpEnd::ClientProtocol(e) => {
            let err = SessionError::ClientProtocol(e);
            if pump.client_at_message_start() {
                return Err(answer(client, ctx, err).await);
            }
            Err(err)
        }
        PumpEnd::ServerClosed { fatal: true } => {
            // The server said why (e.g. it was terminated) and that was forwarded.
            let _ = pump.drain_to_client(client).await;
            Ok(())
        }
        PumpEnd::ServerClosed { fatal: false } | PumpEnd::ServerIo(_) | PumpEnd::ServerProtocol(_) => {
            let err = match end {
                PumpEnd::ServerIo(source) => {
                    crate::proxy::upstream::UpstreamError::Io { upstream: upstream.name.clone(), source }
                }
                PumpEnd::ServerProtocol(source) => {
                    crate::proxy::upstream::UpstreamError::Protocol { upstream: upstream.name.clone(), source }
                }
                _ => crate::proxy::upstream::UpstreamError::Closed { upstream: upstream.name.clone() },
            };
            ctx.metrics.upstream_error(&upstream.name, err.kind());
            let _ = pump.drain_to_client(client).await;
            let err = SessionError::Upstream(err);
            if pump.client_at_message_start() {
                return Err(answer(client, ctx, err).await);
            }
            Err(err)
        }
    }
}

/// Sends the client the ErrorResponse for `err` (when it has a stream and a response),
/// counts it, and gives the error back for logging.
async fn answer(client: &mut ClientStream, ctx: &ProxyContext, err: SessionError) -> SessionError {
    if let SessionError::Upstream(e) = &err {
        if let Some(raw) = e.server_message() {
            ctx.metrics.client_error(e.sqlstate());
            let _ = write_all(client, raw).await;
            return err;
        }
    }
    if let Some((code, message)) = err.client_response() {
        send_error(client, ctx, Severity::Fatal, code, &message).await;
    }
    err
}

async fn send_error(client: &mut ClientStream, ctx: &ProxyContext, severity: Severity, code: &str, message: &str) {
    let mut out = Vec::with_capacity(64 + message.len());
    backend::error_response(&mut out, severity, code, message);
    ctx.metrics.client_error(code);
    let _ = write_all(client, &out).await;
}

/// Counts one open server connection in `pgflip_server_connections` until dropped.
struct ServerGauge(IntGauge);

impl ServerGauge {
    fn new(gauge: IntGauge) -> ServerGauge {
        gauge.inc();
        ServerGauge(gauge)
    }
}

impl Drop for ServerGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}
