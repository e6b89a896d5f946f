//! Running the phases in order, each recorded in the journal, resuming after the last one
//! completed; `rollback` and `promote`.

use std::path::Path;
use std::time::Instant;

use tracing::{info, info_span, Instrument};

use super::error::CutoverError;
use super::flip::{self, Direction};
use super::journal::Journal;
use super::lock::{PlanLock, Reach};
use super::metrics::CutoverMetrics;
use super::names::LinkNames;
use super::phase::Phase;
use super::plan::Plan;
use super::preflight::{self, ClientTools, PreflightOptions, ProgramVersion};
use super::progress::Progress;
use super::promote as promotion;
use super::tools::Tools;
use super::{catchup, client_programs, commands, pg, restore, snapshot, window};

/// What every phase works with.
pub struct Context {
    pub plan: Plan,
    pub journal: Journal,
    pub tools: Tools,
    pub metrics: CutoverMetrics,
    /// Where the lines a person reads go.
    pub progress: Progress,
    /// The replication objects' names.
    pub names: LinkNames,
    /// Held while the command runs, by the commands that change anything.
    pub lock: Option<PlanLock>,
}

impl Context {
    /// The plan and its journal, to read: no lock is taken.
    pub fn open(plan_path: &Path, progress: Progress) -> Result<Context, CutoverError> {
        let plan = Plan::load(plan_path)?;
        let journal = Journal::open(&plan.journal.path)?;
        Ok(Context::with(plan, journal, progress))
    }

    /// The plan and its journal for `command`, which changes things: the plan's locks are
    /// taken first ([`super::lock`]), and a journal whose cutover was abandoned refuses any
    /// command but `abandon`.
    pub async fn open_locked(
        plan_path: &Path,
        progress: Progress,
        command: &str,
        reach: Reach,
    ) -> Result<Context, CutoverError> {
        let plan = Plan::load(plan_path)?;
        let file = PlanLock::file(&plan.journal.path, command)?;
        let journal = Journal::open(&plan.journal.path)?;
        let mut ctx = Context::with(plan, journal, progress);
        if let Some(abandon) = ctx.journal.abandon().filter(|_| command != "abandon") {
            let how = match abandon.finished_at {
                Some(_) => "was abandoned",
                None => "is being abandoned (run `pgflip cutover abandon` again to finish)",
            };
            return Err(CutoverError::Refused(format!(
                "this plan's cutover {how} (since {}): {command} refuses. To start over, move the journal {} away \
                 and drop green's database {} if it is not to be reused",
                abandon.started_at,
                ctx.journal.path().display(),
                ctx.plan.database()
            )));
        }
        if ctx.journal.phase(Phase::Snapshot).is_some() && ctx.journal.links().is_none() {
            info!(names = ?ctx.names, "the journal's snapshot predates recorded names: its objects keep the old names");
            ctx.journal.record_links(&ctx.names)?;
        }
        let lock = PlanLock::servers(file, &ctx.plan, &mut ctx.journal, &ctx.names, command, reach).await?;
        ctx.lock = Some(lock);
        ctx.settle_tools().await?;
        Ok(ctx)
    }

    /// A journal whose preflight passed before the choice of client programs was
    /// recorded has the servers' versions: the choice is made from them now.
    async fn settle_tools(&mut self) -> Result<(), CutoverError> {
        let settled = client_programs::settled(self.plan.tools.bin_dir.as_deref(), &self.journal).is_some();
        if settled || !self.journal.completed(Phase::Preflight) {
            return Ok(());
        }
        if let Some((blue, green)) = client_programs::recorded_majors(&self.journal) {
            self.tools = client_programs::choose(&mut self.journal, self.progress, blue, green).await?.0;
        }
        Ok(())
    }

    fn with(plan: Plan, journal: Journal, progress: Progress) -> Context {
        // Until preflight chooses them (it knows the servers' versions): by name on PATH.
        let tools = client_programs::settled(plan.tools.bin_dir.as_deref(), &journal).unwrap_or_else(Tools::on_path);
        let names = LinkNames::resolve(&plan, &journal);
        Context { plan, journal, tools, metrics: CutoverMetrics::new(), progress, names, lock: None }
    }
}

/// Runs the phases not yet completed, in order, through `until` (all of them when `None`).
pub async fn run(plan_path: &Path, until: Option<Phase>, progress: Progress) -> Result<(), CutoverError> {
    let mut ctx = open_serving(plan_path, progress, "run").await?;
    if ctx.journal.completed(Phase::Promote) {
        return Err(CutoverError::Refused("this plan's cutover was promoted: there is nothing left to run".into()));
    }
    // `run` itself resolves a cutover left half done, not a rollback.
    refuse_while_unfinished(&ctx, "run", Some(Phase::Cutover))?;
    for &phase in Phase::RUN {
        if until.is_some_and(|last| phase > last) {
            break;
        }
        if ctx.journal.completed(phase) {
            info!(phase = %phase, "already done");
            continue;
        }
        timed_phase(&mut ctx, phase).await?;
    }
    ctx.metrics.phase.set(0);
    Ok(())
}

/// Refuses `action` while a flip an earlier run left half done (its journal `step` is set)
/// is unresolved, naming the command that resolves it; `resolves` is the flip `action`
/// resolves itself.
pub(super) fn refuse_while_unfinished(
    ctx: &Context,
    action: &str,
    resolves: Option<Phase>,
) -> Result<(), CutoverError> {
    for (phase, command) in [(Phase::Cutover, "run"), (Phase::Rollback, "rollback")] {
        if Some(phase) == resolves {
            continue;
        }
        if let Some(step) = ctx.journal.fact(phase, "step").and_then(|s| s.as_str().map(str::to_owned)) {
            return Err(CutoverError::Refused(format!(
                "the {phase} stopped part-way (at step {step:?}): run `pgflip cutover {command}` with this plan \
                 to finish or undo it first; {action} refuses while a flip is unfinished"
            )));
        }
    }
    Ok(())
}

/// Runs one phase, journaled, with a progress line as it starts and as it ends.
async fn timed_phase(ctx: &mut Context, phase: Phase) -> Result<(), CutoverError> {
    let started = Instant::now();
    ctx.metrics.phase.set(phase.number());
    if phase == Phase::Snapshot {
        // Before the phase starts: a journal with a snapshot and no names has the old ones.
        ctx.journal.record_links(&ctx.names)?;
    }
    ctx.journal.start(phase)?;
    info!(phase = %phase, "phase started");
    ctx.progress.line(format_args!("{phase}: started"));
    let result = run_phase(ctx, phase).instrument(info_span!("phase", name = %phase)).await;
    let seconds = started.elapsed().as_secs_f64();
    if result.is_err() {
        // The error itself is the caller's to show.
        ctx.progress.line(format_args!("{phase}: failed after {seconds:.1} s"));
        return result;
    }
    ctx.journal.finish(phase)?;
    info!(phase = %phase, seconds, "phase done");
    ctx.progress.line(format_args!("{phase}: done in {seconds:.1} s"));
    Ok(())
}

async fn run_phase(ctx: &mut Context, phase: Phase) -> Result<(), CutoverError> {
    match phase {
        Phase::Preflight => run_preflight(ctx).await,
        Phase::Snapshot => snapshot::run(ctx).await,
        Phase::Restore => restore::run(ctx).await,
        Phase::Migrate | Phase::Smoke => commands::run(ctx, phase).await,
        Phase::Catchup => catchup::run(ctx).await,
        Phase::Cutover => flip::run(ctx, Direction::Cutover).await.map(|_| ()),
        Phase::Validate => window::run(ctx).await,
        Phase::Rollback => rollback_in(ctx).await,
        Phase::Promote => promotion::promote(ctx).await,
        Phase::Retire => promotion::retire(ctx).await,
    }
}

/// The context, with `/metrics` served when the plan asks for it.
async fn open_serving(plan_path: &Path, progress: Progress, command: &str) -> Result<Context, CutoverError> {
    let ctx = Context::open_locked(plan_path, progress, command, Reach::Both).await?;
    if let Some(addr) = ctx.plan.metrics.listen {
        ctx.metrics
            .serve(addr)
            .await
            .map_err(|source| CutoverError::Io { what: format!("[metrics] listen = {addr}: cannot listen"), source })?;
    }
    Ok(ctx)
}

/// `pgflip cutover rollback`: back to blue after a cutover, losing nothing.
pub async fn rollback(plan_path: &Path, progress: Progress) -> Result<(), CutoverError> {
    let mut ctx = open_serving(plan_path, progress, "rollback").await?;
    let started = Instant::now();
    progress.line("rollback: started");
    let result = rollback_in(&mut ctx).await;
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(()) => progress.line(format_args!("rollback: done in {seconds:.1} s; blue serves, `run` cuts over again")),
        Err(_) => progress.line(format_args!("rollback: failed after {seconds:.1} s")),
    }
    result
}

/// Runs the rollback phase; afterwards the cutover and the validation are to be done again.
pub async fn rollback_in(ctx: &mut Context) -> Result<(), CutoverError> {
    let cutover_started = ctx.journal.phase(Phase::Cutover).is_some();
    let rollback_pending = ctx.journal.fact(Phase::Rollback, "step").is_some_and(|s| !s.is_null());
    if ctx.journal.completed(Phase::Promote) || !(ctx.journal.completed(Phase::Cutover) || rollback_pending) {
        let why = if cutover_started { "the cutover has not finished" } else { "there was no cutover" };
        return Err(CutoverError::Refused(format!("nothing to roll back: {why}")));
    }
    ctx.metrics.phase.set(Phase::Rollback.number());
    ctx.journal.start(Phase::Rollback)?;
    flip::run(ctx, Direction::Rollback).instrument(info_span!("phase", name = "rollback")).await?;
    ctx.journal.finish(Phase::Rollback)?;
    ctx.journal.reopen(Phase::Cutover)?;
    ctx.journal.reopen(Phase::Validate)?;
    ctx.metrics.phase.set(0);
    info!("rolled back: blue serves; `run` cuts over again");
    Ok(())
}

/// `pgflip cutover promote`: green for good, then the retire command.
pub async fn promote(plan_path: &Path, progress: Progress) -> Result<(), CutoverError> {
    let mut ctx = open_serving(plan_path, progress, "promote").await?;
    refuse_while_unfinished(&ctx, "promote", None)?;
    if !ctx.journal.completed(Phase::Cutover) {
        return Err(CutoverError::Refused("nothing to promote: green does not serve (run the cutover first)".into()));
    }
    for phase in [Phase::Promote, Phase::Retire] {
        if ctx.journal.completed(phase) {
            continue;
        }
        timed_phase(&mut ctx, phase).await?;
    }
    ctx.metrics.phase.set(0);
    Ok(())
}

async fn run_preflight(ctx: &mut Context) -> Result<(), CutoverError> {
    let blue = pg::connect(&ctx.plan.blue_config(), "blue").await?;
    // The database may not exist on green yet: check the server through `postgres`.
    let green = pg::connect(&ctx.plan.green_config_for("postgres"), "green").await?;
    let client_tools = match &ctx.plan.tools.bin_dir {
        Some(dir) => ClientTools {
            pg_dump: ProgramVersion::probe(dir.join("pg_dump")).await,
            pg_restore: ProgramVersion::probe(dir.join("pg_restore")).await,
            found: None,
        },
        None => {
            let blue_major = pg::server_major(&blue, "blue").await?;
            let green_major = pg::server_major(&green, "green").await?;
            let (tools, judged) =
                client_programs::choose(&mut ctx.journal, ctx.progress, blue_major, green_major).await?;
            ctx.tools = tools;
            judged
        }
    };
    let options = PreflightOptions {
        app_roles: ctx.plan.app.roles.clone(),
        allow_replica_identity_full: ctx.plan.preflight.allow_replica_identity_full.clone(),
        database: ctx.plan.database().to_owned(),
        client_tools: Some(client_tools),
    };
    let report = preflight::run(&blue, &green, &options).await.map_err(CutoverError::sql("preflight"))?;
    ctx.progress.line(&report);
    for (key, value) in &report.facts {
        ctx.journal.set_fact(Phase::Preflight, key, value.clone())?;
    }
    let warnings: Vec<&str> =
        report.findings.iter().filter(|f| f.severity == preflight::Severity::Warning).map(|f| f.check).collect();
    ctx.journal.set_fact(Phase::Preflight, "warnings", serde_json::json!(warnings))?;
    if !report.is_ok() {
        let blockers: Vec<String> = report
            .blockers()
            .map(|f| match f.items.is_empty() {
                true => format!("- {}", f.message),
                false => format!("- {} ({})", f.message, f.items.join(", ")),
            })
            .collect();
        return Err(CutoverError::Preflight(blockers.join("\n")));
    }
    Ok(())
}
