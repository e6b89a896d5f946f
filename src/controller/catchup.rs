//! The catch-up phase: a subscription on green that streams from the slot the snapshot
//! made, a heartbeat written on blue every second, and lag watched until it stays under
//! the plan's thresholds. The subscription keeps running when the phase ends. Green, the
//! standby meanwhile, is reported to the sidecars with its lag at most once a second.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::api::StandbyState;

use super::drift;
use super::error::CutoverError;
use super::pg::{self, ident, literal};
use super::phase::Phase;
use super::runner::Context;
use super::standby::Reporter;

/// How often lag is measured.
const TICK: Duration = Duration::from_millis(500);
/// Slot WAL retention left under which a warning is logged.
const LOW_SAFE_WAL: i64 = 1 << 30;

/// One lag measurement.
#[derive(Debug, Clone, Copy)]
struct Lag {
    bytes: i64,
    seconds: f64,
}

pub async fn run(ctx: &mut Context) -> Result<(), CutoverError> {
    let blue = pg::connect(&ctx.plan.blue_config(), "blue").await?;
    let green = pg::connect(&ctx.plan.green_config(), "green").await?;
    subscribe(ctx, &green).await?;
    let slot = ctx.names.forward.clone();
    let heartbeat = spawn_heartbeat(pg::connect(&ctx.plan.blue_config(), "blue").await?);
    let mut standby = Reporter::start(&ctx.plan.cutover, ctx.plan.cutover.upstream_name("green")).await;

    let catchup = &ctx.plan.catchup;
    let (max_bytes, max_seconds) = (catchup.max_lag_bytes as i64, catchup.max_lag.as_secs_f64());
    let stable = catchup.stable;
    let deadline = Instant::now() + catchup.timeout;
    let (mut under_since, mut last_log, mut warned) = (None::<Instant>, Instant::now(), false);
    let mut drift = DriftWatch::default();
    let result = loop {
        let syncing = match drift.check(ctx, &blue, &green).await {
            Ok(syncing) => syncing,
            Err(e) => break Err(e),
        };
        let lag = match measure(&blue, &green, &slot).await {
            Ok(lag) => lag,
            Err(e) => break Err(e),
        };
        ctx.metrics.lag_bytes.set(lag.bytes);
        ctx.metrics.lag_seconds.set(lag.seconds);
        // f64::MAX stands for a heartbeat green does not have yet: unknown.
        standby.offer(StandbyState::Replicating, Some(lag.seconds).filter(|s| *s < f64::MAX)).await;
        if let Some(safe) = safe_wal(&blue, &slot).await? {
            if safe < LOW_SAFE_WAL && !warned {
                warn!(
                    safe_wal_size = safe,
                    "the slot's WAL retention is running low: catch up soon or raise max_slot_wal_keep_size"
                );
                warned = true;
            }
        }
        if !subscription_enabled(&green, &slot).await? {
            break Err(CutoverError::Catchup(
                "the subscription on green stopped on an apply error (disable_on_error); see green's server log".into(),
            ));
        }
        let under = lag.bytes <= max_bytes && lag.seconds <= max_seconds && syncing == 0;
        under_since = if under { under_since.or(Some(Instant::now())) } else { None };
        let held = under_since.map(|t| t.elapsed()).unwrap_or_default();
        let drawn = ctx.progress.live(format_args!(
            "catch-up: lag {} ({:.1} s), under the thresholds for {:.0} s of {:.0}",
            human_bytes(lag.bytes),
            lag.seconds,
            held.as_secs_f64(),
            stable.as_secs_f64()
        ));
        if !drawn && last_log.elapsed() >= Duration::from_secs(5) {
            info!(lag_bytes = lag.bytes, lag_seconds = lag.seconds, "catching up");
            last_log = Instant::now();
        }
        if held >= stable {
            break Ok(lag);
        }
        if Instant::now() >= deadline {
            break Err(CutoverError::Catchup(format!(
                "lag did not stay under {max_bytes} bytes and {max_seconds} s within [catchup] timeout_seconds = {}",
                crate::duration::display(catchup.timeout)
            )));
        }
        tokio::time::sleep(TICK).await;
    };
    heartbeat.abort();
    ctx.progress.end_live();
    let lag = result?;
    ctx.journal.set_fact(Phase::Catchup, "lag_bytes", json!(lag.bytes))?;
    ctx.journal.set_fact(Phase::Catchup, "lag_seconds", json!(lag.seconds))?;
    info!(lag_bytes = lag.bytes, lag_seconds = lag.seconds, "green has caught up; the subscription keeps running");
    ctx.progress.line(format_args!(
        "catch-up: green has caught up (lag {}, {:.1} s); the subscription keeps running",
        human_bytes(lag.bytes),
        lag.seconds
    ));
    Ok(())
}

/// Schema drift watched during catch-up: every [`DRIFT_EVERY`] the publication is
/// compared with what green applies, green's subscription refreshed for tables made on
/// both sides, and tables only blue has reported (once per change).
#[derive(Default)]
struct DriftWatch {
    last: Option<Instant>,
    missing: Vec<String>,
    syncing: i64,
}

/// How often catch-up looks for schema drift.
const DRIFT_EVERY: Duration = Duration::from_secs(5);

impl DriftWatch {
    /// Returns how many tables green is still copying.
    async fn check(&mut self, ctx: &Context, blue: &Client, green: &Client) -> Result<i64, CutoverError> {
        if self.last.is_some_and(|t| t.elapsed() < DRIFT_EVERY) && self.syncing == 0 {
            return Ok(0);
        }
        self.last = Some(Instant::now());
        let blue_target = ctx.plan.blue_config();
        let own = drift::OwnCopy {
            publisher: &blue_target,
            ddl: &ctx.plan.ddl,
            confirm_within: ctx.plan.cutover.catchup_timeout,
        };
        let found = drift::reconcile(blue, green, ctx.names.forward(), &own).await?;
        for table in &found.refreshed {
            ctx.progress.line(format_args!("catch-up: green now applies {table} (made on both sides)"));
        }
        if found.missing != self.missing && !found.missing.is_empty() {
            ctx.progress.line(format_args!(
                "catch-up: blue has tables green lacks, whose writes cannot reach it: {}; create them on green",
                found.missing.join(", ")
            ));
        }
        self.missing = found.missing;
        self.syncing = drift::tables_syncing(green, ctx.names.forward()).await?.len() as i64;
        Ok(self.syncing)
    }
}

/// Creates the subscription unless it exists; enables it if it does.
async fn subscribe(ctx: &Context, green: &Client) -> Result<(), CutoverError> {
    let name = &*ctx.names.forward;
    let exists = green
        .query_opt("SELECT subenabled FROM pg_catalog.pg_subscription WHERE subname = $1", &[&name])
        .await
        .map_err(CutoverError::sql("looking for the subscription on green"))?;
    let (n, slot) = (ident(name), literal(name));
    let sql = match exists {
        None => format!(
            "CREATE SUBSCRIPTION {n} CONNECTION {} PUBLICATION {n} \
             WITH (create_slot = false, slot_name = {slot}, copy_data = false, disable_on_error = true)",
            literal(&ctx.plan.blue.url)
        ),
        Some(row) if !row.get::<_, bool>(0) => format!("ALTER SUBSCRIPTION {n} ENABLE"),
        Some(_) => return Ok(()),
    };
    info!("subscribing green to blue's publication");
    // The connection string may carry a password: kept out of the server's log.
    pg::without_statement_logging(green, "green").await?;
    green.batch_execute(&sql).await.map_err(CutoverError::sql("subscribing green to blue"))
}

/// Writes the heartbeat row on blue every second until aborted.
fn spawn_heartbeat(blue: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sql = "UPDATE pgflip.heartbeat SET beat = pg_catalog.now() WHERE id = 1";
        loop {
            if let Err(e) = blue.execute(sql, &[]).await {
                warn!(error = %e, "writing the heartbeat on blue failed");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Lag in bytes (blue's WAL position past the slot's confirmed flush) and in seconds (how
/// old the heartbeat green has is).
async fn measure(blue: &Client, green: &Client, slot: &str) -> Result<Lag, CutoverError> {
    let bytes: Option<i64> = blue
        .query_one(
            "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(CutoverError::sql("reading the slot's position on blue"))?
        .get(0);
    let seconds: Option<f64> = green
        .query_one("SELECT EXTRACT(EPOCH FROM pg_catalog.now() - beat)::float8 FROM pgflip.heartbeat WHERE id = 1", &[])
        .await
        .map_err(CutoverError::sql("reading the heartbeat on green"))?
        .get(0);
    Ok(Lag { bytes: bytes.unwrap_or(i64::MAX).max(0), seconds: seconds.unwrap_or(f64::MAX).max(0.0) })
}

async fn safe_wal(blue: &Client, slot: &str) -> Result<Option<i64>, CutoverError> {
    let row = blue
        .query_one("SELECT safe_wal_size FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .map_err(CutoverError::sql("reading the slot's WAL retention"))?;
    Ok(row.get(0))
}

async fn subscription_enabled(green: &Client, name: &str) -> Result<bool, CutoverError> {
    let row = green
        .query_opt("SELECT subenabled FROM pg_catalog.pg_subscription WHERE subname = $1", &[&name])
        .await
        .map_err(CutoverError::sql("reading the subscription on green"))?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// `1.5 MiB`, `320 B`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_like_a_person_writes_them() {
        assert_eq!(super::human_bytes(320), "320 B");
        assert_eq!(super::human_bytes(1536 * 1024), "1.5 MiB");
    }
}
