//! Forwarding a session until either side ends, parking behind the closed gate, and
//! moving to another upstream when the active one changes while parked.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::proxy::capture::SettingNeeds;
use crate::proxy::context::ProxyContext;
use crate::proxy::session::pump::{Pump, PumpEnd};
use crate::proxy::session::setup::{self, Opened};
use crate::proxy::session::target::{self, Want};
use crate::proxy::session::{answer, migrate, send_error, Established, SessionError};
use crate::proxy::standby::{Decision, Listener};
use crate::proxy::stream::ClientStream;
use crate::proxy::switch::{Capture, SessionInfo};
use crate::proxy::upstream::{Upstream, UpstreamError};

/// A server connection being opened.
type Connecting = Pin<Box<dyn Future<Output = Result<Opened, UpstreamError>> + Send>>;
use crate::wire::backend::Severity;

/// Forwards until either side ends. While the gate is closed the session parks; a parked
/// session follows a repoint to the new active upstream, and one whose server connection
/// was lost while parked reconnects before it goes on.
pub(super) async fn forward(mut s: Established, ctx: &ProxyContext) -> Result<(), SessionError> {
    let mut gate = ctx.gate.subscribe();
    let mut standby = match (&ctx.standby, s.listener) {
        (Some(standby), Listener::Standby) => Some(standby.subscribe()),
        _ => None,
    };
    let kill = s.pump.info().kill.clone();
    let held = s.pump.held().clone();
    // A connection to a coming switch's target, being opened or ready.
    let mut warming: Option<(Arc<Upstream>, u64, Connecting)> = None;
    loop {
        if kill.is_cancelled() {
            let why = killed(s.pump.info());
            return end_session_if_clean(&mut s, ctx, &why).await;
        }
        match ctx.prewarm_target() {
            Some((target, round))
                if s.pump.info().prewarmed() != round && warming.as_ref().is_none_or(|w| w.1 != round) =>
            {
                match target::after_switch(&s, ctx, &target).filter(|to| to.name != s.upstream.name) {
                    None => {
                        s.pump.info().set_prewarmed(round);
                        ctx.sessions.notify_changed();
                    }
                    Some(to) => {
                        let (startup, login) = (s.startup.clone(), ctx.login_for(&to, &s.user));
                        let (upstream, timeout) = (to.clone(), ctx.limits.connect_timeout);
                        let statements = s.pump.statements().to_vec();
                        let (slots, baselines) = (ctx.prewarm_slots.clone(), ctx.baselines.clone());
                        let connecting: Connecting = Box::pin(async move {
                            let _slot = slots.acquire_owned().await;
                            setup::open(&upstream, &startup, &login, timeout, statements, &baselines).await
                        });
                        warming = Some((to, round, connecting));
                    }
                }
            }
            None if s.warm.is_some() || warming.is_some() => {
                // The switch is over or was given up: the spare connection goes.
                s.warm = None;
                warming = None;
            }
            _ => {}
        }
        if s.pump.is_parked() || !s.server_alive {
            let (want, generation) = target::now(&s, ctx);
            let reconnect = !s.server_alive && (generation != s.generation || !ctx.gate.is_closed());
            match want {
                Want::Serve(to) => {
                    // The main listener's sessions move on a repoint; the standby
                    // listener's also when the standby's state changes.
                    let elsewhere = to.name != s.upstream.name;
                    let moves = elsewhere && (generation != s.generation || s.listener == Listener::Standby);
                    if moves || reconnect {
                        warming = None;
                        // Boxed, as the capture below: a session's task keeps the room of its
                        // largest state for its whole life, and these are rare and large.
                        if let Err(e) = Box::pin(target::move_to(&mut s, ctx, to, generation)).await {
                            ctx.metrics.session_migrations.with_label_values(&["failed"]).inc();
                            let e = SessionError::MoveFailed(Box::new(e));
                            return Err(answer(&mut s.client, ctx, e).await);
                        }
                        ctx.metrics.session_migrations.with_label_values(&["moved"]).inc();
                        ctx.sessions.notify_changed();
                    } else {
                        s.adopt_generation(generation);
                    }
                }
                Want::Refuse(reason) if reconnect => {
                    let message = format!("pgflip: the standby listener has nowhere to serve this session: {reason}");
                    return end_session(&mut s.client, ctx, "57P03", &message).await;
                }
                // Nowhere else to go: the session stays on its server.
                Want::Refuse(_) => s.adopt_generation(generation),
            }
            s.pump.set_hold(false);
        } else {
            // Park at the next boundary, and move, when the session belongs elsewhere: a
            // repoint it was not parked for (it was logging in, say), or for the standby
            // listener, a change of the standby's state.
            let (want, generation) = target::now(&s, ctx);
            let elsewhere = matches!(want, Want::Serve(to) if to.name != s.upstream.name)
                && (generation != s.generation || s.listener == Listener::Standby);
            s.pump.set_hold(elsewhere);
        }
        if !s.server_alive {
            tokio::select! {
                biased;
                _ = gate.changed() => continue,
                _ = kill.cancelled() => {
                    let why = killed(s.pump.info());
                    return end_session(&mut s.client, ctx, "57P01", &why).await;
                }
                _ = ctx.terminate.cancelled() => return end_session(&mut s.client, ctx, "57P01", SHUTTING_DOWN).await,
                _ = standby_changed(&mut standby) => continue,
            }
        }
        let end = tokio::select! {
            biased;
            end = s.pump.run(&mut s.client, &mut s.server, ctx) => end,
            opened = async { warming.as_mut().expect("guarded").2.as_mut().await }, if warming.is_some() => {
                let (target, round, _) = warming.take().expect("guarded");
                match opened {
                    Ok(conn) => s.warm = Some((target, conn)),
                    Err(e) => debug!(error = %e, "pre-warming a connection failed; the move will connect"),
                }
                s.pump.info().set_prewarmed(round);
                ctx.sessions.notify_changed();
                continue;
            }
            // The pump reads the gate when it runs; a change only needs to wake it.
            _ = gate.changed() => continue,
            _ = held.cancelled() => {
                if held.take() {
                    s.pump.answer_held_cancel(&ctx.metrics);
                }
                continue;
            }
            _ = standby_changed(&mut standby) => continue,
            _ = kill.cancelled() => {
                let why = killed(s.pump.info());
                return end_session_if_clean(&mut s, ctx, &why).await;
            }
            _ = ctx.terminate.cancelled() => return end_session_if_clean(&mut s, ctx, SHUTTING_DOWN).await,
        };
        match end {
            PumpEnd::Parked => {
                debug!(upstream = %s.upstream.name, "session parked");
                match Box::pin(migrate::capture(&mut s, ctx)).await {
                    Ok(()) => {
                        let (unmovable, needs) = match &s.snapshot {
                            Some(snap) => (snap.unmovable.clone(), SettingNeeds::of(&s.startup, snap)),
                            None => Default::default(),
                        };
                        let needs = Arc::new(needs);
                        s.pump.info().set_capture(Capture::Done { unmovable, needs });
                        ctx.sessions.notify_changed();
                    }
                    Err(e) => {
                        // Such a session cannot move; a pause lists it, a switch ends it.
                        warn!(error = %e, "capturing the session state failed");
                        s.pump.info().set_capture(Capture::Failed(e.to_string()));
                        ctx.sessions.notify_changed();
                        if matches!(e, SessionError::ClientIo(_)) {
                            return Err(e);
                        }
                    }
                }
            }
            PumpEnd::ServerClosed { .. } | PumpEnd::ServerIo(_) if s.pump.is_parked() && migrate::can_reconnect(&s) => {
                // A fence on the old server ended it while the client was held: nothing the
                // client sent is lost, and the state is captured. Reconnect on resume.
                warn!(upstream = %s.upstream.name, "server connection lost while parked; the session reconnects on resume");
                s.server_alive = false;
            }
            end => return finish(end, &mut s.pump, &mut s.client, &s.upstream, ctx).await,
        }
    }
}

const KILLED: &str = "terminating connection: pgflip had to end this session to pause or switch (see the pause policy)";

/// What the client of a session ended by a pause or switch is told: [`KILLED`], and why
/// when the pause said.
fn killed(info: &SessionInfo) -> String {
    match info.ending() {
        Some(why) => format!("{KILLED}: {why}"),
        None => KILLED.to_owned(),
    }
}
const SHUTTING_DOWN: &str = "terminating connection due to administrator command: pgflip is shutting down";

async fn end_session_if_clean(s: &mut Established, ctx: &ProxyContext, message: &str) -> Result<(), SessionError> {
    if s.pump.client_at_message_start() {
        send_error(&mut s.client, ctx, Severity::Fatal, "57P01", message).await;
    }
    Ok(())
}

async fn end_session(
    client: &mut ClientStream,
    ctx: &ProxyContext,
    code: &str,
    message: &str,
) -> Result<(), SessionError> {
    send_error(client, ctx, Severity::Fatal, code, message).await;
    Ok(())
}

/// Resolves when the standby listener's route changes; never for a main-listener session.
async fn standby_changed(standby: &mut Option<watch::Receiver<Option<Decision>>>) {
    let gone = match standby {
        Some(changes) => changes.changed().await.is_err(),
        None => true,
    };
    if gone {
        std::future::pending::<()>().await;
    }
}

/// Handles the end of forwarding: tells the client what happened when the server vanished.
async fn finish(
    end: PumpEnd,
    pump: &mut Pump,
    client: &mut ClientStream,
    upstream: &Upstream,
    ctx: &ProxyContext,
) -> Result<(), SessionError> {
    match end {
        PumpEnd::Parked | PumpEnd::ClientTerminated => Ok(()),
        PumpEnd::ClientClosed => Err(SessionError::ClientClosed),
        PumpEnd::ClientIo(e) => Err(SessionError::ClientIo(e)),
        PumpEnd::ClientProtocol(e) => {
            let err = SessionError::ClientProtocol(e);
            if pump.client_at_message_start() {
                return Err(answer(client, ctx, err).await);
            }
            Err(err)
        }
        PumpEnd::ServerClosed { fatal: true } => {
            // The server said why (e.g. it was terminated) and that was forwarded.
            let _ = pump.drain_to_client(client).await;
            Ok(())
        }
        PumpEnd::ServerClosed { fatal: false } | PumpEnd::ServerIo(_) | PumpEnd::ServerProtocol(_) => {
            let err = match end {
                PumpEnd::ServerIo(source) => UpstreamError::Io { upstream: upstream.name.clone(), source },
                PumpEnd::ServerProtocol(source) => UpstreamError::Protocol { upstream: upstream.name.clone(), source },
                _ => UpstreamError::Closed { upstream: upstream.name.clone() },
            };
            ctx.metrics.upstream_error(&upstream.name, err.kind());
            let _ = pump.drain_to_client(client).await;
            let err = SessionError::Upstream(err);
            if pump.client_at_message_start() {
                return Err(answer(client, ctx, err).await);
            }
            Err(err)
        }
    }
}
