//! `pgflip cutover abandon`: gives the cutover up while blue serves, and removes what pgflip
//! made for it on both sides: the subscriptions (disabled and let go of their slots first),
//! the publications, the slots (the snapshot's slot is the forward one), the `pgflip`
//! schema (heartbeat and fence marker), and any fence left on blue (the fence's own
//! `unfence`). The dump directory goes too. Green's database and roles stay as they are.
//!
//! It refuses while green serves (roll back first) and while a flip is unfinished. The
//! journal records the abandon when it starts and when it is done; from then on every other
//! command refuses the journal (move it away to start over), and `abandon` itself can be
//! run again to finish one that could not reach a side.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tracing::{info, warn};

use super::ddl::{self, Ddl};
use super::error::CutoverError;
use super::fence;
use super::fleet::Fleet;
use super::flip;
use super::links::{self, Link};
use super::lock::Reach;
use super::pg;
use super::phase::Phase;
use super::progress::Progress;
use super::runner::{refuse_while_unfinished, Context};
use super::standby;

/// How long a slot may stay in use by a walsender that is being ended.
const SLOT_DEADLINE: Duration = Duration::from_secs(60);
/// How long each sidecar gets to say which side it serves.
const STATUS_DEADLINE: Duration = Duration::from_secs(10);

/// Runs `pgflip cutover abandon`.
pub async fn abandon(plan_path: &Path, progress: Progress) -> Result<(), CutoverError> {
    let mut ctx = Context::open_locked(plan_path, progress, "abandon", Reach::Reachable).await?;
    if ctx.journal.completed(Phase::Promote) {
        return Err(CutoverError::Refused("this plan's cutover was promoted: green is the database now".into()));
    }
    refuse_while_unfinished(&ctx, "abandon", None)?;
    refuse_while_green_serves(&ctx).await?;
    ctx.journal.start_abandon()?;
    progress.line("abandon: started; blue keeps serving");

    let mut unreached = Vec::new();
    for side in ["green", "blue"] {
        let config = if side == "blue" { ctx.plan.blue_config() } else { ctx.plan.green_config() };
        match pg::connect(&config, side).await {
            Ok(client) => clean(&ctx, &client, side).await?,
            Err(CutoverError::Sql { source, .. }) if source.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
                progress.line(format_args!("abandon: {side} has no database {}: nothing there", ctx.plan.database()));
            }
            Err(e) => {
                warn!(side, error = %e, "cannot reach {side}");
                unreached.push(format!("{side} ({e})"));
            }
        }
    }
    remove_dump(&ctx)?;
    if !unreached.is_empty() {
        return Err(CutoverError::Refused(format!(
            "abandon removed what it could reach, but not on {}: run it again once they answer (a side that is \
             gone for good has nothing left to remove)",
            unreached.join(", ")
        )));
    }
    ctx.journal.finish_abandon()?;
    progress.line(format_args!(
        "abandon: done; blue serves with nothing of pgflip's left on either side. Green's database {} is left as \
         it is. Every other command refuses the journal {} now: move it away to start over",
        ctx.plan.database(),
        ctx.journal.path().display()
    ));
    Ok(())
}

/// Refuses while green serves: by the journal (a cutover finished and was not rolled back),
/// or by any sidecar that answers. A sidecar that does not answer is warned about only.
async fn refuse_while_green_serves(ctx: &Context) -> Result<(), CutoverError> {
    let roll_back = "run `pgflip cutover rollback` first, then abandon";
    if standby::green_serves(&ctx.journal) {
        return Err(CutoverError::Refused(format!("green serves since the cutover: {roll_back}")));
    }
    let fleet = Fleet::discover(&ctx.plan.cutover).await?;
    let green = flip::upstream_name(ctx, "green");
    for (sidecar, status) in fleet.sidecars.iter().zip(fleet.status(STATUS_DEADLINE).await) {
        match status {
            Ok(status) if status.active == green => {
                return Err(CutoverError::Refused(format!("sidecar {sidecar} serves {green}: {roll_back}")));
            }
            Ok(_) => {}
            Err(e) => warn!(sidecar = %sidecar, error = %e, "a sidecar does not answer; the journal says blue serves"),
        }
    }
    Ok(())
}

/// Removes pgflip's objects from `side`, connected to the plan's database there.
async fn clean(ctx: &Context, client: &Client, side: &'static str) -> Result<(), CutoverError> {
    // The link `side` subscribes to, and the one it publishes.
    let (into, out): (Link<'_>, Link<'_>) = match side {
        "green" => (ctx.names.forward(), ctx.names.reverse()),
        _ => (ctx.names.reverse(), ctx.names.forward()),
    };
    let said = |what: String| {
        info!(side, removed = %what, "abandon");
        ctx.progress.line(format_args!("abandon: removed {what} on {side}"));
    };
    if links::drop_subscription(client, into).await? {
        said(format!("subscription {}", into.name));
    }
    if links::drop_publication(client, out, &ctx.plan.ddl).await? {
        said(format!("publication {}", out.name));
    }
    if links::has_slot(client, out).await? {
        links::drop_slot(client, out, Instant::now() + SLOT_DEADLINE).await?;
        said(format!("replication slot {}", out.name));
    }
    if side == "blue" {
        // The roles that could log in before the first fence; none recorded: never fenced.
        let roles: Vec<String> = ctx
            .journal
            .fact(Phase::Cutover, "login_roles")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if !roles.is_empty() {
            fence::unfence(client, side, &roles, std::time::Instant::now() + std::time::Duration::from_secs(30))
                .await?;
            said(format!("any fence (LOGIN again for {})", roles.join(", ")));
        }
    }
    let schema = client
        .query_opt("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pgflip'", &[])
        .await
        .map_err(CutoverError::sql(format!("looking for the pgflip schema on {side}")))?;
    if schema.is_some() {
        let tables = ["pgflip.heartbeat".to_owned(), "pgflip.fence".to_owned()];
        let ddl =
            Ddl { what: "dropping schema pgflip".into(), sql: "DROP SCHEMA pgflip CASCADE".into(), tables: &tables };
        ddl::execute(client, side, ddl, &ctx.plan.ddl).await?;
        said("schema pgflip (heartbeat, fence marker)".into());
    }
    Ok(())
}

/// Removes the snapshot's dump directory, if it is still there.
fn remove_dump(ctx: &Context) -> Result<(), CutoverError> {
    let Some(dir) = ctx.journal.fact(Phase::Snapshot, "dump_dir").and_then(|v| v.as_str()).map(PathBuf::from) else {
        return Ok(());
    };
    if !dir.exists() {
        return Ok(());
    }
    std::fs::remove_dir_all(&dir)
        .map_err(|source| CutoverError::Io { what: format!("removing the dump {}", dir.display()), source })?;
    ctx.progress.line(format_args!("abandon: removed the dump {}", dir.display()));
    Ok(())
}
