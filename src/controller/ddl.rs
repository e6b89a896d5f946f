//! DDL on a side that may be serving (REPLICA IDENTITY FULL, publications, pgflip's own
//! schema). A statement that waits for a table lock queues every later query on that table
//! behind it, so it runs under `[ddl] lock_timeout`; when the lock is not granted in time
//! (SQLSTATE 55P03) it is tried again after a growing pause, up to `[ddl] attempts` times, then
//! refused naming the table and the sessions that hold it.

use std::time::Duration;

use tokio_postgres::Client;
use tracing::warn;

use super::error::CutoverError;
use super::plan::DdlSection;

/// The first pause between two attempts; each later one doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(8);

/// DDL whose lock was not granted in time, after every attempt.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} on {side}: the lock was not granted within [ddl] lock_timeout = {lock_timeout}, {attempts} times; \
     in the way: {holders}. End or finish those sessions and run again"
)]
pub struct LockTimeout {
    pub what: String,
    pub side: String,
    pub attempts: u32,
    pub lock_timeout: String,
    pub holders: String,
}

/// One DDL statement (or a few, run together) and what it locks.
pub struct Ddl<'a> {
    /// What it does, for messages: `setting REPLICA IDENTITY FULL on public.notes`.
    pub what: String,
    /// The SQL.
    pub sql: String,
    /// The tables it locks (SQL names, quoted as needed), to name who holds them.
    pub tables: &'a [String],
}

/// Runs `ddl` on `side` under the plan's lock timeout, retrying while a lock is not granted.
pub async fn execute(client: &Client, side: &str, ddl: Ddl<'_>, limits: &DdlSection) -> Result<(), CutoverError> {
    let timeout = format!("SET lock_timeout = {}", limits.lock_timeout.as_millis().max(1));
    let attempt = || async {
        client.batch_execute(&timeout).await?;
        let result = client.batch_execute(&ddl.sql).await;
        // The session is shared with other work: give it back as it was.
        client.batch_execute("RESET lock_timeout").await?;
        result
    };
    retried(client, side, &ddl.what, ddl.tables, limits, attempt).await
}

/// Opens a transaction on `client` and takes `mode` locks (`SHARE`, say) on `tables` (SQL
/// names) in it, under the plan's lock timeout, retried as [`execute`] retries; the
/// transaction is left open for the caller to end (the locks go with it).
pub async fn lock_tables(
    client: &Client,
    side: &str,
    tables: &[String],
    mode: &str,
    what: &str,
    limits: &DdlSection,
) -> Result<(), CutoverError> {
    let sql = format!(
        "BEGIN; SET LOCAL lock_timeout = {}; LOCK TABLE {} IN {mode} MODE",
        limits.lock_timeout.as_millis().max(1),
        tables.join(", ")
    );
    let attempt = || async {
        let result = client.batch_execute(&sql).await;
        if result.is_err() {
            client.batch_execute("ROLLBACK").await?;
        }
        result
    };
    retried(client, side, what, tables, limits, attempt).await
}

/// Runs `attempt` until it succeeds, fails otherwise than for a lock not granted in time
/// (SQLSTATE 55P03), or has been tried `[ddl] attempts` times, pausing longer each time;
/// then names the sessions holding `tables`.
async fn retried<F, Fut>(
    client: &Client,
    side: &str,
    what: &str,
    tables: &[String],
    limits: &DdlSection,
    mut attempt: F,
) -> Result<(), CutoverError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    let mut pause = FIRST_PAUSE;
    for tried in 1..=limits.attempts {
        let error = match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if e.code().is_some_and(|c| c.code() == "55P03") => e,
            Err(e) => return Err(CutoverError::sql(format!("{what} on {side}"))(e)),
        };
        let holders = holders(client, tables).await;
        if tried == limits.attempts {
            return Err(CutoverError::LockTimeout(Box::new(LockTimeout {
                what: what.to_owned(),
                side: side.to_owned(),
                attempts: tried,
                lock_timeout: crate::duration::display(limits.lock_timeout).to_string(),
                holders: holders.unwrap_or_else(|| format!("unknown ({error})")),
            })));
        }
        warn!(
            side,
            what,
            attempt = tried,
            held_by = holders.as_deref().unwrap_or("unknown"),
            pause_ms = pause.as_millis() as u64,
            "a lock was not granted within [ddl] lock_timeout; trying again"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
    unreachable!("the last attempt returns")
}

/// The sessions holding a lock on any of `tables`: `pid 4242 (app, idle in transaction:
/// LOCK TABLE notes IN ACCESS SHARE MODE) holds AccessShareLock on notes`; `None` when
/// none is seen (it let go meanwhile) or they cannot be read.
async fn holders(client: &Client, tables: &[String]) -> Option<String> {
    let sql = "SELECT l.pid, COALESCE(a.usename, ''), COALESCE(a.state, ''), COALESCE(a.query, ''), \
                      l.relation::regclass::text, l.mode \
               FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
               WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_catalog.pg_backend_pid() \
                 AND l.relation IN (SELECT pg_catalog.to_regclass(t) FROM pg_catalog.unnest($1::text[]) t) \
               ORDER BY l.pid";
    let rows = match client.query(sql, &[&tables]).await {
        Ok(rows) => rows,
        Err(e) => {
            warn!(error = %e, "reading who holds the locks failed");
            return None;
        }
    };
    let list: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "pid {} ({}, {}: {}) holds {} on {}",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
                r.get::<_, String>(5),
                r.get::<_, String>(4)
            )
        })
        .collect();
    (!list.is_empty()).then(|| list.join("; "))
}
