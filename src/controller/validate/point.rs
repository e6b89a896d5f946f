//! A consistent point for the validation: snapshots of blue and green that hold the same
//! data, while the application keeps its connections.
//!
//! After a cutover green serves and blue follows it by the reverse replication, a little
//! behind. Checks that read both sides live can only agree when no write is in flight.
//! So, for a moment: the fleet pauses (every session parks at a transaction boundary);
//! a marker is committed on green and the reverse slot must confirm its LSN, with the
//! marker on blue (blue has applied everything green committed); each side exports a
//! snapshot from a transaction that stays open; the fleet resumes. The checks then run,
//! each in its own read-only transaction on those snapshots, for as long as they take.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};
use tracing::{info, warn};

use crate::api::{OnTimeout, PauseRequest};
use crate::controller::error::CutoverError;
use crate::controller::fence;
use crate::controller::fleet::Fleet;
use crate::controller::pg;
use crate::controller::runner::Context;

/// The marker's generation column: 0 marks a validation point, not a flip.
const VALIDATION_MARKER: u64 = 0;
/// Longest wait for one admin call beyond its own deadline.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// Exported snapshots of both sides, valid while this value lives (their transactions
/// stay open on connections of their own).
pub struct MatchedSnapshots {
    pub blue: String,
    pub green: String,
    /// How long the fleet was paused to take them.
    pub pause: Duration,
    _holders: (Client, Client),
}

/// Pauses the fleet, waits until blue has applied all green committed, exports a snapshot
/// on each side and resumes the fleet, whatever happened in between.
pub async fn take(ctx: &Context, fleet: &Fleet) -> Result<MatchedSnapshots, CutoverError> {
    let cutover = &ctx.plan.cutover;
    let blue = pg::connect(&ctx.plan.blue_config(), "blue").await?;
    let green = pg::connect(&ctx.plan.green_config(), "green").await?;
    let lease = cutover.drain_timeout + cutover.catchup_timeout + CALL_DEADLINE;
    let pause = PauseRequest {
        drain_timeout_ms: Some(cutover.drain_timeout.as_millis() as u64),
        lease_ms: Some(lease.as_millis() as u64),
        on_timeout: Some(OnTimeout::Abort),
        ..PauseRequest::default()
    };
    let paused_at = Instant::now();
    let answers = fleet.pause(&pause, cutover.drain_timeout + CALL_DEADLINE).await;
    let taken = match answers.iter().find_map(|a| a.as_ref().err()) {
        Some(e) => Err(CutoverError::Refused(format!("pausing the fleet for a consistent point failed: {e}"))),
        None => export_matching(&blue, &green, &ctx.names.reverse, paused_at + lease - CALL_DEADLINE).await,
    };
    for failed in fleet.resume(CALL_DEADLINE).await.iter().filter_map(|a| a.as_ref().err()) {
        warn!(error = %failed, "resuming a sidecar failed; its pause lease resumes it");
    }
    let pause = paused_at.elapsed();
    let (blue_snapshot, green_snapshot) = taken?;
    info!(pause_ms = pause.as_millis() as u64, "validation point taken: blue holds all green committed");
    Ok(MatchedSnapshots { blue: blue_snapshot, green: green_snapshot, pause, _holders: (blue, green) })
}

/// The snapshots of blue and green, in that order.
async fn export_matching(
    blue: &Client,
    green: &Client,
    reverse_slot: &str,
    deadline: Instant,
) -> Result<(String, String), CutoverError> {
    let point = fence::mark(green, "green", VALIDATION_MARKER).await?;
    fence::wait_confirmed(green, blue, reverse_slot, &point, deadline).await?;
    Ok((export(blue, "blue").await?, export(green, "green").await?))
}

/// Opens a read-only repeatable-read transaction on `client` and exports its snapshot.
async fn export(client: &Client, side: &str) -> Result<String, CutoverError> {
    let sql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_catalog.pg_export_snapshot()";
    let messages =
        client.simple_query(sql).await.map_err(CutoverError::sql(format!("exporting a snapshot on {side}")))?;
    messages
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .ok_or_else(|| CutoverError::Refused(format!("exporting a snapshot on {side} returned nothing")))
}

/// The rows of `sql`, in a transaction of its own on `snapshot` when given.
pub(super) async fn rows_on(
    client: &Client,
    sql: &str,
    snapshot: Option<&str>,
) -> Result<Vec<super::TextRow>, tokio_postgres::Error> {
    let Some(snapshot) = snapshot else { return super::text_rows(client, sql).await };
    let rows = super::text_rows(client, &on_snapshot(snapshot, sql)).await;
    if rows.is_err() {
        // A failed statement leaves the transaction aborted; a lost connection shows here too.
        let _ = client.simple_query("ROLLBACK").await;
    }
    rows
}

/// `sql` wrapped to run in its own read-only transaction on `snapshot` (after an error,
/// the session is in a failed transaction: send `ROLLBACK`).
pub fn on_snapshot(snapshot: &str, sql: &str) -> String {
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {};\n{sql}\n;\nCOMMIT",
        crate::controller::pg::literal(snapshot)
    )
}
