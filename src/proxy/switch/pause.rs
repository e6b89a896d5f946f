//! `pause` and `resume`: close the gate, wait until every session is parked at a
//! transaction boundary (or the drain deadline passes), and open it again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use crate::api::{Blocker, OnTimeout, OnUnmovable, TargetLacks};
use crate::proxy::capture::{KnownSettings, Missing, SettingNeeds};
use crate::proxy::catalogs::Catalogs;
use crate::proxy::context::ProxyContext;
use crate::proxy::session::SessionState;
use crate::proxy::standby::Listener;
use crate::proxy::switch::{Capture, GateState, SessionInfo};
use crate::proxy::upstream::Upstream;

/// How a pause is to be run.
#[derive(Debug, Clone)]
pub struct PauseOptions {
    pub drain_timeout: Duration,
    pub lease: Duration,
    pub on_timeout: OnTimeout,
    pub on_unmovable: OnUnmovable,
    /// The upstream a switch will move the sessions to, when known: a session that sets a
    /// setting it lacks (another major version) cannot move, like one with a temp table.
    pub to: Option<Arc<Upstream>>,
    /// What `to` lacks, when the caller said ([`crate::api::PauseRequest::to_lacks`]);
    /// else the sidecar reads its settings.
    pub to_lacks: Option<Arc<TargetLacks>>,
}

/// Every session is parked.
#[derive(Debug)]
pub struct Paused {
    pub parked: usize,
    /// How long the call waited for sessions to reach a boundary.
    pub waited: Duration,
    pub lease_until: Instant,
    /// Sessions ended under the `terminate` policy.
    pub terminated: Vec<Blocker>,
}

/// The pause was given up and the gate is open again: the drain deadline passed with
/// sessions inside transactions, or the gate opened while waiting (lease end, resume).
#[derive(Debug)]
pub struct PauseFailure {
    pub reason: String,
    pub blockers: Vec<Blocker>,
    pub waited: Duration,
}

/// How often the drain re-checks the table even without a wake-up.
const RECHECK: Duration = Duration::from_millis(10);

/// Closes the gate (or renews its lease) and waits for every session to park. With a
/// target ([`PauseOptions::to`]), reads its settings first, while traffic still flows.
pub async fn pause(ctx: &Arc<ProxyContext>, options: PauseOptions) -> Result<Paused, PauseFailure> {
    if let Some(to) = options.to.as_ref().filter(|_| !ctx.gate.is_closed() && options.to_lacks.is_none()) {
        Catalogs::refresh(ctx, std::slice::from_ref(to), ctx.limits.connect_timeout).await;
    }
    pause_with(ctx, options, None).await
}

/// [`pause`], asking about advisory locks on `probe` when given (a connection a switch
/// began to open before it paused), so that no backend starts while clients are held.
pub(super) async fn pause_with(
    ctx: &Arc<ProxyContext>,
    options: PauseOptions,
    probe: Option<super::advisory::Probe>,
) -> Result<Paused, PauseFailure> {
    let started = Instant::now();
    let state = ctx.gate.close(started + options.lease);
    let GateState::Closed { lease_until, .. } = state else { unreachable!("close() leaves the gate closed") };
    spawn_lease_timer(ctx.clone(), lease_until);
    let deadline = (started + options.drain_timeout).min(lease_until);
    let mut terminated = Vec::new();
    let mut probe = probe.or_else(|| super::advisory::Probe::start(ctx));
    let target = Target::of(ctx, options.to.as_ref(), options.to_lacks.clone());
    loop {
        let changed = ctx.sessions.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let blockers: Vec<Arc<SessionInfo>> = ctx.sessions.all().into_iter().filter(|s| blocks(s)).collect();
        if !ctx.gate.is_closed() {
            let reason = "the gate opened while sessions were draining (lease ended or resume called)".to_owned();
            let blockers = blockers.iter().map(|s| describe(ctx, s)).collect();
            return Err(PauseFailure { reason, blockers, waited: started.elapsed() });
        }
        if blockers.is_empty() {
            let parked: Vec<Arc<SessionInfo>> =
                ctx.sessions.all().into_iter().filter(|s| s.state() == SessionState::Parked).collect();
            if let Err(e) = note_advisory_locks(ctx, probe.take(), &parked).await {
                resume(ctx);
                let reason = format!("could not ask the server which parked sessions hold advisory locks: {e}");
                return Err(PauseFailure { reason, blockers: Vec::new(), waited: started.elapsed() });
            }
            let unmovable: Vec<&Arc<SessionInfo>> =
                parked.iter().filter(|s| cannot_move(s, &target).is_some()).collect();
            if unmovable.is_empty() {
                return Ok(Paused { parked: parked.len(), waited: started.elapsed(), lease_until, terminated });
            }
            match options.on_unmovable {
                OnUnmovable::Block => {
                    let blockers: Vec<Blocker> = unmovable.iter().map(|s| describe_for(ctx, s, &target)).collect();
                    let reason = unmovable_reason(&blockers);
                    resume(ctx);
                    return Err(PauseFailure { reason, blockers, waited: started.elapsed() });
                }
                OnUnmovable::Terminate => {
                    for session in unmovable {
                        let blocker = describe_for(ctx, session, &target);
                        session.end(blocker.unmovable.clone().unwrap_or_default());
                        terminated.push(blocker);
                    }
                    let parked = parked.len() - terminated.iter().filter(|b| b.unmovable.is_some()).count();
                    return Ok(Paused { parked, waited: started.elapsed(), lease_until, terminated });
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            match options.on_timeout {
                OnTimeout::Abort => {
                    let reason = format!("{} sessions did not reach a transaction boundary in time", blockers.len());
                    let blockers = blockers.iter().map(|s| describe(ctx, s)).collect();
                    resume(ctx);
                    return Err(PauseFailure { reason, blockers, waited: started.elapsed() });
                }
                OnTimeout::Terminate => {
                    for session in &blockers {
                        if !session.kill.is_cancelled() {
                            terminated.push(describe(ctx, session));
                            session.kill.cancel();
                        }
                    }
                }
            }
        }
        let wake = if now >= deadline { now + RECHECK } else { deadline.min(now + RECHECK) };
        tokio::select! {
            _ = &mut changed => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// Adds the session advisory locks of parked sessions to what keeps them from moving.
async fn note_advisory_locks(
    ctx: &Arc<ProxyContext>,
    probe: Option<super::advisory::Probe>,
    parked: &[Arc<SessionInfo>],
) -> Result<(), crate::proxy::upstream::UpstreamError> {
    // The question goes to the active upstream, where the main listener's sessions are;
    // the standby listener's may be on another server, where a pid means another backend.
    let parked: Vec<Arc<SessionInfo>> = parked.iter().filter(|s| s.listener == Listener::Main).cloned().collect();
    let holders = super::advisory::holders(ctx, probe, &parked).await?;
    for session in &parked {
        if let (Some(count), Capture::Done { mut unmovable, needs }) =
            (holders.get(&session.server_pid()), session.capture())
        {
            unmovable.advisory_locks = *count;
            session.set_capture(Capture::Done { unmovable, needs });
        }
    }
    Ok(())
}

/// Opens the gate. Returns how long clients were held, if it was closed.
pub fn resume(ctx: &ProxyContext) -> Option<Duration> {
    let held = ctx.gate.open()?;
    ctx.metrics.pause_seconds.observe(held.as_secs_f64());
    Some(held)
}

/// Sessions with a server that are not parked, or parked and still capturing their state,
/// keep a pause waiting. Sessions still logging in hold no server yet: they park as soon
/// as they are established.
fn blocks(session: &SessionInfo) -> bool {
    match session.state() {
        SessionState::Startup | SessionState::Authenticating => false,
        SessionState::Parked => session.capture() == Capture::Pending && !session.kill.is_cancelled(),
        _ => !session.kill.is_cancelled(),
    }
}

/// The upstream a pause prepares a switch to, with what it knows of its settings: what
/// the caller said it lacks, or else what the sidecar read.
struct Target {
    name: String,
    lacks: Option<Arc<TargetLacks>>,
    settings: Option<Arc<KnownSettings>>,
}

impl Target {
    /// `to`, unless it is where the main listener's sessions already are.
    fn of(ctx: &ProxyContext, to: Option<&Arc<Upstream>>, lacks: Option<Arc<TargetLacks>>) -> Option<Target> {
        let to = to.filter(|to| to.name != ctx.registry.active().name)?;
        Some(Target { name: to.name.clone(), lacks, settings: ctx.catalogs.settings(&to.name) })
    }

    /// What of `needs` the target lacks.
    fn missing(&self, needs: &SettingNeeds) -> Option<Missing> {
        match (&self.lacks, &self.settings) {
            (Some(lacks), _) => Missing::among(needs, &lacks.settings, &lacks.version),
            (None, Some(settings)) => settings.missing(needs),
            (None, None) => None,
        }
    }
}

/// Why a parked session cannot move, if it cannot: state no server can take, or, for the
/// main listener's sessions, settings the target lacks.
fn cannot_move(session: &SessionInfo, target: &Option<Target>) -> Option<String> {
    match session.capture() {
        Capture::Done { unmovable, .. } if !unmovable.is_empty() => Some(unmovable.describe()),
        Capture::Done { needs, .. } => {
            let target = target.as_ref().filter(|_| session.listener == Listener::Main)?;
            let missing = target.missing(&needs)?;
            Some(format!("cannot move to {}: {missing}", target.name))
        }
        Capture::Failed(reason) => Some(format!("its state could not be read: {reason}")),
        Capture::Pending => None,
    }
}

/// How many sessions a refused pause's reason names; the blockers list them all.
const NAMED: usize = 3;

/// `2 parked sessions hold state that cannot move: 127.0.0.1:50912 (2 temp objects), ...`
fn unmovable_reason(blockers: &[Blocker]) -> String {
    let named: Vec<String> = blockers
        .iter()
        .take(NAMED)
        .map(|b| format!("{} ({})", b.client, b.unmovable.as_deref().unwrap_or_default()))
        .collect();
    let more = blockers.len().saturating_sub(NAMED);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("{} parked sessions hold state that cannot move: {}{more}", blockers.len(), named.join("; "))
}

fn describe(ctx: &ProxyContext, session: &SessionInfo) -> Blocker {
    describe_for(ctx, session, &None)
}

/// A blocker as the admin API reports it; its query's text only with `admin_show_queries`.
fn describe_for(ctx: &ProxyContext, session: &SessionInfo, target: &Option<Target>) -> Blocker {
    let (query, query_len, since) = session.query_and_since();
    Blocker {
        client: session.peer.to_string(),
        backend_pid: session.server_pid(),
        state: session.state().label().to_owned(),
        age_ms: since.elapsed().as_millis() as u64,
        query: super::query_text::shown(&query, query_len, ctx.show_queries),
        unmovable: cannot_move(session, target),
    }
}

/// Opens the gate when the lease ends, unless a later pause renewed it or a resume came.
fn spawn_lease_timer(ctx: Arc<ProxyContext>, lease_until: Instant) {
    tokio::spawn(async move {
        tokio::time::sleep_until(lease_until.into()).await;
        if let Some(held) = ctx.gate.expire(Instant::now()) {
            ctx.metrics.pause_seconds.observe(held.as_secs_f64());
            info!(held_ms = held.as_millis() as u64, "pause lease expired: traffic resumes on the current upstream");
        }
    });
}
