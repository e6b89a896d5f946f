//! Which parked sessions hold session advisory locks, asked once per pause: `pg_locks`
//! scans the server's whole lock table, too dear to read in every session's capture.

use std::collections::HashMap;
use std::sync::Arc;

use crate::proxy::capture::ADVISORY_HOLDERS_QUERY;
use crate::proxy::context::ProxyContext;
use crate::proxy::io::write_all;
use crate::proxy::switch::SessionInfo;
use crate::proxy::upstream::{connect, query, UpstreamError};
use crate::wire::frontend;

/// The backend pids on the active upstream that hold advisory locks, and how many each,
/// read on a connection opened as the first parked session's client. Empty when no
/// session is parked.
pub async fn holders(ctx: &ProxyContext, parked: &[Arc<SessionInfo>]) -> Result<HashMap<i32, u64>, UpstreamError> {
    let Some((startup, user)) = parked.iter().find_map(|s| s.login()) else {
        return Ok(HashMap::new());
    };
    let upstream = ctx.registry.active();
    let login = ctx.login_for(&upstream, user);
    let mut conn = connect(&upstream, startup, &login, ctx.limits.connect_timeout).await?;
    let answer = query::simple_query(&mut conn.stream, &upstream.name, ADVISORY_HOLDERS_QUERY).await;
    let mut bye = Vec::with_capacity(5);
    frontend::terminate(&mut bye);
    let _ = write_all(&mut conn.stream, &bye).await;
    let column = |row: &Vec<Option<String>>, i: usize| row.get(i)?.as_deref().map(str::to_owned);
    let parsed = |row: &Vec<Option<String>>| Some((column(row, 0)?.parse().ok()?, column(row, 1)?.parse().ok()?));
    Ok(answer?.rows.iter().filter_map(parsed).collect())
}
