//! The write fence on one side (blue at cutover, green at rollback): the app roles lose
//! LOGIN and their backends are ended; every table refuses writes from any session but a
//! replication apply worker ([`writes`]), and sessions that could still commit a write are
//! ended; no transaction may be prepared; then a marker row and the fence LSN, the point
//! the other side must reach.
//!
//! `default_transaction_read_only` is no fence (a session can turn it off), and neither are
//! roles alone (a superuser, another role, a job outside the fleet keeps writing).

mod writes;

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::{info, warn};

use super::error::CutoverError;
use super::pg::ident;
pub use writes::Ended;
use writes::Holding;

/// How often the fence re-checks while it waits.
const POLL: Duration = Duration::from_millis(50);

/// Where a fence stands: the marker row's id and the WAL position after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencePoint {
    pub marker: i32,
    pub lsn: String,
}

/// The app roles that may log in on `client`'s server (the others stay as they are).
pub async fn login_roles(client: &Client, roles: &[String]) -> Result<Vec<String>, CutoverError> {
    let rows = client
        .query(
            "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY($1) AND rolcanlogin ORDER BY rolname",
            &[&roles],
        )
        .await
        .map_err(CutoverError::sql("reading which app roles can log in"))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// What a fence did beyond the app roles: the sessions it ended because they could still
/// write (outside the fleet: another role, a superuser, a job).
#[derive(Debug, Clone, Default)]
pub struct Fenced {
    pub ended: Vec<Ended>,
}

/// Fences `side` for writes, by `deadline`: `roles` lose LOGIN and their backends end (the
/// side is closed to the app); every table gets the fence trigger, so no session but a
/// replication apply worker can write, whatever its role; every other session that holds
/// an xid is ended; then the fence is verified and no transaction may be prepared.
pub async fn fence(client: &Client, side: &str, roles: &[String], deadline: Instant) -> Result<Fenced, CutoverError> {
    close(client, side, roles, deadline).await?;
    let mut ended = writes::install(client, side, deadline).await?;
    loop {
        let more = writes::end(client, side, Holding::Xid).await?;
        if more.is_empty() {
            break;
        }
        ended.extend(more);
        if Instant::now() >= deadline {
            return Err(CutoverError::Refused(format!("{side}: writing sessions did not end before the deadline")));
        }
        tokio::time::sleep(POLL).await;
    }
    let gaps = writes::verify(client, side).await?;
    if !gaps.is_empty() {
        return Err(CutoverError::Refused(format!("{side}: the write fence does not hold: {}", gaps.join("; "))));
    }
    let prepared: Vec<String> = client
        .query("SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = pg_catalog.current_database()", &[])
        .await
        .map_err(CutoverError::sql(format!("looking for prepared transactions on {side}")))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !prepared.is_empty() {
        return Err(CutoverError::Refused(format!(
            "{side} has prepared transactions ({}): commit or roll them back first",
            prepared.join(", ")
        )));
    }
    Ok(Fenced { ended })
}

/// Closes `side` to the app: `roles` lose LOGIN and their backends end by `deadline`.
pub async fn close(client: &Client, side: &str, roles: &[String], deadline: Instant) -> Result<(), CutoverError> {
    for role in roles {
        let sql = format!("ALTER ROLE {} NOLOGIN", ident(role));
        client.batch_execute(&sql).await.map_err(CutoverError::sql(format!("fencing role {role} on {side}")))?;
    }
    loop {
        let ended: i64 = client
            .query_one(
                "SELECT pg_catalog.count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity \
                 WHERE usename = ANY($1) AND pid <> pg_catalog.pg_backend_pid()",
                &[&roles],
            )
            .await
            .map_err(CutoverError::sql(format!("ending the app roles' backends on {side}")))?
            .get(0);
        if ended == 0 {
            return Ok(());
        }
        info!(side, backends = ended, "ended app backends");
        if Instant::now() >= deadline {
            return Err(CutoverError::Refused(format!("{side}: app backends did not end before the deadline")));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Opens `side`: the fence triggers are dropped and `roles` get LOGIN again.
pub async fn unfence(client: &Client, side: &str, roles: &[String], deadline: Instant) -> Result<(), CutoverError> {
    writes::remove(client, side, deadline).await?;
    for role in roles {
        let sql = format!("ALTER ROLE {} LOGIN", ident(role));
        client.batch_execute(&sql).await.map_err(CutoverError::sql(format!("opening role {role} on {side}")))?;
    }
    Ok(())
}

/// Writes the fence marker (for `generation`) and reads the WAL position after its commit.
pub async fn mark(client: &Client, side: &str, generation: u64) -> Result<FencePoint, CutoverError> {
    let marker: i32 = client
        .query_one(
            "INSERT INTO pgflip.fence (id, fenced_at, generation) \
             SELECT COALESCE(pg_catalog.max(id), 0) + 1, pg_catalog.now(), $1 FROM pgflip.fence RETURNING id",
            &[&(generation as i64)],
        )
        .await
        .map_err(CutoverError::sql(format!("writing the fence marker on {side}")))?
        .get(0);
    let lsn: String = client
        .query_one("SELECT pg_catalog.pg_current_wal_lsn()::text", &[])
        .await
        .map_err(CutoverError::sql(format!("reading the fence LSN on {side}")))?
        .get(0);
    Ok(FencePoint { marker, lsn })
}

/// Waits until `slot` on the publisher has confirmed `point.lsn` and the marker row is on
/// the subscriber; an error at the deadline.
pub async fn wait_confirmed(
    publisher: &Client,
    subscriber: &Client,
    slot: &str,
    point: &FencePoint,
    deadline: Instant,
) -> Result<Duration, CutoverError> {
    let started = Instant::now();
    loop {
        let confirmed = slot_confirmed(publisher, slot, &point.lsn).await?;
        if confirmed == Some(true) {
            let arrived = subscriber
                .query_opt("SELECT 1 FROM pgflip.fence WHERE id = $1", &[&point.marker])
                .await
                .map_err(CutoverError::sql("looking for the fence marker"))?;
            if arrived.is_some() {
                return Ok(started.elapsed());
            }
        }
        if confirmed == Some(false) {
            nudge(publisher, subscriber).await?;
        }
        if Instant::now() >= deadline {
            warn!(slot, lsn = %point.lsn, confirmed = ?confirmed, "the fence LSN was not confirmed in time");
            return Err(CutoverError::Refused(format!(
                "slot {slot} did not confirm the fence LSN {} within [cutover] catchup_timeout",
                point.lsn
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `slot` on the publisher has confirmed `lsn` (its subscriber applied and flushed
/// everything before it); `None` when there is no such slot or it confirmed nothing yet.
pub async fn slot_confirmed(publisher: &Client, slot: &str, lsn: &str) -> Result<Option<bool>, CutoverError> {
    let row = publisher
        .query_opt(
            "SELECT confirmed_flush_lsn >= $2::text::pg_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot, &lsn],
        )
        .await
        .map_err(CutoverError::sql("reading the slot's confirmed position"))?;
    Ok(row.and_then(|row| row.get(0)))
}

/// Hurries the subscriber's report of what it has flushed: its apply worker commits
/// asynchronously and reports once its WAL is flushed and it next hears from the
/// publisher. A synchronous commit on the subscriber flushes its WAL; a heartbeat on the
/// publisher gives its walsender something to send, and the worker answers.
pub async fn nudge(publisher: &Client, subscriber: &Client) -> Result<(), CutoverError> {
    subscriber
        .batch_execute("BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_catalog.pg_current_xact_id(); COMMIT")
        .await
        .map_err(CutoverError::sql("flushing the subscriber's WAL"))?;
    publisher
        .batch_execute("SET synchronous_commit = on; UPDATE pgflip.heartbeat SET beat = pg_catalog.now() WHERE id = 1")
        .await
        .map_err(CutoverError::sql("writing a heartbeat on the publisher"))?;
    Ok(())
}
