//! The flip's last step: every sidecar switched to the new side (retried, since there is
//! no way back once one switched), the sidecars' durable target written; and what comes
//! before the pause, the plan's upstream addresses registered with every sidecar.

use std::time::Duration;

use tracing::{info, warn};

use super::CALL_DEADLINE;
use crate::controller::error::CutoverError;
use crate::controller::fleet::Fleet;
use crate::controller::runner::Context;
use crate::controller::{durable, failpoint};

/// Switches every sidecar to `upstream` (retrying those that fail: there is no way back
/// once one switched); returns the highest generation they report.
pub(super) async fn switch_all(ctx: &mut Context, fleet: &Fleet, upstream: &str) -> Result<u64, CutoverError> {
    let mut generation = 0;
    let mut pending: Vec<_> = fleet.sidecars.clone();
    if failpoint::armed("after-first-switch") {
        let first = fleet.only(pending[..1].to_vec());
        let _ = first.switch(upstream, CALL_DEADLINE).await;
        failpoint::hit("after-first-switch");
    }
    for attempt in 1..=3 {
        let mut failed = Vec::new();
        let answers = fleet.only(pending.clone()).switch(upstream, CALL_DEADLINE + Duration::from_secs(20)).await;
        for (sidecar, answer) in pending.iter().zip(answers) {
            match answer {
                Ok(done) => {
                    generation = generation.max(done.generation);
                    info!(sidecar = %sidecar, generation = done.generation, moved = done.moved, "sidecar switched");
                }
                Err(e) => {
                    warn!(sidecar = %sidecar, attempt, error = %e, "switching a sidecar failed");
                    failed.push(sidecar.clone());
                }
            }
        }
        pending = failed;
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(path) = &ctx.plan.cutover.sidecar_config {
        durable::write_target(path, upstream, generation.max(1))?;
    }
    if let Some(section) = &ctx.plan.kubernetes {
        crate::controller::kube::write_target(section, upstream, generation.max(1)).await?;
    }
    if !pending.is_empty() {
        let list: Vec<String> = pending.iter().map(|s| s.to_string()).collect();
        return Err(CutoverError::Refused(format!(
            "the flip to {upstream} is done, but these sidecars did not switch: {} (their pause lease resumes them on the \
             old upstream; switch them with `pgflip ctl switch`)",
            list.join(", ")
        )));
    }
    Ok(generation)
}

/// Registers the plan's upstream URLs with every sidecar (before any pause).
pub(super) async fn register_upstreams(ctx: &Context, fleet: &Fleet) -> Result<(), CutoverError> {
    let cutover = &ctx.plan.cutover;
    for (name, url) in
        [(&cutover.green_upstream, &cutover.green_upstream_url), (&cutover.blue_upstream, &cutover.blue_upstream_url)]
    {
        let Some(url) = url else { continue };
        if let Some(e) = fleet.put_upstream(name, url, CALL_DEADLINE).await.into_iter().find_map(Result::err) {
            return Err(CutoverError::Refused(format!("registering upstream {name} with the sidecars: {e}")));
        }
    }
    Ok(())
}

/// The part of `fleet` whose sidecars say they serve `upstream`.
pub(super) async fn serving(fleet: &Fleet, upstream: &str) -> Fleet {
    let statuses = fleet.status(CALL_DEADLINE).await;
    let on_it = fleet
        .sidecars
        .iter()
        .zip(statuses)
        .filter(|(_, status)| status.as_ref().is_ok_and(|s| s.active == upstream))
        .map(|(sidecar, _)| sidecar.clone())
        .collect();
    fleet.only(on_it)
}
