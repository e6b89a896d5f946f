//! The write fence on one side (blue at cutover, green at rollback): the app roles lose
//! LOGIN and their backends are ended, no transaction may hold an xid, no transaction may
//! be prepared; then a marker row and the fence LSN, the point the other side must reach.
//!
//! `default_transaction_read_only` is no fence (a session can turn it off); a role without
//! LOGIN whose backends are gone is.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::{info, warn};

use super::error::CutoverError;
use super::pg::ident;

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

/// Fences `side`: `roles` lose LOGIN, their backends end, and the server is left with no
/// transaction holding an xid (other than the controller's) and none prepared, all by
/// `deadline`.
pub async fn fence(client: &Client, side: &str, roles: &[String], deadline: Instant) -> Result<(), CutoverError> {
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
            break;
        }
        info!(side, backends = ended, "ended app backends");
        if Instant::now() >= deadline {
            return Err(CutoverError::Refused(format!("{side}: app backends did not end before the deadline")));
        }
        tokio::time::sleep(POLL).await;
    }
    loop {
        let holders = client
            .query(
                "SELECT pid, COALESCE(usename, ''), COALESCE(state, ''), COALESCE(query, '') \
                 FROM pg_catalog.pg_stat_activity \
                 WHERE backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid() \
                   AND backend_type = 'client backend'",
                &[],
            )
            .await
            .map_err(CutoverError::sql(format!("looking for open write transactions on {side}")))?;
        if holders.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let list: Vec<String> = holders
                .iter()
                .map(|r| {
                    format!(
                        "pid {} ({}, {}): {}",
                        r.get::<_, i32>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        r.get::<_, String>(3)
                    )
                })
                .collect();
            return Err(CutoverError::Refused(format!(
                "{side}: transactions still hold an xid at the deadline: {}",
                list.join("; ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let prepared: Vec<String> = client
        .query("SELECT gid FROM pg_catalog.pg_prepared_xacts", &[])
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
    Ok(())
}

/// Gives `roles` LOGIN again on `side`.
pub async fn unfence(client: &Client, side: &str, roles: &[String]) -> Result<(), CutoverError> {
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
        let confirmed: Option<bool> = publisher
            .query_opt(
                "SELECT confirmed_flush_lsn >= $2::text::pg_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                &[&slot, &point.lsn],
            )
            .await
            .map_err(CutoverError::sql("reading the slot's confirmed position"))?
            .and_then(|row| row.get(0));
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

/// Hurries the subscriber's report of what it has flushed: its apply worker commits
/// asynchronously and reports once its WAL is flushed and it next hears from the
/// publisher. A synchronous commit on the subscriber flushes its WAL; a heartbeat on the
/// publisher gives its walsender something to send, and the worker answers.
async fn nudge(publisher: &Client, subscriber: &Client) -> Result<(), CutoverError> {
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
