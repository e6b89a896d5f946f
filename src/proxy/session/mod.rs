//! One client session: startup, authentication, the server connection, and forwarding
//! until either side ends. One task per client.

mod admission;
mod baselines;
mod client_auth;
mod custom_gucs;
mod error;
mod forward;
mod gauge;
mod half;
mod handshake;
mod migrate;
mod pump;
mod setup;
mod shapes;
mod state;
mod statements;
mod target;
mod translate;

use std::sync::Arc;

use tracing::{debug, info_span, warn, Instrument};

use prometheus::IntGauge;

use crate::proxy::cancel::{CancelHandle, CancelTarget, HeldCancel};
use crate::proxy::context::ProxyContext;
use crate::proxy::io::write_all;
use crate::proxy::metrics::ClientLimit;
use crate::proxy::peer::Peer;
use crate::proxy::standby::Listener;
use crate::proxy::stream::{ClientStream, ServerStream};
use crate::proxy::upstream::{ServerConn, Upstream};
use crate::wire::backend::{self, auth_code, Severity};
use crate::wire::startup::StartupMessage;
use crate::wire::WireError;

pub use admission::{Admission, LoggingIn};
pub use baselines::Baselines;
pub use error::SessionError;
pub use gauge::StateGauge;
use handshake::Accepted;
use pump::Pump;
pub use state::{SessionState, Tracker, TxStatus};

/// Serves one client connection to its end. Never panics on bad input; errors are
/// answered to the client where the protocol allows, then logged. `login` is the
/// connection's place among those logging in, taken when it was accepted.
pub async fn serve(stream: ClientStream, peer: Peer, ctx: Arc<ProxyContext>, listener: Listener, login: LoggingIn) {
    let span = match listener {
        Listener::Main => info_span!("session", client.addr = %peer),
        Listener::Standby => info_span!("session", client.addr = %peer, listener = "standby"),
    };
    if let ClientStream::Tcp(tcp) = &stream {
        let _ = tcp.set_nodelay(true);
    }
    let entry = ctx.sessions.insert(peer, listener);
    let gauge = StateGauge::new(ctx.metrics.clone(), entry, SessionState::Startup);
    // Boxed: logging in takes far more room than forwarding, and the task keeps the
    // room of its largest state for its whole life.
    let result = match Box::pin(establish(stream, peer, &ctx, gauge, listener, login)).instrument(span.clone()).await {
        // Forwarding runs outside the span: entering it on every wake-up costs more than
        // the forwarding itself. Its end is logged inside the span.
        Ok(Some(session)) => forward::forward(session, &ctx).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(SessionError::ClientProtocol(WireError::LengthTooLarge { .. } | WireError::StartupLength(_))) = &result {
        ctx.metrics.client_limit(ClientLimit::MessageSize);
    }
    let _entered = span.enter();
    match result {
        Ok(()) => debug!("session ended"),
        Err(SessionError::ClientClosed) => debug!("client closed the connection"),
        // Counted in pgflip_client_limits_total; a flood would flood the log too.
        Err(e @ SessionError::Shed { .. }) => debug!(error = %e, "client turned away by a limit"),
        Err(e) => warn!(error = %e, side = e.side(), "session failed"),
    }
}

/// A session whose client and server are both ready for queries.
struct Established {
    /// The listener the client came in by: it decides which upstream the session is on.
    listener: Listener,
    /// The standby refused this session's login lately: it stays on the fallback meanwhile.
    standby_refused: target::Refusal,
    client: ClientStream,
    server: ServerStream,
    /// False once the server connection was lost while parked: the session reconnects
    /// when it resumes.
    server_alive: bool,
    upstream: Arc<Upstream>,
    /// The upstream the session logged in to: its client knows that side's OIDs.
    home: String,
    /// The home side's catalog, from the first move away from it on.
    home_catalog: Option<Arc<crate::proxy::oids::Catalog>>,
    /// Registry generation when the server connection was opened.
    generation: u64,
    /// The client's StartupMessage, replayed to every new server.
    startup: StartupMessage,
    user: String,
    /// Whether the server connection's session state can be captured.
    capture_setup: setup::CaptureSetup,
    /// A connection opened ahead of a switch, to the upstream it names.
    warm: Option<(Arc<Upstream>, setup::Opened)>,
    /// State captured at the last park, replayed on the next server.
    snapshot: Option<crate::proxy::capture::SessionSnapshot>,
    /// The server pid and the client bytes forwarded to it when `snapshot` was read: while
    /// both are the same, the session has run nothing since and the snapshot still holds.
    captured_at: Option<(i32, u64)>,
    pump: Pump,
    cancel: CancelHandle,
    server_gauge: HeldGauge,
    /// Counts the session in `pgflip_translated_sessions` while it is away from home.
    translated_gauge: Option<HeldGauge>,
    /// The session's place among `max_client_connections`.
    _place: admission::ClientPlace,
}

impl Established {
    /// Records that the session's server is right for registry generation `generation`.
    fn adopt_generation(&mut self, generation: u64) {
        if generation != self.generation {
            self.generation = generation;
            self.pump.info().set_generation(generation);
        }
    }
}

/// Startup, client authentication and the upstream login. `None` for a cancel request.
async fn establish(
    stream: ClientStream,
    peer: Peer,
    ctx: &ProxyContext,
    mut gauge: StateGauge,
    listener: Listener,
    login: LoggingIn,
) -> Result<Option<Established>, SessionError> {
    let (mut client, mut startup, mut pending) = match handshake::accept(stream, ctx, &login).await {
        Ok(Accepted::Session { stream, startup, pending }) => (stream, startup, pending),
        Ok(Accepted::Cancelled) => return Ok(None),
        Err((e, Some(mut stream))) => return Err(answer(&mut stream, ctx, e).await),
        Err((e, None)) => return Err(e),
    };
    // Checked once the client has said who it is, as PostgreSQL does.
    let limits = *login.admission().limits();
    let Some(place) = login.admission().admit_client() else {
        let message =
            format!("sorry, too many clients already (pgflip serves {}: max_client_connections)", limits.max_clients);
        return Err(answer(&mut client, ctx, SessionError::Shed { code: "53300", message }).await);
    };
    gauge.set(SessionState::Authenticating);
    let user = startup.param("user").unwrap_or_default().to_owned();
    match login.bound(client_auth::authenticate(&mut client, &mut pending, &user, peer, ctx)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(answer(&mut client, ctx, e).await),
        Err(cut) => return Err(answer(&mut client, ctx, cut.error(&limits)).await),
    }
    // Logged in: the upstream login that follows is bounded by connect_timeout.
    drop(login);

    if listener == Listener::Standby {
        target::read_only(&mut startup);
    }
    let first = match target::open_current(ctx, listener, &startup, &user).await {
        Ok(first) => first,
        Err(e) => return Err(answer(&mut client, ctx, e).await),
    };
    let (upstream, generation, standby_refused) = (first.upstream, first.generation, first.refusal);
    let login = ctx.login_for(&upstream, &user);
    let (server, capture_setup) = (first.opened.conn, first.opened.setup);
    let ServerConn { stream: server_stream, params, backend_key, leftover } = server;
    let server_gauge = HeldGauge::new(ctx.metrics.server_connections(&upstream.name));
    gauge.info().set_server_pid(backend_key.0);
    gauge.info().set_login(startup.clone(), user.clone());
    gauge.info().set_generation(generation);
    let held = Arc::new(HeldCancel::default());
    let cancel = ctx
        .cancels
        .register(CancelTarget { upstream: upstream.clone(), pid: backend_key.0, key: backend_key.1 }, held.clone());
    debug!(upstream = %upstream.name, server.pid = backend_key.0, user = %login.user, "session established");

    let mut greeting = Vec::with_capacity(512);
    backend::authentication(&mut greeting, auth_code::OK, &[]);
    for (name, value) in &params {
        backend::parameter_status(&mut greeting, name, value);
    }
    let (pid, key) = cancel.client_key();
    backend::backend_key_data(&mut greeting, pid, key);
    backend::ready_for_query(&mut greeting, b'I');
    // Idle in the session table before the client can see ReadyForQuery: a pause that
    // follows at once must wait for this session to park.
    let pump = Pump::new(pending, leftover, &ctx.limits, gauge, params, held);
    write_all(&mut client, &greeting).await.map_err(SessionError::ClientIo)?;
    Ok(Some(Established {
        listener,
        standby_refused,
        client,
        server: server_stream,
        server_alive: true,
        home: upstream.name.clone(),
        home_catalog: None,
        upstream,
        generation,
        startup,
        user,
        snapshot: None,
        captured_at: None,
        capture_setup,
        warm: None,
        pump,
        cancel,
        server_gauge,
        translated_gauge: None,
        _place: place,
    }))
}

/// Sends the client the ErrorResponse for `err` (when it has a stream and a response),
/// counts it, and gives the error back for logging.
pub(super) async fn answer(client: &mut ClientStream, ctx: &ProxyContext, err: SessionError) -> SessionError {
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

pub(super) async fn send_error(
    client: &mut ClientStream,
    ctx: &ProxyContext,
    severity: Severity,
    code: &str,
    message: &str,
) {
    let mut out = Vec::with_capacity(64 + message.len());
    backend::error_response(&mut out, severity, code, message);
    ctx.metrics.client_error(code);
    let _ = write_all(client, &out).await;
}

/// Counts one in a gauge until dropped: an open server connection in
/// `pgflip_server_connections`, a translated session in `pgflip_translated_sessions`.
pub(super) struct HeldGauge(IntGauge);

impl HeldGauge {
    pub(super) fn new(gauge: IntGauge) -> HeldGauge {
        gauge.inc();
        HeldGauge(gauge)
    }
}

impl Drop for HeldGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}
