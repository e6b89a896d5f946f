//! `switch`: pause (unless already paused), repoint to another upstream, wait for every
//! parked session to move, and resume (unless the caller paused first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use crate::proxy::catalogs::Catalogs;
use crate::proxy::context::ProxyContext;
use crate::proxy::session::SessionState;
use crate::proxy::switch::advisory::Probe;
use crate::proxy::switch::pause::pause_with;
use crate::proxy::switch::{resume, PauseFailure, PauseOptions, SessionInfo};
use crate::proxy::upstream::{connect::open_stream, RepointError, UpstreamError};

/// How a switch is to be run.
#[derive(Debug, Clone)]
pub struct SwitchOptions {
    pub to: String,
    pub generation: Option<u64>,
    pub pause: PauseOptions,
    /// How long sessions get to move once repointed.
    pub move_timeout: Duration,
}

/// A switch that happened.
#[derive(Debug)]
pub struct Switched {
    pub from: String,
    pub generation: u64,
    /// Sessions now on the new upstream.
    pub moved: usize,
    /// Sessions whose move failed (their clients got FATAL).
    pub failed: u64,
    /// Sessions still not moved at the deadline.
    pub unmoved: usize,
    /// How long clients were held, when this call paused them.
    pub held: Option<Duration>,
    /// Where the call's time went.
    pub timings: SwitchTimings,
}

/// Where a switch call's time went, in the order of its steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct SwitchTimings {
    /// Sessions opening their connections to the target while traffic still flowed
    /// (only when this call paused).
    pub prewarm: Option<Duration>,
    /// From closing the gate until every session was parked with its state read (only
    /// when this call paused).
    pub drain: Option<Duration>,
    /// From the repoint until every session had moved (or the deadline).
    pub moving: Duration,
}

/// Why a switch did not happen; traffic goes on where it was.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("unknown upstream \"{0}\"")]
    Unknown(String),
    #[error(transparent)]
    Repoint(#[from] RepointError),
    #[error("upstream \"{upstream}\" is not reachable, so no session was moved: {source}")]
    Unreachable { upstream: String, source: UpstreamError },
    #[error("{}", .0.reason)]
    Pause(PauseFailure),
}

/// Runs a switch.
pub async fn switch(ctx: &Arc<ProxyContext>, options: SwitchOptions) -> Result<Switched, SwitchError> {
    let target = ctx.registry.get(&options.to).ok_or_else(|| SwitchError::Unknown(options.to.clone()))?;
    let (from, current) = ctx.registry.active_with_generation();
    if let Some(given) = options.generation.filter(|g| *g != current) {
        return Err(RepointError::StaleGeneration { given, current }.into());
    }
    // Fail before anything moves when the target cannot even be reached.
    match tokio::time::timeout(ctx.limits.connect_timeout, open_stream(&target)).await {
        Ok(Ok(_probe)) => {}
        Ok(Err(source)) => return Err(SwitchError::Unreachable { upstream: target.name.clone(), source }),
        Err(_) => {
            let source = UpstreamError::Timeout { upstream: target.name.clone(), addr: target.url.address() };
            return Err(SwitchError::Unreachable { upstream: target.name.clone(), source });
        }
    }
    let paused_here = !ctx.gate.is_closed();
    let mut timings = SwitchTimings::default();
    let mut unwind = Unwind { ctx, reopen: false };
    if paused_here {
        // Sessions open their connections to the target while their traffic still flows,
        // so a move costs clients only the state replay.
        let started = Instant::now();
        // The pause's question about advisory locks goes on a connection that logs in
        // meanwhile, not while clients are held.
        let probe = Probe::start(ctx);
        // Both sides' catalogs, for the OIDs of sessions moved away from home.
        let sides = [from.clone(), target.clone()];
        tokio::join!(prewarm(ctx, &target), Catalogs::refresh(ctx, &sides, ctx.limits.connect_timeout));
        timings.prewarm = Some(started.elapsed());
        let pause = PauseOptions { to: Some(target.clone()), ..options.pause };
        match pause_with(ctx, pause, probe).await {
            Ok(paused) => {
                timings.drain = Some(paused.waited);
                unwind.reopen = true;
            }
            Err(failure) => return Err(SwitchError::Pause(failure)),
        }
    }
    if !paused_here {
        // The caller paused: the catalogs are read while clients are held.
        Catalogs::refresh(ctx, &[from.clone(), target.clone()], ctx.limits.connect_timeout).await;
    }
    let failed_before = ctx.metrics.session_migrations.with_label_values(&["failed"]).get();
    let generation = ctx.registry.repoint(&target.name, options.generation)?.1;
    let snapshot = ctx.registry.snapshot();
    ctx.metrics.set_active(snapshot.upstreams.iter().map(|u| &u.name), &snapshot.active, generation);
    if let Some(standby) = &ctx.standby {
        standby.refresh(&ctx.registry, &ctx.metrics);
    }
    ctx.gate.touch();

    let repointed = Instant::now();
    let deadline = repointed + options.move_timeout;
    let unmoved = ctx
        .sessions
        .wait_while(deadline, Duration::from_millis(2), |s| {
            s.state() == SessionState::Parked && s.generation() != generation
        })
        .await;
    timings.moving = repointed.elapsed();
    let held = if paused_here { resume(ctx) } else { None };
    unwind.reopen = false;
    drop(unwind);
    let moved = ctx.sessions.all().iter().filter(|s| s.generation() == generation).count();
    let failed = ctx.metrics.session_migrations.with_label_values(&["failed"]).get() - failed_before;
    let result = if failed == 0 && unmoved == 0 { "ok" } else { "partial" };
    ctx.metrics.switches.with_label_values(&[result]).inc();
    info!(
        from = %from.name,
        to = %target.name,
        generation,
        moved,
        failed,
        unmoved,
        held_ms = held.map(|d| d.as_millis() as u64),
        prewarm_ms = timings.prewarm.map(|d| d.as_millis() as u64),
        drain_ms = timings.drain.map(|d| d.as_millis() as u64),
        move_ms = timings.moving.as_millis() as u64,
        "switched"
    );
    Ok(Switched { from: from.name.clone(), generation, moved, failed, unmoved, held, timings })
}

/// Longest wait for sessions to open their connections to a switch's target.
const PREWARM_WAIT: Duration = Duration::from_secs(3);

/// Asks every session to open a connection to `target`, and waits (bounded) until each has
/// one, failed to get one, or needs none.
async fn prewarm(ctx: &Arc<ProxyContext>, target: &Arc<crate::proxy::upstream::Upstream>) {
    let round = ctx.prewarm_rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    *ctx.prewarm.lock().unwrap_or_else(|e| e.into_inner()) = Some((target.clone(), round));
    ctx.gate.touch();
    let not_answered = |s: &SessionInfo| {
        !matches!(s.state(), SessionState::Startup | SessionState::Authenticating) && s.prewarmed() != round
    };
    ctx.sessions.wait_while(Instant::now() + PREWARM_WAIT, Duration::from_millis(5), not_answered).await;
}

/// Withdraws the pre-warm request; sessions drop connections they did not use.
fn end_prewarm(ctx: &ProxyContext) {
    ctx.prewarm.lock().unwrap_or_else(|e| e.into_inner()).take();
    ctx.gate.touch();
}

/// What a switch leaves undone however it ends, early return or its task dropped half-way:
/// the pre-warm request is withdrawn and, while `reopen`, the gate this switch closed is
/// opened (after the repoint, sessions then move as they resume).
struct Unwind<'a> {
    ctx: &'a ProxyContext,
    reopen: bool,
}

impl Drop for Unwind<'_> {
    fn drop(&mut self) {
        if self.reopen {
            resume(self.ctx);
        }
        end_prewarm(self.ctx);
    }
}
