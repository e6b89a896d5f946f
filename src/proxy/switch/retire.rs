//! Closing server connections that a switch left behind without loading the server while
//! clients are held or their first queries on the new upstream run.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::proxy::context::ProxyContext;
use crate::proxy::io::write_all;
use crate::proxy::stream::ServerStream;
use crate::wire::frontend;

/// How long a left server connection stays open after the gate opens: the first
/// queries on the new connections need the CPU more than backends exiting do.
const RETIRE_DELAY: Duration = Duration::from_millis(1000);

/// Closes a server connection one to two seconds after the gate opens (spread by `spread`,
/// a backend pid, so that backends do not all exit at once), or when the next switch or
/// pause begins if that is sooner: a backend exiting costs the server CPU time that held
/// clients and their first queries need. Other wake-ups of the gate (the end of a switch's
/// pre-warm just after it resumes) do not count.
pub fn retire(mut old: ServerStream, ctx: &ProxyContext, spread: i32) {
    let delay = RETIRE_DELAY + Duration::from_millis(u64::from(spread.unsigned_abs() % 1000));
    let gate = ctx.gate.clone();
    let rounds = ctx.prewarm_rounds.clone();
    let mut changes = gate.subscribe();
    tokio::spawn(async move {
        while gate.is_closed() {
            if changes.changed().await.is_err() {
                break;
            }
        }
        let round = rounds.load(Ordering::Relaxed);
        let leave_at = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(leave_at) => break,
                changed = changes.changed() => {
                    // A next switch starts its pre-warm, or a pause closes the gate: leave
                    // before it holds clients.
                    if changed.is_err() || rounds.load(Ordering::Relaxed) != round || gate.is_closed() {
                        break;
                    }
                }
            }
        }
        let mut bye = Vec::with_capacity(5);
        frontend::terminate(&mut bye);
        let _ = write_all(&mut old, &bye).await;
    });
}
