//! The restore phase: the database on green (created when missing; made again when an
//! earlier attempt was interrupted), blue's roles, then `pg_restore -j` of the dump.

use std::time::Instant;

use serde_json::json;
use tokio::process::Command;
use tracing::{info, warn};

use super::error::CutoverError;
use super::pg::{self, ident};
use super::phase::Phase;
use super::roles;
use super::runner::Context;
use super::tools::{connect_to, data_progress, run_logged};

pub async fn run(ctx: &mut Context) -> Result<(), CutoverError> {
    let database = ctx.plan.database().to_owned();
    let admin = pg::connect(&ctx.plan.green_config_for("postgres"), "green").await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(CutoverError::sql("looking for the database on green"))?
        .is_some();
    let ours = ctx.journal.fact(Phase::Restore, "created_database").and_then(|v| v.as_bool()).unwrap_or(false);
    if exists && ours {
        // An earlier attempt created it and did not finish: start from an empty one.
        warn!(database = %database, "dropping green's database left by an interrupted restore");
        admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", ident(&database)))
            .await
            .map_err(CutoverError::sql("dropping the half-restored database on green"))?;
    } else if exists {
        let green = pg::connect(&ctx.plan.green_config(), "green").await?;
        let tables: i64 = green
            .query_one(
                "SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%'",
                &[],
            )
            .await
            .map_err(CutoverError::sql("looking at green's database"))?
            .get(0);
        if tables > 0 {
            return Err(CutoverError::Refused(format!(
                "green's database {database} already holds {tables} tables; pgflip restores into an empty (or missing) database"
            )));
        }
    }
    if !exists || ours {
        admin
            .batch_execute(&format!("CREATE DATABASE {}", ident(&database)))
            .await
            .map_err(CutoverError::sql("creating the database on green"))?;
        ctx.journal.set_fact(Phase::Restore, "created_database", json!(true))?;
    }

    let created = roles::prepare(ctx, &admin).await?;
    ctx.journal.set_fact(Phase::Restore, "roles_created", json!(created))?;

    let dump_dir = ctx
        .journal
        .fact(Phase::Snapshot, "dump_dir")
        .and_then(|v| v.as_str())
        .map(std::path::PathBuf::from)
        .ok_or_else(|| CutoverError::Refused("the journal has no dump from the snapshot phase".into()))?;
    let started = Instant::now();
    let mut command = Command::new(ctx.tools.program("pg_restore"));
    command
        .arg(format!("--jobs={}", ctx.plan.restore.jobs))
        .args(["--no-publications", "--no-subscriptions", "--exit-on-error", "--verbose"])
        .arg(&dump_dir);
    connect_to(&mut command, &ctx.plan.green, ctx.plan.database());
    info!(dir = %dump_dir.display(), jobs = ctx.plan.restore.jobs, "restoring into green");
    run_logged(command, "pg_restore", data_progress).await?;
    ctx.journal.set_fact(Phase::Restore, "restore_ms", json!(started.elapsed().as_millis() as u64))?;
    info!(seconds = started.elapsed().as_secs_f64(), "restore done");
    Ok(())
}
