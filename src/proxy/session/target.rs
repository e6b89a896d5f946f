//! Which upstream a session belongs on: the active one for the main listener; for the
//! standby listener, the standby while it can serve, else what the fallback says. Opening
//! a standby session's first connection and moving it, with the fallback when the
//! standby turns out not to take it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::api::{StandbyFallback, StandbyRoute};
use crate::proxy::context::ProxyContext;
use crate::proxy::session::setup::{self, Opened};
use crate::proxy::session::{migrate, Established, SessionError};
use crate::proxy::standby::{Listener, Standby};
use crate::proxy::upstream::{Upstream, UpstreamError};
use crate::wire::startup::StartupMessage;

/// How long a session whose login the standby refused (a fenced role, say) stays off it.
const REFUSED_FOR: Duration = Duration::from_secs(30);

/// Where a session should be.
pub(super) enum Want {
    Serve(Arc<Upstream>),
    /// Nowhere: the standby cannot serve and the fallback is to refuse.
    Refuse(String),
}

/// The standby refused a session's login (`upstream`, when).
pub(super) type Refusal = Option<(String, Instant)>;

/// Makes a standby session read-only on every server it uses.
pub(super) fn read_only(startup: &mut StartupMessage) {
    startup.params.retain(|(name, _)| name != "default_transaction_read_only");
    startup.params.push(("default_transaction_read_only".into(), "on".into()));
}

/// Where a session of `listener` belongs, with `active` active (or the registry's), and the
/// registry generation that answer is for.
fn want(ctx: &ProxyContext, listener: Listener, refusal: &Refusal, active: Option<&Arc<Upstream>>) -> (Want, u64) {
    let (active, generation) = match active {
        Some(active) => (active.clone(), ctx.registry.active_with_generation().1),
        None => ctx.registry.active_with_generation(),
    };
    let Some(standby) = ctx.standby.as_ref().filter(|_| listener == Listener::Standby) else {
        return (Want::Serve(active), generation);
    };
    let decision = standby.decide_with(&ctx.registry, Some(&active.name));
    let refused = |name: &str| matches!(refusal, Some((n, at)) if n == name && at.elapsed() < REFUSED_FOR);
    let want = match (decision.route, decision.target) {
        (StandbyRoute::Standby, Some(name)) if refused(&name) => fallback(standby, active, &name),
        (_, Some(name)) => Want::Serve(ctx.registry.get(&name).unwrap_or(active)),
        (_, None) => Want::Refuse(decision.reason.unwrap_or_else(|| "the standby cannot serve".into())),
    };
    (want, generation)
}

fn fallback(standby: &Standby, active: Arc<Upstream>, name: &str) -> Want {
    match standby.config.fallback {
        StandbyFallback::Active => Want::Serve(active),
        StandbyFallback::Refuse => Want::Refuse(format!("standby \"{name}\" refused this session's login")),
    }
}

/// Where the session belongs now, and the registry generation now.
pub(super) fn now(s: &Established, ctx: &ProxyContext) -> (Want, u64) {
    want(ctx, s.listener, &s.standby_refused, None)
}

/// Where the session will belong once `target` is active (for pre-warming).
pub(super) fn after_switch(s: &Established, ctx: &ProxyContext, target: &Arc<Upstream>) -> Option<Arc<Upstream>> {
    match want(ctx, s.listener, &s.standby_refused, Some(target)).0 {
        Want::Serve(upstream) => Some(upstream),
        Want::Refuse(_) => None,
    }
}

/// How a failed connection to the standby counts.
enum Failure {
    /// The server could not be reached: new sessions keep off it for a while.
    Unreachable(String),
    /// It refused this login (role fenced with NOLOGIN, database not there yet).
    Refused,
    /// Anything else: the client's own problem, passed on.
    Other,
}

fn classify(e: &SessionError) -> Failure {
    match e {
        SessionError::Upstream(u) => match u {
            UpstreamError::Connect { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Closed { .. }
            | UpstreamError::Io { .. }
            | UpstreamError::Tls { .. }
            | UpstreamError::TlsRefused { .. } => Failure::Unreachable(u.to_string()),
            UpstreamError::Server { fields, .. } if fields.code.starts_with("57P") => {
                Failure::Unreachable(format!("{} {}", fields.code, fields.message))
            }
            UpstreamError::Server { fields, .. } if fields.code == "28000" || fields.code == "3D000" => {
                Failure::Refused
            }
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// Records what a failed connection to the standby says about it; true when the session
/// should fall back.
fn note_failure(ctx: &ProxyContext, upstream: &str, e: &SessionError, refusal: &mut Refusal) -> bool {
    let Some(standby) = &ctx.standby else { return false };
    match classify(e) {
        Failure::Unreachable(error) => {
            warn!(upstream, error = %error, "the standby is unreachable: standby sessions fall back");
            standby.mark_unreachable(upstream, &error, &ctx.registry, &ctx.metrics);
            true
        }
        Failure::Refused => {
            info!(upstream, error = %e, "the standby refused a standby session's login: it falls back");
            *refusal = Some((upstream.to_owned(), Instant::now()));
            true
        }
        Failure::Other => false,
    }
}

/// A new session's first server connection: where it belongs, opened.
pub(super) struct First {
    pub upstream: Arc<Upstream>,
    pub generation: u64,
    pub opened: Opened,
    pub refusal: Refusal,
}

/// Opens a new session's first server connection.
pub(super) async fn open_first(
    ctx: &ProxyContext,
    listener: Listener,
    startup: &StartupMessage,
    user: &str,
) -> Result<First, SessionError> {
    let mut refusal: Refusal = None;
    loop {
        let upstream = match want(ctx, listener, &refusal, None) {
            (Want::Serve(upstream), generation) => (upstream, generation),
            (Want::Refuse(reason), _) => {
                return Err(SessionError::Refused {
                    code: "57P03",
                    message: format!(
                        "the standby listener refuses new sessions: {reason} (standby_fallback = \"refuse\")"
                    ),
                })
            }
        };
        let (upstream, generation) = upstream;
        let login = ctx.login_for(&upstream, user);
        match setup::open(&upstream, startup, &login, ctx.limits.connect_timeout, Vec::new(), &ctx.baselines).await {
            Ok(opened) => return Ok(First { upstream, generation, opened, refusal }),
            Err(e) => {
                ctx.metrics.upstream_error(&upstream.name, e.kind());
                let e = SessionError::Upstream(e);
                let on_standby = listener == Listener::Standby && upstream.name != ctx.registry.active().name;
                if !(on_standby && note_failure(ctx, &upstream.name, &e, &mut refusal)) {
                    return Err(e);
                }
            }
        }
    }
}

/// How many times a login is made again because a switch changed its target meanwhile;
/// past this (switches back to back), the session moves at its first boundary instead.
const LOGIN_RETRIES: usize = 3;

/// Opens a new session's first server connection, on the upstream it belongs on once the
/// login is done: a switch that repointed while it logged in sends it to the new target
/// before its client has seen anything (a switch moves only the sessions it parked).
pub(super) async fn open_current(
    ctx: &ProxyContext,
    listener: Listener,
    startup: &StartupMessage,
    user: &str,
) -> Result<First, SessionError> {
    let mut first = open_first(ctx, listener, startup, user).await?;
    for _ in 0..LOGIN_RETRIES {
        let (want, generation) = want(ctx, listener, &first.refusal, None);
        match want {
            Want::Serve(to) if generation != first.generation && to.name != first.upstream.name => {
                info!(from = %first.upstream.name, to = %to.name, "a switch repointed during the login: logging in again");
                first = open_first(ctx, listener, startup, user).await?;
            }
            _ => break,
        }
    }
    Ok(first)
}

/// Moves a parked session to `to`. A standby session whose standby does not take it falls
/// back: it stays on its server when that is where the fallback would put it, or moves
/// to the active upstream.
pub(super) async fn move_to(
    s: &mut Established,
    ctx: &ProxyContext,
    to: Arc<Upstream>,
    generation: u64,
) -> Result<(), SessionError> {
    let Err(e) = migrate::migrate(s, ctx, to.clone(), generation).await else {
        return Ok(());
    };
    let on_standby = s.listener == Listener::Standby && to.name != ctx.registry.active().name;
    if !(on_standby && note_failure(ctx, &to.name, &e, &mut s.standby_refused)) {
        return Err(e);
    }
    match now(s, ctx).0 {
        Want::Serve(other) if other.name == s.upstream.name && s.server_alive => {
            s.adopt_generation(generation);
            Ok(())
        }
        Want::Serve(other) if other.name != to.name => migrate::migrate(s, ctx, other, generation).await,
        Want::Refuse(_) if s.server_alive => {
            s.adopt_generation(generation);
            Ok(())
        }
        _ => Err(e),
    }
}
