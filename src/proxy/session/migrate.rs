//! Moving a parked session to another server: open a connection with the client's own
//! startup packet, replay its session state, tell the client which server parameters
//! changed, and swap the connection in. The client keeps its connection and its
//! BackendKeyData; its cancel requests now reach the new server.

use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::proxy::cancel::CancelTarget;
use crate::proxy::capture::{self, SessionSnapshot};
use crate::proxy::context::ProxyContext;
use crate::proxy::io::write_all;
use crate::proxy::session::{Established, ServerGauge, SessionError};
use crate::proxy::stream::ServerStream;
use crate::proxy::upstream::{connect, query, ServerConn, Upstream, UpstreamError};
use crate::wire::{backend, frontend};

/// True when losing the server now costs the client nothing: it is parked (every answer
/// delivered, its next request held) and its state was captured.
pub(super) fn can_reconnect(s: &Established) -> bool {
    s.pump.is_parked() && s.snapshot.is_some()
}

/// Reads the parked session's state from its server, in one round trip the client never
/// sees. Notifications that arrive meanwhile are passed on to the client.
pub(super) async fn capture(s: &mut Established, ctx: &ProxyContext) -> Result<(), SessionError> {
    let mut names = ctx.track_settings.clone();
    names.extend(s.pump.custom_settings().iter().filter(|n| !names.contains(n)).cloned().collect::<Vec<_>>());
    let sql = capture::capture_query(&names);
    // The statements before the capture lifts the client's statement_timeout run under it:
    // a timeout of a millisecond or so can cancel one. Capturing again is harmless.
    let mut attempts = 0;
    let answer = loop {
        attempts += 1;
        match query::simple_query(&mut s.server, &s.upstream.name, &sql).await {
            Err(UpstreamError::Server { fields, .. }) if fields.code == "57014" && attempts < 4 => continue,
            other => break other?,
        }
    };
    if !answer.notifications.is_empty() {
        write_all(&mut s.client, &answer.notifications).await.map_err(SessionError::ClientIo)?;
    }
    let columns: Vec<Option<&str>> = answer.rows.iter().flatten().map(|c| c.as_deref()).collect();
    let snapshot = capture::parse_capture_row(&columns).map_err(|e| SessionError::State(e.to_string()))?;
    s.snapshot = Some(snapshot);
    Ok(())
}

/// Groups replay statements into as few Query messages as keep each PREPARE in a Query
/// of its own: PostgreSQL stores the whole Query text as the statement's text, and the
/// next move reads the PREPARE back out of it.
fn round_trips(statements: &[String]) -> Vec<String> {
    let mut queries = Vec::new();
    let mut batch: Vec<&str> = Vec::new();
    for statement in statements {
        if statement.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("PREPARE ")) {
            if !batch.is_empty() {
                queries.push(batch.join(";\n"));
                batch.clear();
            }
            queries.push(statement.clone());
        } else {
            batch.push(statement);
        }
    }
    if !batch.is_empty() {
        queries.push(batch.join(";\n"));
    }
    queries
}

/// Recreates the captured state on a new connection; returns the ParameterStatus values
/// the server reported while doing so.
async fn replay(
    stream: &mut ServerStream,
    upstream: &str,
    snapshot: &SessionSnapshot,
    login_user: &str,
) -> Result<Vec<(String, String)>, SessionError> {
    if !snapshot.unmovable.is_empty() {
        return Err(SessionError::State(format!("holds state that cannot move: {}", snapshot.unmovable.describe())));
    }
    let plan = capture::replay_statements(snapshot, login_user);
    if let Some(first) = plan.not_replayable.first() {
        return Err(SessionError::State(format!(
            "prepared statement {:?} cannot be recreated: {}",
            first.name, first.reason
        )));
    }
    let mut params = Vec::new();
    for sql in round_trips(&plan.statements) {
        params.extend(query::simple_query(stream, upstream, &sql).await?.params);
    }
    for statement in snapshot.protocol_statements() {
        let oids = query::type_oids(stream, upstream, &statement.param_types).await?;
        query::parse(stream, upstream, &statement.name, &statement.statement, &oids).await?;
    }
    Ok(params)
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
    let conn = match s.warm.take() {
        Some((warm_for, conn)) if warm_for.name == to.name && Arc::ptr_eq(&warm_for, &to) => conn,
        _ => connect(&to, &s.startup, &login, ctx.limits.connect_timeout).await.inspect_err(|e| {
            ctx.metrics.upstream_error(&to.name, e.kind());
        })?,
    };
    let ServerConn { mut stream, mut params, backend_key, leftover } = conn;
    let snapshot =
        s.snapshot.as_ref().ok_or_else(|| SessionError::State("it was not captured when the session parked".into()))?;
    params.extend(replay(&mut stream, &to.name, snapshot, &login.user).await?);

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
    // The snapshot still describes the session (it has run nothing since): a switch that
    // follows before it unparks can move it again without a new capture.
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
