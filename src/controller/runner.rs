//! Running the phases in order, each recorded in the journal, resuming after the last one
//! completed; and `status`.

use std::path::Path;

use tracing::{info, info_span, Instrument};

use super::error::CutoverError;
use super::journal::Journal;
use super::metrics::CutoverMetrics;
use super::phase::Phase;
use super::plan::Plan;
use super::preflight::{self, PreflightOptions};
use super::tools::Tools;
use super::{catchup, commands, pg, restore, snapshot};

/// What every phase works with.
pub struct Context {
    pub plan: Plan,
    pub journal: Journal,
    pub tools: Tools,
    pub metrics: CutoverMetrics,
}

impl Context {
    pub fn open(plan_path: &Path) -> Result<Context, CutoverError> {
        let plan = Plan::load(plan_path)?;
        let journal = Journal::open(&plan.journal.path)?;
        let tools = Tools::find(plan.tools.bin_dir.as_deref());
        Ok(Context { plan, journal, tools, metrics: CutoverMetrics::new() })
    }
}

/// Runs the phases not yet completed, in order, through `until` (all of them when `None`).
pub async fn run(plan_path: &Path, until: Option<Phase>) -> Result<(), CutoverError> {
    let mut ctx = Context::open(plan_path)?;
    if let Some(addr) = ctx.plan.metrics.listen {
        ctx.metrics
            .serve(addr)
            .await
            .map_err(|source| CutoverError::Io { what: format!("[metrics] listen = {addr}: cannot listen"), source })?;
    }
    for phase in Phase::ALL {
        if until.is_some_and(|last| phase > last) {
            break;
        }
        if ctx.journal.completed(phase) {
            info!(phase = %phase, "already done");
            continue;
        }
        ctx.metrics.phase.set(phase.number());
        ctx.journal.start(phase)?;
        info!(phase = %phase, "phase started");
        run_phase(&mut ctx, phase).instrument(info_span!("phase", name = %phase)).await?;
        ctx.journal.finish(phase)?;
        info!(phase = %phase, "phase done");
    }
    ctx.metrics.phase.set(0);
    Ok(())
}

async fn run_phase(ctx: &mut Context, phase: Phase) -> Result<(), CutoverError> {
    match phase {
        Phase::Preflight => run_preflight(ctx).await,
        Phase::Snapshot => snapshot::run(ctx).await,
        Phase::Restore => restore::run(ctx).await,
        Phase::Migrate | Phase::Smoke => commands::run(ctx, phase).await,
        Phase::Catchup => catchup::run(ctx).await,
    }
}

async fn run_preflight(ctx: &mut Context) -> Result<(), CutoverError> {
    let blue = pg::connect(&ctx.plan.blue_config(), "blue").await?;
    // The database may not exist on green yet: check the server through `postgres`.
    let green = pg::connect(&ctx.plan.green_config_for("postgres"), "green").await?;
    let options = PreflightOptions {
        app_roles: ctx.plan.app.roles.clone(),
        allow_replica_identity_full: ctx.plan.preflight.allow_replica_identity_full.clone(),
        database: ctx.plan.database().to_owned(),
    };
    let report = preflight::run(&blue, &green, &options).await.map_err(CutoverError::sql("preflight"))?;
    eprintln!("{report}");
    for (key, value) in &report.facts {
        ctx.journal.set_fact(Phase::Preflight, key, value.clone())?;
    }
    if !report.is_ok() {
        let blockers: Vec<String> = report.blockers().map(|f| format!("- {}", f.message)).collect();
        return Err(CutoverError::Preflight(blockers.join("\n")));
    }
    Ok(())
}

/// The journal as JSON, and the next phase to run.
pub fn status(plan_path: &Path) -> Result<String, CutoverError> {
    let ctx = Context::open(plan_path)?;
    let next = ctx.journal.next_phase().map(|p| p.name()).unwrap_or("none (all done)");
    let record = serde_json::to_string_pretty(ctx.journal.record()).unwrap_or_default();
    Ok(format!("journal: {}\nnext phase: {next}\n{record}", ctx.plan.journal.path.display()))
}
