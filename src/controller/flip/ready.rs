//! Whether a flip can finish, asked before it pauses anything: the link into the new side
//! is enabled with its apply worker running and its lag under `[catchup] max_lag_bytes`, and
//! every sidecar answers and knows the upstream it will be switched to. A flip that cannot
//! finish is refused with the reason, and no client waits for it.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::info;

use super::super::catchup::human_bytes;
use super::super::drift;
use super::super::error::CutoverError;
use super::super::fleet::Fleet;
use super::super::links::Link;
use super::CALL_DEADLINE;

/// How often readiness is asked again while it waits.
const TICK: Duration = Duration::from_millis(200);

/// A link's subscription, as the new side has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Subscription {
    /// There is none yet.
    Missing,
    /// Disabled with no slot: detached by pgflip, to be attached again.
    Detached,
    /// Disabled with its slot: an apply error stopped it (`disable_on_error`), or someone did.
    Stopped,
    Enabled,
}

/// The state of `link`'s subscription on its subscriber `new`.
pub(super) async fn subscription(new: &Client, link: Link<'_>) -> Result<Subscription, CutoverError> {
    let row = new
        .query_opt(
            "SELECT subenabled, subslotname IS NOT NULL FROM pg_catalog.pg_subscription WHERE subname = $1",
            &[&link.name],
        )
        .await
        .map_err(CutoverError::sql(format!("looking for subscription {} on {}", link.name, link.to)))?;
    Ok(match row.map(|r| (r.get::<_, bool>(0), r.get::<_, bool>(1))) {
        None => Subscription::Missing,
        Some((true, _)) => Subscription::Enabled,
        Some((false, false)) => Subscription::Detached,
        Some((false, true)) => Subscription::Stopped,
    })
}

/// Refuses a flip whose link into the new side was stopped: its changes are not arriving.
pub(super) async fn refuse_stopped(new: &Client, link: Link<'_>) -> Result<(), CutoverError> {
    match subscription(new, link).await? {
        Subscription::Stopped => Err(CutoverError::Refused(format!(
            "replication from {from} to {to} is disabled (subscription {name} on {to}, stopped by an apply \
             error or by hand: see {to}'s server log). Fix the cause, run `ALTER SUBSCRIPTION {name} ENABLE` \
             on {to}, and run again; nothing was paused",
            from = link.from,
            to = link.to,
            name = link.name
        ))),
        _ => Ok(()),
    }
}

/// Waits (until `deadline`) for the link's apply worker to run and its lag to fall under
/// `max_lag_bytes`; refuses the flip if it does not, or if the subscription stops.
pub(super) async fn wait_current(
    old: &Client,
    new: &Client,
    link: Link<'_>,
    max_lag_bytes: u64,
    deadline: Instant,
) -> Result<(), CutoverError> {
    let started = Instant::now();
    loop {
        if subscription(new, link).await? != Subscription::Enabled {
            return refuse_stopped(new, link).await.and(Err(CutoverError::Refused(format!(
                "replication from {} to {} was disabled while the flip was being prepared; nothing was paused",
                link.from, link.to
            ))));
        }
        let worker = apply_worker_running(new, link).await?;
        let lag = lag_bytes(old, link).await?;
        let syncing = drift::tables_syncing(new, link).await?;
        if worker && syncing.is_empty() && lag.is_some_and(|lag| lag <= max_lag_bytes as i64) {
            info!(
                link = link.name,
                lag_bytes = lag,
                waited_ms = started.elapsed().as_millis() as u64,
                "the link is current"
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            let lag = lag.map_or("unknown (no slot)".to_string(), human_bytes);
            let worker = if worker { "running" } else { "not running (see the server log)" };
            let syncing = match syncing.is_empty() {
                true => "no table still copying".to_owned(),
                false => format!(
                    "tables still copying: {} (a copy that fails is retried for ever: see {}'s server log)",
                    syncing.join(", "),
                    link.to
                ),
            };
            return Err(CutoverError::Refused(format!(
                "replication from {} to {} is not current enough to flip: lag {lag} ([catchup] \
                 max_lag_bytes = {max_lag_bytes}), {syncing}, apply worker on {} {worker}; nothing was paused",
                link.from, link.to, link.to
            )));
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn apply_worker_running(new: &Client, link: Link<'_>) -> Result<bool, CutoverError> {
    let row = new
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_stat_subscription WHERE subname = $1 AND relid IS NULL AND pid IS NOT NULL",
            &[&link.name],
        )
        .await
        .map_err(CutoverError::sql(format!("reading the apply worker of {} on {}", link.name, link.to)))?;
    Ok(row.get::<_, i64>(0) > 0)
}

/// How far the link's slot on `old` is behind `old`'s WAL; `None` without the slot.
async fn lag_bytes(old: &Client, link: Link<'_>) -> Result<Option<i64>, CutoverError> {
    let row = old
        .query_opt(
            "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&link.name],
        )
        .await
        .map_err(CutoverError::sql(format!("reading slot {} on {}", link.name, link.from)))?;
    Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).map(|lag| lag.max(0)))
}

/// Refuses the flip unless every sidecar answers and knows `target` as an upstream.
pub(super) async fn sidecars_ready(fleet: &Fleet, target: &str) -> Result<(), CutoverError> {
    let mut problems = Vec::new();
    for (sidecar, status) in fleet.sidecars.iter().zip(fleet.status(CALL_DEADLINE).await) {
        match status {
            Err(e) => problems.push(e.to_string()),
            Ok(status) if !status.upstreams.iter().any(|u| u.name == target) => {
                problems.push(format!("sidecar {sidecar} has no upstream {target}"))
            }
            Ok(status) if status.shutting_down => problems.push(format!("sidecar {sidecar} is shutting down")),
            Ok(_) => {}
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(CutoverError::Refused(format!(
            "not every sidecar can be switched to {target}; nothing was paused: {}",
            problems.join("; ")
        ))),
    }
}
