//! Promote and retire: green stays for good. Replication goes both ways' (subscriptions,
//! publications, slots), a final archive dump of blue is taken, the journal and the
//! sidecars' durable target record green as the database, and the retire command runs.
//! The sidecars are told blue is retired as a standby.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::process::Command;
use tracing::info;

use crate::api::StandbyState;

use super::error::CutoverError;
use super::links;
use super::pg;
use super::phase::Phase;
use super::runner::Context;
use super::tools::{connect_to, data_progress, run_logged};
use super::{durable, flip, standby};

/// Drops every replication object pgflip made, on both sides.
pub async fn promote(ctx: &mut Context) -> Result<(), CutoverError> {
    let blue = pg::connect(&ctx.plan.blue_config(), "blue").await?;
    let green = pg::connect(&ctx.plan.green_config(), "green").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (forward, reverse) = (ctx.names.forward(), ctx.names.reverse());
    links::detach(&green, &blue, reverse, deadline).await?;
    links::detach(&blue, &green, forward, deadline).await?;
    links::drop_subscription(&blue, reverse).await?;
    links::drop_subscription(&green, forward).await?;
    links::drop_publication(&green, reverse, &ctx.plan.ddl).await?;
    links::drop_publication(&blue, forward, &ctx.plan.ddl).await?;
    info!("replication between blue and green removed");
    if let Some(fleet) = standby::fleet(&ctx.plan.cutover).await {
        standby::report(&fleet, &flip::upstream_name(ctx, "blue"), StandbyState::Retired, None).await;
    }
    if let Some(dir) = ctx.plan.retire.archive_dir.clone() {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let target = dir.join(format!("blue-{}-{stamp}", ctx.plan.database()));
        std::fs::create_dir_all(&dir).map_err(|source| CutoverError::Io {
            what: format!("[retire] archive_dir {}: cannot create", dir.display()),
            source,
        })?;
        let mut command = Command::new(ctx.tools.program("pg_dump"));
        command.args(["--format=directory", "--no-publications", "--no-subscriptions", "--file"]).arg(&target);
        connect_to(&mut command, &ctx.plan.blue, ctx.plan.database());
        run_logged(command, "pg_dump (archive of blue)", data_progress).await?;
        ctx.journal.set_fact(Phase::Promote, "archive", json!(target.display().to_string()))?;
        ctx.progress.line(format_args!("promote: blue archived to {}", target.display()));
    }
    let green_name = flip::upstream_name(ctx, "green");
    ctx.journal.set_fact(Phase::Promote, "database", json!(ctx.plan.green.redacted()))?;
    if let Some(path) = &ctx.plan.cutover.sidecar_config {
        let generation = ctx.journal.fact(Phase::Cutover, "sidecar_generation").and_then(|v| v.as_u64()).unwrap_or(1);
        durable::write_target(path, &green_name, generation)?;
    }
    ctx.progress
        .line(format_args!("promote: green ({}) is the database now; blue can be retired", ctx.plan.green.redacted()));
    Ok(())
}

/// Runs `[retire] command` with PGHOST and friends pointing at blue.
pub async fn retire(ctx: &mut Context) -> Result<(), CutoverError> {
    let Some(command_line) = ctx.plan.retire.command.clone() else {
        info!("no [retire] command");
        return Ok(());
    };
    let mut command = Command::new("sh");
    command.arg("-c").arg(&command_line);
    super::commands::point_at(&mut command, &ctx.plan.blue, ctx.plan.database());
    command.current_dir(super::commands::plan_dir(&ctx.plan));
    run_logged(command, "[retire] command", |_| true).await?;
    Ok(())
}
