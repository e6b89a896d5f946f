//! The write fence proper: a statement trigger on every table of the database that raises
//! for any session but a replication apply worker (which runs with
//! `session_replication_role = replica`, where ordinary triggers do not fire), whatever
//! its role and however it connected; and the end of every other session that already
//! holds an xid, so that no write begun before the triggers commits after the fence LSN.
//!
//! Roles alone cannot fence one database for writes: NOLOGIN holds in every database of the
//! server and keeps the apply worker's owner out too, and `ALLOW_CONNECTIONS false` stops
//! the apply worker. A session that holds no xid has written nothing yet, and its next
//! write meets a trigger (a write takes its table's lock first, and with it sees the new
//! trigger); read-only sessions may stay.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::{info, warn};

use crate::controller::error::CutoverError;
use crate::controller::pg::ident;

/// The name of the fence trigger on every table.
pub const TRIGGER: &str = "pgflip_fence";

/// How long one attempt waits for a table's lock before the sessions in its way are ended.
const LOCK_TIMEOUT: &str = "1s";

/// Tables per transaction: each trigger holds a lock until its transaction ends.
const BATCH: usize = 200;

/// The user tables a fence covers: ordinary and partitioned (partitions included, each
/// with its own trigger, as a write may name a partition), permanent, outside the system
/// schemas and pgflip's own (the controller writes its markers and heartbeats there).
const TABLES: &str = "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgflip') AND n.nspname NOT LIKE 'pg\\_%'";

/// The function the triggers call; made (or made again) before every fence.
const FUNCTION: &str = "CREATE SCHEMA IF NOT EXISTS pgflip;
CREATE OR REPLACE FUNCTION pgflip.fenced() RETURNS trigger LANGUAGE plpgsql AS $fence$
BEGIN
  IF pg_catalog.current_setting('session_replication_role') = 'replica' THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION 'pgflip: % is fenced: the application now writes to the other database', TG_TABLE_NAME
    USING ERRCODE = '25006',
          HINT = 'This database takes no writes while pgflip has moved the application away from it.';
END
$fence$";

/// A session the fence ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub pid: i32,
    pub user: String,
    pub application: String,
    pub client: String,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({}", self.pid, self.user)?;
        if !self.application.is_empty() {
            write!(f, ", {}", self.application)?;
        }
        if !self.client.is_empty() {
            write!(f, ", from {}", self.client)?;
        }
        write!(f, ")")
    }
}

/// Puts the fence trigger on every table that lacks it, ending the sessions whose locks
/// keep it out; returns those sessions.
pub async fn install(client: &Client, side: &str, deadline: Instant) -> Result<Vec<Ended>, CutoverError> {
    client
        .batch_execute(FUNCTION)
        .await
        .map_err(CutoverError::sql(format!("creating the fence function on {side}")))?;
    let mut ended = Vec::new();
    loop {
        let missing = unfenced_tables(client, side).await?;
        if missing.is_empty() {
            return Ok(ended);
        }
        let statements: Vec<String> = missing
            .iter()
            .map(|Unfenced { table, disabled }| match disabled {
                true => format!("ALTER TABLE {table} ENABLE TRIGGER {TRIGGER}"),
                false => format!(
                    "CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
                     FOR EACH STATEMENT EXECUTE FUNCTION pgflip.fenced()"
                ),
            })
            .collect();
        let blocked = in_batches(client, &statements, &format!("installing the write fence on {side}")).await?;
        if blocked {
            if Instant::now() >= deadline {
                return Err(CutoverError::Refused(format!(
                    "{side}: the write fence could not take its tables' locks before the deadline"
                )));
            }
            ended.extend(end(client, side, Holding::ConflictingLock).await?);
        }
    }
}

/// Which sessions [`end`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// Those in a transaction that holds an xid (it wrote, or is writing).
    Xid,
    /// Those holding a lock on a user table that keeps a trigger from being made: any
    /// lock mode but ACCESS SHARE and ROW SHARE (plain and locking reads).
    ConflictingLock,
}

/// Ends this database's client sessions (but the caller's) that hold `what`; returns them.
pub async fn end(client: &Client, side: &str, what: Holding) -> Result<Vec<Ended>, CutoverError> {
    let condition = match what {
        Holding::Xid => "a.backend_xid IS NOT NULL",
        Holding::ConflictingLock => {
            "EXISTS (SELECT 1 FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_class c ON c.oid = l.relation \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE l.pid = a.pid AND l.locktype = 'relation' \
                AND l.mode NOT IN ('AccessShareLock', 'RowShareLock') AND c.relkind IN ('r', 'p') \
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgflip') AND n.nspname NOT LIKE 'pg\\_%') \
             OR a.backend_xid IS NOT NULL"
        }
    };
    let sql = format!(
        "SELECT a.pid, COALESCE(a.usename::text, ''), COALESCE(a.application_name, ''), \
                COALESCE(pg_catalog.host(a.client_addr), ''), pg_catalog.pg_terminate_backend(a.pid) \
           FROM pg_catalog.pg_stat_activity a \
          WHERE a.datname = pg_catalog.current_database() AND a.backend_type = 'client backend' \
            AND a.pid <> pg_catalog.pg_backend_pid() AND ({condition})"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(CutoverError::sql(format!("ending sessions that could write on {side}")))?;
    let ended: Vec<Ended> =
        rows.iter().map(|r| Ended { pid: r.get(0), user: r.get(1), application: r.get(2), client: r.get(3) }).collect();
    for session in &ended {
        warn!(side, pid = session.pid, user = %session.user, application = %session.application,
              client = %session.client, "ended a session that could still write past the fence");
    }
    Ok(ended)
}

/// What the fence has left unproven: tables without an enabled trigger, sessions with an
/// xid. Empty when the fence holds.
pub async fn verify(client: &Client, side: &str) -> Result<Vec<String>, CutoverError> {
    let mut gaps: Vec<String> =
        unfenced_tables(client, side).await?.into_iter().map(|t| format!("{} has no fence trigger", t.table)).collect();
    let writers = client
        .query(
            "SELECT pid FROM pg_catalog.pg_stat_activity WHERE datname = pg_catalog.current_database() \
               AND backend_type = 'client backend' AND backend_xid IS NOT NULL \
               AND pid <> pg_catalog.pg_backend_pid()",
            &[],
        )
        .await
        .map_err(CutoverError::sql(format!("verifying the write fence on {side}")))?;
    gaps.extend(writers.iter().map(|r| format!("pid {} holds an xid", r.get::<_, i32>(0))));
    Ok(gaps)
}

/// Drops the fence trigger from every table that has it (nothing when none does).
pub async fn remove(client: &Client, side: &str, deadline: Instant) -> Result<(), CutoverError> {
    loop {
        let fenced = fenced_tables(client, side).await?;
        if fenced.is_empty() {
            return Ok(());
        }
        let statements: Vec<String> =
            fenced.iter().map(|table| format!("DROP TRIGGER IF EXISTS {TRIGGER} ON {table}")).collect();
        let blocked = in_batches(client, &statements, &format!("removing the write fence on {side}")).await?;
        if blocked {
            // Readers in the way finish on their own; nothing is ended to open a side.
            if Instant::now() >= deadline {
                return Err(CutoverError::Refused(format!(
                    "{side}: removing the write fence waited past the deadline for its tables' locks"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            info!(side, tables = fenced.len(), "write fence removed");
        }
    }
}

/// Runs `statements`, [`BATCH`] to a transaction, each transaction under [`LOCK_TIMEOUT`];
/// returns whether a lock timeout rolled one back (the others still ran).
async fn in_batches(client: &Client, statements: &[String], what: &str) -> Result<bool, CutoverError> {
    let mut blocked = false;
    for batch in statements.chunks(BATCH) {
        let sql = format!("BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; {}; COMMIT", batch.join("; "));
        match client.batch_execute(&sql).await {
            Ok(()) => {}
            Err(e) if e.code().is_some_and(|c| c.code() == "55P03") => {
                client.batch_execute("ROLLBACK").await.map_err(CutoverError::sql("rolling back"))?;
                blocked = true;
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(CutoverError::sql(what)(e));
            }
        }
    }
    Ok(blocked)
}

/// A table the fence covers without an enabled fence trigger.
struct Unfenced {
    /// Schema-qualified and quoted.
    table: String,
    /// It has the trigger, disabled.
    disabled: bool,
}

async fn unfenced_tables(client: &Client, side: &str) -> Result<Vec<Unfenced>, CutoverError> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t \
           WHERE t.tgrelid = c.oid AND t.tgname = '{TRIGGER}') {TABLES} AND NOT EXISTS (SELECT 1 \
           FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = '{TRIGGER}' AND t.tgenabled <> 'D') \
          ORDER BY 1, 2"
    );
    let rows =
        client.query(&sql, &[]).await.map_err(CutoverError::sql(format!("listing unfenced tables on {side}")))?;
    Ok(rows
        .iter()
        .map(|r| Unfenced { table: format!("{}.{}", ident(r.get(0)), ident(r.get(1))), disabled: r.get(2) })
        .collect())
}

/// Tables that have the fence trigger.
async fn fenced_tables(client: &Client, side: &str) -> Result<Vec<String>, CutoverError> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c \
           ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE t.tgname = '{TRIGGER}' ORDER BY 1, 2"
    );
    let rows = client.query(&sql, &[]).await.map_err(CutoverError::sql(format!("listing fenced tables on {side}")))?;
    Ok(rows.iter().map(|r| format!("{}.{}", ident(r.get(0)), ident(r.get(1)))).collect())
}
