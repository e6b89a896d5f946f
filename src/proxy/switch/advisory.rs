//! Which parked sessions hold session advisory locks, asked once per pause: `pg_locks`
//! scans the server's whole lock table, too dear to read in every session's capture.
//! The connection that asks is opened before a switch pauses, or when a pause begins
//! (while sessions drain), so that clients are not held for a login; it is closed once
//! they go on (see [`super::retire`]).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::proxy::capture::ADVISORY_HOLDERS_QUERY;
use crate::proxy::context::ProxyContext;
use crate::proxy::switch::SessionInfo;
use crate::proxy::upstream::{connect, query, ServerConn, Upstream, UpstreamError};

/// A connection to the active upstream, opened as one of its sessions' clients.
pub struct Probe {
    upstream: Arc<Upstream>,
    conn: JoinHandle<Result<ServerConn, UpstreamError>>,
}

impl Probe {
    /// Starts opening the connection, as the first session that has logged in; `None`
    /// when no session has.
    pub fn start(ctx: &Arc<ProxyContext>) -> Option<Probe> {
        let sessions = ctx.sessions.all();
        let main = sessions.iter().filter(|s| s.listener == crate::proxy::standby::Listener::Main);
        let (startup, user) = main.filter_map(|s| s.login()).next()?.clone();
        let upstream = ctx.registry.active();
        let login = ctx.login_for(&upstream, &user);
        let timeout = ctx.limits.connect_timeout;
        let target = upstream.clone();
        let conn = tokio::spawn(async move { connect(&target, &startup, &login, timeout).await });
        Some(Probe { upstream, conn })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // A pause given up before asking: the login in progress is not needed.
        self.conn.abort();
    }
}

/// The backend pids that hold advisory locks, and how many each, asked on `probe`'s
/// connection (or on one opened now, when the pause began before any session logged
/// in). Empty when no session is parked.
pub async fn holders(
    ctx: &Arc<ProxyContext>,
    probe: Option<Probe>,
    parked: &[Arc<SessionInfo>],
) -> Result<HashMap<i32, u64>, UpstreamError> {
    if parked.is_empty() {
        return Ok(HashMap::new());
    }
    let Some(mut probe) = probe.filter(|p| p.upstream.name == ctx.registry.active().name).or_else(|| Probe::start(ctx))
    else {
        return Ok(HashMap::new());
    };
    let mut conn = match (&mut probe.conn).await {
        Ok(conn) => conn?,
        Err(e) => {
            let source = std::io::Error::other(format!("the login task ended: {e}"));
            return Err(UpstreamError::Io { upstream: probe.upstream.name.clone(), source });
        }
    };
    let answer = query::simple_query(&mut conn.query(&probe.upstream.name), ADVISORY_HOLDERS_QUERY).await;
    super::retire(conn.stream, ctx, conn.backend_key.0);
    let column = |row: &Vec<Option<String>>, i: usize| row.get(i)?.as_deref().map(str::to_owned);
    let parsed = |row: &Vec<Option<String>>| Some((column(row, 0)?.parse().ok()?, column(row, 1)?.parse().ok()?));
    Ok(answer?.rows.iter().filter_map(parsed).collect())
}
