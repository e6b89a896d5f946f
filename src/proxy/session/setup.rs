//! Opening a server connection for a session: log in, then read the connection's
//! settings before the client runs anything (the baseline a capture compares with), so
//! that capturing a parked session later costs one short round trip.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use crate::proxy::capture::{self, Baseline};
use crate::proxy::session::baselines::Baselines;
use crate::proxy::session::statements::Logged;
use crate::proxy::upstream::query::Conn;
use crate::proxy::upstream::{connect, query, Login, ServerConn, Upstream, UpstreamError};
use crate::wire::startup::StartupMessage;

/// Whether a connection's session state can be captured.
#[derive(Debug, Clone)]
pub(super) enum CaptureSetup {
    /// The baseline was read.
    Ready { baseline: Arc<Baseline> },
    /// Setting up failed with this message: the session works but cannot move.
    Failed(String),
}

/// A logged-in server connection and its capture setup.
pub(super) struct Opened {
    pub conn: ServerConn,
    pub setup: CaptureSetup,
    /// Statements prepared ahead of a move, before any of the session's state.
    pub prepared: Vec<Prepared>,
}

/// A statement prepared on a connection, with the parameter types the server settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Prepared {
    pub name: String,
    pub query: String,
    pub param_types: Vec<u32>,
}

/// Connects to `upstream` as `connect` does, then sets up capturing (its baseline shared
/// through `baselines`) and prepares `statements` (those the client's session declared: a
/// move that finds them ready and still right has less to do), all within `timeout`.
pub(super) async fn open(
    upstream: &Upstream,
    startup: &StartupMessage,
    login: &Login,
    timeout: Duration,
    statements: Vec<Logged>,
    baselines: &Baselines,
) -> Result<Opened, UpstreamError> {
    let mut conn = connect(upstream, startup, login, timeout).await?;
    if !conn.leftover.is_empty() {
        let setup = CaptureSetup::Failed("the server sent messages before the first query".into());
        return Ok(Opened { conn, setup, prepared: Vec::new() });
    }
    let timeout = upstream.url.connect_timeout.work_bound(timeout);
    let work = async {
        let mut on = conn.query(&upstream.name);
        let setup = set_up(&mut on, baselines).await?;
        let prepared = match setup {
            CaptureSetup::Ready { .. } if !statements.is_empty() => {
                let prepared = prepare(&mut on, &statements).await?;
                warm(&mut on, &prepared).await?;
                prepared
            }
            _ => Vec::new(),
        };
        Ok((setup, prepared))
    };
    let (setup, prepared) = match tokio::time::timeout(timeout, work).await {
        Ok(Ok(setup)) => setup,
        Ok(Err(e @ UpstreamError::Server { .. })) if !is_fatal(&e) => {
            warn!(upstream = %upstream.name, error = %e, "setting up state capture failed: this session cannot move");
            (CaptureSetup::Failed(e.to_string()), Vec::new())
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(UpstreamError::Timeout { upstream: upstream.name.clone(), addr: upstream.url.address() }),
    };
    Ok(Opened { conn, setup, prepared })
}

/// Prepares the logged statements; those the server refuses are left out.
async fn prepare(on: &mut Conn<'_>, statements: &[Logged]) -> Result<Vec<Prepared>, UpstreamError> {
    let asked: Vec<(&str, &str, &[u32])> =
        statements.iter().map(|s| (s.name.as_str(), s.query.as_str(), s.param_types.as_slice())).collect();
    let settled = query::prepare_all(on, &asked).await?;
    Ok(statements
        .iter()
        .zip(settled)
        .filter_map(|(s, types)| {
            types.map(|param_types| Prepared { name: s.name.clone(), query: s.query.clone(), param_types })
        })
        .collect())
}

/// Statements [`warm`] plans at most, in the order the client declared them.
const WARM_MAX: usize = 32;

/// Plans the statements made ahead without running them (`EXPLAIN EXECUTE` of their
/// generic plan, one Query each, pipelined), so that the new backend has read the tables'
/// metadata and statistics before the session's first query on it: on a fresh backend the
/// first execution of a statement costs several times the next ones, and a switch sends
/// every moved session's next query at once. EXPLAIN without ANALYZE executes nothing;
/// `lock_timeout` keeps a planning lock from waiting behind DDL. A statement that cannot be
/// planned this way (a utility statement, a privilege only a later `SET ROLE` gives) is
/// left cold: only a lost connection is an error.
async fn warm(on: &mut Conn<'_>, prepared: &[Prepared]) -> Result<(), UpstreamError> {
    let mut out = Vec::new();
    let mut units = 0;
    for statement in prepared.iter().take(WARM_MAX) {
        let nulls = vec!["NULL"; statement.param_types.len()].join(", ");
        let args = if nulls.is_empty() { String::new() } else { format!("({nulls})") };
        let sql = format!(
            "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL lock_timeout = '100ms'; \
             EXPLAIN EXECUTE {}{args}",
            capture::quote_ident(&statement.name)
        );
        query::put_query(&mut out, &sql);
        units += 1;
    }
    if units == 0 {
        return Ok(());
    }
    match query::pipeline(on, &out, units).await {
        Ok(_) => Ok(()),
        Err(e @ UpstreamError::Server { .. }) if !is_fatal(&e) => {
            debug!(upstream = on.upstream, error = %e, "a statement made ahead could not be planned ahead");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Reads the baseline.
async fn set_up(on: &mut Conn<'_>, baselines: &Baselines) -> Result<CaptureSetup, UpstreamError> {
    let answer = query::simple_query(on, &capture::baseline_query()).await?;
    let value = answer.rows.first().and_then(|row| row.first()).and_then(|v| v.as_deref());
    match Baseline::parse(value) {
        Ok(baseline) => Ok(CaptureSetup::Ready { baseline: baselines.share(baseline) }),
        Err(e) => Ok(CaptureSetup::Failed(format!("reading the connection's settings: {e}"))),
    }
}

fn is_fatal(e: &UpstreamError) -> bool {
    matches!(e, UpstreamError::Server { fields, .. } if fields.is_fatal())
}
