//! Keeping the fleet paused while a flip runs: the pause lease is renewed every third of
//! it. Stopping waits for a renewal in flight to finish, so that none reaches a sidecar
//! after the resume and pauses it again.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::api::PauseRequest;
use crate::controller::fleet::Fleet;

/// A running lease renewal.
pub(super) struct Renewal {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Renewal {
    /// Renews `request`'s lease of `lease` on every sidecar of `fleet` until stopped.
    pub(super) fn start(fleet: Fleet, request: PauseRequest, lease: Duration) -> Renewal {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.cancelled() => return,
                    _ = tokio::time::sleep(lease / 3) => {}
                }
                for answer in fleet.pause(&request, lease / 3).await {
                    if let Err(e) = answer {
                        warn!(error = %e, "renewing a sidecar's pause lease failed");
                    }
                }
            }
        });
        Renewal { stop, task }
    }

    /// Stops renewing; returns once no renewal is in flight.
    pub(super) async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            warn!(error = %e, "the pause renewal task failed");
        }
    }
}
