//! Moving a parked session to another server: open a connection with the client's own
//! startup packet, replay its session state, tell the client which server parameters
//! changed, and swap the connection in. The client keeps its connection and its
//! BackendKeyData; its cancel requests now reach the new server.

use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::proxy::cancel::CancelTarget;
use crate::proxy::context::ProxyContext;
use crate::proxy::io::write_all;
use crate::proxy::session::{Established, ServerGauge, SessionError};
use crate::proxy::upstream::{connect, ServerConn, Upstream};
use crate::wire::{backend, frontend};

/// True when losing the server now costs the client nothing: it is parked, so every
/// answer was delivered and its next request is still held.
pub(super) fn can_reconnect(s: &Established) -> bool {
    s.pump.is_parked()
}

/// Moves the session to `to`, which is at registry generation `generation`.
pub(super) async fn migrate(
    s: &mut Established,
    ctx: &ProxyContext,
    to: Arc<Upstream>,
    generation: u64,
) -> Result<(), SessionError> {
    let started = Instant::now();
    let login = ctx.login_for(&to, &s.user);
    let ServerConn { stream, params, backend_key, leftover } =
        connect(&to, &s.startup, &login, ctx.limits.connect_timeout).await.inspect_err(|e| {
            ctx.metrics.upstream_error(&to.name, e.kind());
        })?;

    // ParameterStatus the client has not seen with these values (server_version, ...).
    let mut out = Vec::new();
    for (name, value) in &params {
        if s.pump.client_param(name) != Some(value.as_str()) {
            backend::parameter_status(&mut out, name, value);
            s.pump.set_client_param(name, value);
        }
    }
    if !out.is_empty() {
        write_all(&mut s.client, &out).await.map_err(SessionError::ClientIo)?;
    }

    let mut old = std::mem::replace(&mut s.server, stream);
    if s.server_alive {
        let mut bye = Vec::with_capacity(5);
        frontend::terminate(&mut bye);
        let _ = write_all(&mut old, &bye).await;
    }
    drop(old);
    let from = std::mem::replace(&mut s.upstream, to.clone());
    s.server_alive = true;
    s.generation = generation;
    s.pump.reset_server(leftover);
    s.cancel.retarget(CancelTarget { upstream: to.clone(), pid: backend_key.0, key: backend_key.1 });
    s.server_gauge = ServerGauge::new(ctx.metrics.server_connections(&to.name));
    let info = s.pump.info();
    info.set_server_pid(backend_key.0);
    info.set_generation(generation);
    info!(
        from = %from.name,
        to = %to.name,
        server.pid = backend_key.0,
        duration_ms = started.elapsed().as_millis() as u64,
        "session moved"
    );
    Ok(())
}
