//! Undoing a flip that failed before any sidecar switched, and resolving one a dead run
//! left half done. Every step checks the databases rather than trusting the journal, so
//! it can run again after dying itself.

use std::time::{Duration, Instant};

use serde_json::json;
use tracing::{info, warn};

use super::step::{recorded_step, Step};
use super::{serving, side_url, switch_all, upstream_name, Direction, Sides, CALL_DEADLINE};
use crate::controller::error::CutoverError;
use crate::controller::fence;
use crate::controller::links;
use crate::controller::runner::Context;
use crate::controller::sequences;

/// How long each undo step may take.
const UNDO_DEADLINE: Duration = Duration::from_secs(30);

/// The generation a drain's fence marker carries (a flip's carry their flip number).
const DRAIN_MARKER: u64 = 0;

/// Undoes the flip's steps and resumes the fleet where it was; returns the error to
/// report, naming `reason`.
pub(crate) async fn abort(ctx: &mut Context, sides: &Sides, direction: Direction, reason: String) -> CutoverError {
    let (from, _) = direction.sides();
    warn!(reason = %reason, "aborting the flip");
    let undone = back_out(ctx, sides, direction).await;
    let phase = direction.phase();
    match undone {
        Ok(()) => {
            let _ = ctx.journal.set_fact(phase, "step", json!(null));
            CutoverError::Refused(format!("{phase} aborted: {reason}. The fleet serves {from}, unfenced, as before."))
        }
        Err(e) => CutoverError::Refused(format!(
            "{phase} aborted: {reason}. Undoing it failed too: {e}. Run the command again to finish undoing it."
        )),
    }
}

/// Resolves a flip an earlier run left half done: forward when any sidecar serves the new
/// side (`Ok(true)`: the flip is complete now), otherwise back (an error saying so).
pub(crate) async fn resolve(ctx: &mut Context, sides: &Sides, direction: Direction) -> Result<bool, CutoverError> {
    let (from, to) = direction.sides();
    let target = upstream_name(ctx, to);
    let statuses = sides.fleet.status(CALL_DEADLINE).await;
    let forward = statuses.iter().any(|s| s.as_ref().is_ok_and(|s| s.active == target));
    if forward {
        info!(to, "a sidecar already serves {to}: finishing the flip");
        fence::unfence(sides.client(to), to, &sides.roles, Instant::now() + UNDO_DEADLINE).await?;
        let switched = switch_all(ctx, &sides.fleet, &target).await;
        let serving = match &switched {
            Ok(_) => sides.fleet.clone(),
            Err(_) => serving(&sides.fleet, &target).await,
        };
        for answer in serving.resume(CALL_DEADLINE).await {
            if let Err(e) = answer {
                warn!(error = %e, "resuming a sidecar failed; its pause lease resumes it");
            }
        }
        switched?;
        return Ok(true);
    }
    if let Some(e) = statuses.iter().find_map(|s| s.as_ref().err()) {
        return Err(CutoverError::Refused(format!(
            "cannot tell where the interrupted flip stands: {e}. Run again once every sidecar answers."
        )));
    }
    info!(from, "no sidecar serves {to}: undoing the interrupted flip");
    back_out(ctx, sides, direction).await?;
    ctx.journal.set_fact(direction.phase(), "step", json!(null))?;
    Err(CutoverError::Refused(format!(
        "an earlier run stopped this {} before any sidecar switched; it was undone and the fleet serves {from}, \
         unfenced. Run again to start it afresh.",
        direction.phase()
    )))
}

/// Opens the old side again and resumes the fleet on it, after putting back what the flip
/// changed: what the new side took in since it opened is drained back to the old side
/// ([`drain`]), the new side is closed again, the way back detached, and the link into the
/// new side given a slot again if it lost it (the old side is still fenced, so the new side
/// misses nothing). Other steps on the new side are best effort: it may be the side that
/// failed.
async fn back_out(ctx: &Context, sides: &Sides, direction: Direction) -> Result<(), CutoverError> {
    let (from, to) = direction.sides();
    let (into_new, back) = direction.links(&sides.names);
    let (old, new) = (sides.client(from), sides.client(to));
    let deadline = || Instant::now() + UNDO_DEADLINE;
    let reached = recorded_step(ctx, direction.phase());
    let result = async {
        drain(sides, direction, reached).await?;
        if let Err(e) = links::detach(new, old, back, deadline()).await {
            warn!(link = back.name, error = %e, "detaching the way back failed");
        }
        if !links::has_slot(old, into_new).await? {
            links::create_slot(old, into_new, deadline()).await?;
        }
        if let Err(e) = links::subscribe(new, into_new, side_url(ctx, from)).await {
            warn!(link = into_new.name, error = %e, "re-enabling replication into {to} failed; the next run does it");
        }
        fence::unfence(old, from, &sides.roles, deadline()).await
    }
    .await;
    resume(sides).await;
    result
}

/// Closes the new side again; once the way back was attached (`reached` that step), the new
/// side may have taken writes (the app's, through a sidecar that switched and was restarted
/// since; anyone's, once it opened): it is fenced, and the old side must confirm the new
/// side's fence LSN and take its sequences before the way back is detached. Until the new
/// side opened, failing that is only a warning; after, it stops the back-out, which the next
/// run retries.
async fn drain(sides: &Sides, direction: Direction, reached: Option<Step>) -> Result<(), CutoverError> {
    let (from, to) = direction.sides();
    let (_, back) = direction.links(&sides.names);
    let (old, new) = (sides.client(from), sides.client(to));
    let deadline = Instant::now() + UNDO_DEADLINE;
    if reached.is_none_or(|step| step < Step::Attached) {
        if let Err(e) = fence::close(new, to, &sides.roles, deadline).await {
            warn!(side = to, error = %e, "closing the new side again failed");
        }
        return Ok(());
    }
    let drained = async {
        fence::fence(new, to, &sides.roles, deadline).await?;
        let point = fence::mark(new, to, DRAIN_MARKER).await?;
        info!(side = to, lsn = %point.lsn, "draining {to}'s writes back to {from} before backing out");
        fence::wait_confirmed(new, old, back.name, &point, deadline).await?;
        sequences::copy(new, to, old, from).await
    }
    .await;
    match drained {
        Ok(_) => Ok(()),
        Err(e) if reached.is_some_and(|step| step >= Step::Opened) => Err(CutoverError::Refused(format!(
            "{to} was open for writes, and draining them back to {from} failed: {e}. Nothing was backed out; run \
             again once {to} answers"
        ))),
        Err(e) => {
            warn!(side = to, error = %e, "draining the new side failed; it never opened for writes");
            Ok(())
        }
    }
}

async fn resume(sides: &Sides) {
    for answer in sides.fleet.resume(CALL_DEADLINE).await {
        if let Err(e) = answer {
            warn!(error = %e, "resuming a sidecar failed; its pause lease resumes it");
        }
    }
}
