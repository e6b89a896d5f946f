//! A flip of the fleet from one side to the other: the cutover (blue -> green) and the
//! rollback (green -> blue) are the same steps in opposite directions (DESIGN 3.3, 3.4):
//!
//! 1. pause every sidecar (lease renewed while the flip runs);
//! 2. fence the old side (app roles NOLOGIN, their backends ended; a trigger on every table
//!    refuses writes but replication's, other sessions that could still write ended;
//!    nothing prepared);
//! 3. fence marker and fence LSN; wait until the new side has confirmed it;
//! 4. detach the link into the new side (subscription disabled, slot dropped);
//! 5. copy sequences to the new side;
//! 6. attach the link back (a new slot on the new side, taken before it takes any write),
//!    and have it apply, with no copy, the tables made on both sides that the link into
//!    the new side applied: their rows are equal now ([`drift::adopt`]);
//! 7. open the new side (its fence, if any, removed; the app roles given LOGIN);
//! 8. switch every sidecar (the point of no return is the first success), write the
//!    sidecars' durable target, resume; report the old side to the sidecars as the
//!    standby, with the lag of the link that now feeds it.
//!
//! Any failure before step 8 undoes what was done ([`undo`]) and resumes the fleet on
//! the old side. Each step is recorded in the journal, so that a run that died half way
//! is resolved: forward when any sidecar already serves the new side, back otherwise.

mod gap;
mod ready;
mod renewal;
mod step;
mod switch;
mod undo;

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::api::{OnTimeout, PauseRequest};

use super::drift;
use super::error::CutoverError;
use super::failpoint;
use super::fence::{self, FencePoint};
use super::fleet::Fleet;
use super::links::{self, Link, OneWay};
use super::names::LinkNames;
use super::pg;
use super::phase::Phase;
use super::runner::Context;
use super::sequences;
use super::standby;
use super::target::Target;
use renewal::Renewal;
use step::{record, recorded_step, Step};
use switch::{register_upstreams, serving, switch_all};

/// Deadline of one sidecar call that does not wait for sessions.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// Which way a flip goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Blue -> green.
    Cutover,
    /// Green -> blue.
    Rollback,
}

impl Direction {
    pub fn phase(self) -> Phase {
        match self {
            Direction::Cutover => Phase::Cutover,
            Direction::Rollback => Phase::Rollback,
        }
    }

    /// The side writes leave and the side they move to.
    pub fn sides(self) -> (&'static str, &'static str) {
        match self {
            Direction::Cutover => ("blue", "green"),
            Direction::Rollback => ("green", "blue"),
        }
    }

    /// The link that fed the new side, and the one that will feed the old side.
    fn links(self, names: &LinkNames) -> (Link<'_>, Link<'_>) {
        match self {
            Direction::Cutover => (names.forward(), names.reverse()),
            Direction::Rollback => (names.reverse(), names.forward()),
        }
    }
}

/// What a finished flip reports.
#[derive(Debug, Clone)]
pub struct Flipped {
    pub write_pause: Duration,
    pub fence_wait: Duration,
}

/// Both databases, the fleet and the app roles a flip works on.
pub(super) struct Sides {
    pub blue: Client,
    pub green: Client,
    pub fleet: Fleet,
    /// The app roles that can log in when not fenced.
    pub roles: Vec<String>,
    /// The replication objects' names.
    pub names: LinkNames,
}

impl Sides {
    pub async fn open(ctx: &mut Context) -> Result<Sides, CutoverError> {
        let blue = pg::connect(&ctx.plan.blue_config(), "blue").await?;
        let green = pg::connect(&ctx.plan.green_config(), "green").await?;
        let fleet = Fleet::discover(&ctx.plan.cutover).await?;
        // Read once, before any fence, from blue: later runs must not read a fenced state.
        let roles = match ctx.journal.fact(Phase::Cutover, "login_roles") {
            Some(value) => serde_json::from_value(value.clone()).unwrap_or_default(),
            None => {
                let roles = fence::login_roles(&blue, &ctx.plan.app.roles).await?;
                ctx.journal.set_fact(Phase::Cutover, "login_roles", json!(roles))?;
                roles
            }
        };
        Ok(Sides { blue, green, fleet, roles, names: ctx.names.clone() })
    }

    pub fn client(&self, side: &str) -> &Client {
        if side == "blue" {
            &self.blue
        } else {
            &self.green
        }
    }
}

/// Runs a flip; a flip an earlier run left half done is resolved first.
pub async fn run(ctx: &mut Context, direction: Direction) -> Result<Flipped, CutoverError> {
    let sides = Sides::open(ctx).await?;
    if sides.fleet.sidecars.is_empty() {
        return Err(CutoverError::Refused("[cutover] sidecars and sidecars_dns name no sidecar".into()));
    }
    let phase = direction.phase();
    if let Some(step) = recorded_step(ctx, phase) {
        warn!(step = step.name(), "an earlier run stopped in the middle of this flip: resolving it");
        if undo::resolve(ctx, &sides, direction).await? {
            return finished(ctx, &sides, direction, Duration::ZERO, Duration::ZERO).await;
        }
    }
    ctx.journal.set_fact(phase, "step", json!(null))?;
    let (from, to) = direction.sides();
    let target_upstream = upstream_name(ctx, to);
    register_upstreams(ctx, &sides.fleet).await?;
    // An earlier abort may have left the link into the new side with its slot but not its
    // subscription (the new side was down then).
    let (into_new, _) = direction.links(&sides.names);
    let old_url = side_url(ctx, from).to_owned();
    ready::refuse_stopped(sides.client(to), into_new).await?;
    if !links::has_slot(sides.client(from), into_new).await? {
        return Err(CutoverError::Refused(format!(
            "replication from {from} to {to} has no slot on {from}: {to} cannot be proven current"
        )));
    }
    links::subscribe(sides.client(to), into_new, &old_url).await?;
    let not_reversible = match direction {
        Direction::Cutover => {
            links::publish_reverse(&sides.green, &sides.blue, sides.names.reverse(), &ctx.plan.ddl).await?
        }
        Direction::Rollback => {
            // Tables made on both sides since the cutover go back too.
            links::publish_reverse(&sides.green, &sides.blue, sides.names.reverse(), &ctx.plan.ddl).await?;
            Vec::new()
        }
    };
    let from_target = side_target(ctx, from);
    let own = drift::OwnCopy {
        publisher: &from_target,
        ddl: &ctx.plan.ddl,
        confirm_within: ctx.plan.cutover.catchup_timeout,
    };
    let drift = drift::reconcile(sides.client(from), sides.client(to), into_new, &own).await?;
    if !drift.missing.is_empty() {
        return Err(CutoverError::Refused(format!(
            "{from} publishes tables {to} lacks: {}. Their writes cannot reach {to}: create them on {to} (the \
             same DDL), then run again; nothing was paused",
            drift.missing.join(", ")
        )));
    }
    let copier = if drift.copied_by_pgflip { "pgflip" } else { "PostgreSQL" };
    for table in &drift.refreshed {
        ctx.progress.line(format_args!("{to} now applies {table} (it exists on both sides; rows copied by {copier})"));
    }
    for item in &not_reversible {
        ctx.progress.line(format_args!("not reversible: {}: {}", item.table, item.why));
    }
    let one_way = &ctx.plan.cutover.one_way_tables;
    let unacknowledged: Vec<&str> = not_reversible
        .iter()
        .filter(|n| n.why == OneWay::IdentityFullWidened && !one_way.contains(&n.table))
        .map(|n| n.table.as_str())
        .collect();
    if !unacknowledged.is_empty() {
        return Err(CutoverError::Refused(format!(
            "green added columns to REPLICA IDENTITY FULL tables {}: their writes after the cutover could not go \
             back to blue on a rollback. Give them a primary key or replica identity index on both sides, or accept \
             that with [cutover] one_way_tables = [{}] (validation then leaves them out); nothing was paused",
            unacknowledged.join(", "),
            unacknowledged.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ")
        )));
    }
    ctx.journal.set_fact(
        phase,
        "not_reversible",
        json!(not_reversible.iter().map(|n| &n.table).collect::<Vec<_>>()),
    )?;
    if direction == Direction::Cutover {
        let acknowledged: Vec<&String> =
            not_reversible.iter().filter(|n| n.why == OneWay::IdentityFullWidened).map(|n| &n.table).collect();
        ctx.journal.set_fact(phase, "one_way", json!(acknowledged))?;
    }

    let cutover = ctx.plan.cutover.clone();
    // Nothing pauses unless the flip can finish: every sidecar ready, the link current.
    ready::sidecars_ready(&sides.fleet, &target_upstream).await?;
    let ready_by = Instant::now() + cutover.catchup_timeout;
    ready::wait_current(sides.client(from), sides.client(to), into_new, ctx.plan.catchup.max_lag_bytes, ready_by)
        .await?;
    let lacks = gap::target_lacks(sides.client(from), from, sides.client(to), to).await?;
    let paused_at = Instant::now();
    let lease = cutover.max_write_pause + cutover.drain_timeout + Duration::from_secs(10);
    let pause = PauseRequest {
        drain_timeout_ms: Some(cutover.drain_timeout.as_millis() as u64),
        lease_ms: Some(lease.as_millis() as u64),
        on_timeout: Some(OnTimeout::Abort),
        // Sessions that set a setting the new side lacks (another major version) block the
        // pause, before anything is fenced.
        to: Some(target_upstream.clone()),
        to_lacks: Some(lacks),
        ..PauseRequest::default()
    };
    info!(sidecars = sides.fleet.sidecars.len(), from, to, "pausing the fleet");
    let answers = sides.fleet.pause(&pause, cutover.drain_timeout + CALL_DEADLINE).await;
    record(ctx, phase, Step::Paused)?;
    let renewal = Renewal::start(sides.fleet.clone(), pause.clone(), lease);
    if let Some(e) = answers.iter().find_map(|a| a.as_ref().err()) {
        renewal.stop().await;
        let reason = format!("pausing the fleet failed: {e}");
        return Err(undo::abort(ctx, &sides, direction, reason).await);
    }
    let before_switch = paused_at + cutover.max_write_pause;
    let prepared = prepare(ctx, &sides, direction, before_switch).await;
    let fence_wait = match prepared {
        Ok(wait) => wait,
        Err(e) => {
            renewal.stop().await;
            return Err(undo::abort(ctx, &sides, direction, e.to_string()).await);
        }
    };

    record(ctx, phase, Step::Switching)?;
    failpoint::hit("before-switch");
    let switched = switch_all(ctx, &sides.fleet, &target_upstream).await;
    renewal.stop().await;
    // After a partial failure, the sidecars that serve the new side resume; the others stay
    // paused (their lease resumes them) while the operator switches them.
    let serving = match &switched {
        Ok(_) => sides.fleet.clone(),
        Err(_) => serving(&sides.fleet, &target_upstream).await,
    };
    let resumed = serving.resume(CALL_DEADLINE).await;
    let generation = switched?;
    let write_pause = paused_at.elapsed();
    for failed in resumed.iter().filter_map(|r| r.as_ref().err()) {
        warn!(error = %failed, "resuming a sidecar failed; its pause lease resumes it");
    }
    ctx.journal.set_fact(phase, "sidecar_generation", json!(generation))?;
    finished(ctx, &sides, direction, write_pause, fence_wait).await
}

/// Steps 2 to 7, each recorded; returns how long the fence LSN took to arrive.
async fn prepare(
    ctx: &mut Context,
    sides: &Sides,
    direction: Direction,
    deadline: Instant,
) -> Result<Duration, CutoverError> {
    let phase = direction.phase();
    let (from, to) = direction.sides();
    let (into_new, back) = direction.links(&sides.names);
    let cutover = ctx.plan.cutover.clone();
    let (old, new) = (sides.client(from), sides.client(to));
    let step_deadline = |limit: Duration| (Instant::now() + limit).min(deadline);

    let fenced = fence::fence(old, from, &sides.roles, step_deadline(cutover.drain_timeout)).await?;
    record(ctx, phase, Step::Fenced)?;
    if !fenced.ended.is_empty() {
        let list: Vec<String> = fenced.ended.iter().map(ToString::to_string).collect();
        ctx.progress.line(format_args!(
            "{from}: the fence ended {} session(s) outside the fleet that could still write: {}",
            list.len(),
            list.join(", ")
        ));
    }
    failpoint::hit("after-fence");
    let flip = ctx.journal.fact(phase, "flips").and_then(|v| v.as_u64()).unwrap_or(0) + 1;
    let point: FencePoint = fence::mark(old, from, flip).await?;
    ctx.journal.set_fact(phase, "fence_lsn", json!(point.lsn))?;
    info!(side = from, lsn = %point.lsn, marker = point.marker, "fenced; waiting for the fence LSN");
    let fence_wait =
        fence::wait_confirmed(old, new, into_new.name, &point, step_deadline(cutover.catchup_timeout)).await?;
    info!(waited_ms = fence_wait.as_millis() as u64, "fence LSN confirmed on {to}");
    failpoint::hit("after-fence-lsn");

    links::detach(old, new, into_new, step_deadline(cutover.drain_timeout)).await?;
    record(ctx, phase, Step::Detached)?;
    failpoint::hit("after-detach");
    sequences::copy(old, from, new, to).await?;
    let new_url = side_url(ctx, to).to_owned();
    links::attach(new, old, back, &new_url, step_deadline(cutover.drain_timeout)).await?;
    for table in drift::adopt(new, old, back, into_new).await? {
        ctx.progress.line(format_args!("{from} now applies {table} on the way back (equal on both sides)"));
    }
    record(ctx, phase, Step::Attached)?;
    fence::unfence(new, to, &sides.roles, step_deadline(cutover.drain_timeout)).await?;
    record(ctx, phase, Step::Opened)?;
    if Instant::now() > deadline {
        return Err(CutoverError::Refused(format!(
            "the write pause would exceed [cutover] max_write_pause ({:.1} s)",
            ctx.plan.cutover.max_write_pause.as_secs_f64()
        )));
    }
    Ok(fence_wait)
}

/// Records the flip's end: journal facts, the gauge, a line for people.
async fn finished(
    ctx: &mut Context,
    sides: &Sides,
    direction: Direction,
    write_pause: Duration,
    fence_wait: Duration,
) -> Result<Flipped, CutoverError> {
    let phase = direction.phase();
    let flips = ctx.journal.fact(phase, "flips").and_then(|v| v.as_u64()).unwrap_or(0) + 1;
    ctx.journal.set_fact(phase, "flips", json!(flips))?;
    ctx.journal.set_fact(phase, "step", json!(null))?;
    ctx.journal.set_fact(phase, "write_pause_ms", json!(write_pause.as_millis() as u64))?;
    ctx.journal.set_fact(phase, "fence_wait_ms", json!(fence_wait.as_millis() as u64))?;
    ctx.metrics.write_pause_seconds.set(write_pause.as_secs_f64());
    let (from, to) = direction.sides();
    let (_, back) = direction.links(&sides.names);
    standby::report_fed_by(&sides.fleet, &upstream_name(ctx, from), sides.client(to), back).await;
    ctx.progress.line(format_args!(
        "{}: the fleet ({} sidecars) serves {to}; write pause {:.0} ms (fence LSN wait {:.0} ms)",
        phase,
        sides.fleet.sidecars.len(),
        write_pause.as_secs_f64() * 1e3,
        fence_wait.as_secs_f64() * 1e3
    ));
    Ok(Flipped { write_pause, fence_wait })
}

/// The plan's (superuser) address of `side`, as the other side's server reaches it.
pub(super) fn side_url<'a>(ctx: &'a Context, side: &str) -> &'a str {
    if side == "blue" {
        &ctx.plan.blue.url
    } else {
        &ctx.plan.green.url
    }
}

/// The plan's connection to `side`.
fn side_target(ctx: &Context, side: &str) -> Target {
    if side == "blue" {
        ctx.plan.blue_config()
    } else {
        ctx.plan.green_config()
    }
}

/// The name the sidecars know `side` by.
pub(super) fn upstream_name(ctx: &Context, side: &str) -> String {
    ctx.plan.cutover.upstream_name(side).to_owned()
}
