//! The snapshot phase: pgflip's own tables and the publication on blue, then a logical slot
//! with an exported snapshot, and `pg_dump` of exactly that snapshot. A run stopped half
//! way starts this phase over: the slot of the lost snapshot is dropped first.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::process::Command;
use tracing::{info, warn};

use super::ddl::{self, Ddl};
use super::error::CutoverError;
use super::pg::{self, ident};
use super::phase::Phase;
use super::replication::ReplicationConn;
use super::runner::Context;
use super::tools::{connect_to, data_progress, run_logged};

/// pgflip's own tables, made on blue before the slot so that the dump carries them to green:
/// the heartbeat that measures lag in seconds, and the fence marker of the cutover.
const OWN_TABLES: &str = "SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS pgflip;
CREATE TABLE IF NOT EXISTS pgflip.heartbeat (id int PRIMARY KEY, beat timestamptz NOT NULL);
INSERT INTO pgflip.heartbeat VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET beat = excluded.beat;
CREATE TABLE IF NOT EXISTS pgflip.fence (id int PRIMARY KEY, fenced_at timestamptz NOT NULL, generation bigint NOT NULL)";

pub async fn run(ctx: &mut Context) -> Result<(), CutoverError> {
    let name = ctx.names.forward.clone();
    let blue = pg::connect(&ctx.plan.blue_config(), "blue").await?;
    blue.batch_execute(OWN_TABLES).await.map_err(CutoverError::sql("creating pgflip's tables on blue"))?;
    for table in &ctx.plan.preflight.allow_replica_identity_full {
        let table_sql = qualified(table);
        let ddl = Ddl {
            what: format!("setting REPLICA IDENTITY FULL on {table}"),
            sql: format!("ALTER TABLE {table_sql} REPLICA IDENTITY FULL"),
            tables: std::slice::from_ref(&table_sql),
        };
        ddl::execute(&blue, "blue", ddl, &ctx.plan.ddl).await?;
    }
    let exists = blue
        .query_opt("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(CutoverError::sql("looking for the publication"))?;
    if exists.is_none() {
        let ddl = Ddl {
            what: format!("creating publication {name} on blue"),
            sql: format!("CREATE PUBLICATION {} FOR ALL TABLES", ident(&name)),
            tables: &[],
        };
        ddl::execute(&blue, "blue", ddl, &ctx.plan.ddl).await?;
    }
    drop_stale_slot(&blue, &name).await?;

    let started = Instant::now();
    let mut replication = ReplicationConn::connect(&ctx.plan.blue_config()).await?;
    let version: i32 = blue
        .query_one("SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4", &[])
        .await
        .map_err(CutoverError::sql("reading blue's version"))?
        .get(0);
    let slot = replication.create_slot_with_snapshot(&name, version).await?;
    info!(slot = %slot.slot_name, lsn = %slot.consistent_point, snapshot = %slot.snapshot_name, "replication slot created");
    let facts = [
        ("slot", json!(slot.slot_name)),
        ("consistent_lsn", json!(slot.consistent_point)),
        ("snapshot", json!(slot.snapshot_name)),
        ("slot_ms", json!(started.elapsed().as_millis() as u64)),
    ];
    for (key, value) in facts {
        ctx.journal.set_fact(Phase::Snapshot, key, value)?;
    }

    let dump_dir = ctx.plan.snapshot.dump_dir.clone();
    if dump_dir.exists() {
        std::fs::remove_dir_all(&dump_dir).map_err(|source| CutoverError::Io {
            what: format!("removing the old dump {}", dump_dir.display()),
            source,
        })?;
    }
    let dump_started = Instant::now();
    let mut command = Command::new(ctx.tools.program("pg_dump"));
    command
        .arg("--format=directory")
        .arg(format!("--jobs={}", ctx.plan.snapshot.jobs))
        .arg(format!("--snapshot={}", slot.snapshot_name))
        .args(["--no-publications", "--no-subscriptions", "--verbose"])
        .arg("--file")
        .arg(&dump_dir);
    connect_to(&mut command, &ctx.plan.blue, ctx.plan.database());
    info!(dir = %dump_dir.display(), jobs = ctx.plan.snapshot.jobs, "dumping blue at the slot's snapshot");
    let dumped = run_logged(command, "pg_dump", data_progress).await;
    // The snapshot has served its purpose (or the dump failed): let it go either way.
    replication.close().await;
    dumped?;
    ctx.journal.set_fact(Phase::Snapshot, "dump_dir", json!(dump_dir.display().to_string()))?;
    ctx.journal.set_fact(Phase::Snapshot, "dump_ms", json!(dump_started.elapsed().as_millis() as u64))?;
    info!(seconds = dump_started.elapsed().as_secs_f64(), "dump done");
    Ok(())
}

/// Drops the slot `name` left by an earlier, interrupted attempt: its snapshot is gone
/// with the connection that exported it. Waits a little for its walsender to exit.
async fn drop_stale_slot(blue: &tokio_postgres::Client, name: &str) -> Result<(), CutoverError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = blue
            .query_opt("SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", &[&name])
            .await
            .map_err(CutoverError::sql("looking for an old slot"))?;
        match row {
            None => return Ok(()),
            Some(row) if !row.get::<_, bool>(0) => {
                warn!(slot = name, "dropping the slot of an interrupted snapshot");
                blue.execute("SELECT pg_catalog.pg_drop_replication_slot($1)", &[&name])
                    .await
                    .map_err(CutoverError::sql("dropping the old slot"))?;
                return Ok(());
            }
            Some(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Some(_) => {
                return Err(CutoverError::Refused(format!(
                    "a replication slot named {name} is in use on blue; stop whatever streams from it first"
                )))
            }
        }
    }
}

/// `schema.table` as quoted identifiers (a name without a schema means `public`).
fn qualified(table: &str) -> String {
    match table.split_once('.') {
        Some((schema, name)) => format!("{}.{}", ident(schema), ident(name)),
        None => format!("public.{}", ident(table)),
    }
}
