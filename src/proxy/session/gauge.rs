//! Keeps `pgflip_client_sessions{state}` in step with one session's state.

use std::sync::Arc;

use crate::proxy::metrics::Metrics;
use crate::proxy::session::SessionState;

/// Counts its session in exactly one state gauge, from creation until drop.
#[derive(Debug)]
pub struct StateGauge {
    metrics: Arc<Metrics>,
    state: SessionState,
}

impl StateGauge {
    /// Counts a new session in `state`.
    pub fn new(metrics: Arc<Metrics>, state: SessionState) -> StateGauge {
        metrics.sessions(state).inc();
        StateGauge { metrics, state }
    }

    /// Moves the session to `state`.
    pub fn set(&mut self, state: SessionState) {
        if state != self.state {
            self.metrics.sessions(self.state).dec();
            self.metrics.sessions(state).inc();
            self.state = state;
        }
    }
}

impl Drop for StateGauge {
    fn drop(&mut self) {
        self.metrics.sessions(self.state).dec();
    }
}
