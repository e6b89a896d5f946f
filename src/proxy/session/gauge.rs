//! Keeps `pgflip_client_sessions{state}` and the session table in step with one
//! session's state.

use std::sync::Arc;

use crate::proxy::metrics::Metrics;
use crate::proxy::session::SessionState;
use crate::proxy::switch::{SessionEntry, SessionInfo};

/// Counts its session in exactly one state gauge, from creation until drop.
#[derive(Debug)]
pub struct StateGauge {
    metrics: Arc<Metrics>,
    state: SessionState,
    entry: SessionEntry,
}

impl StateGauge {
    /// Counts a new session in `state`.
    pub fn new(metrics: Arc<Metrics>, entry: SessionEntry, state: SessionState) -> StateGauge {
        metrics.sessions(state).inc();
        entry.info.set_state(state);
        StateGauge { metrics, state, entry }
    }

    /// The session's record in the session table.
    pub fn info(&self) -> &SessionInfo {
        &self.entry.info
    }

    /// Moves the session to `state`.
    pub fn set(&mut self, state: SessionState) {
        let was = self.state;
        if state != was {
            self.metrics.sessions(was).dec();
            self.metrics.sessions(state).inc();
            self.state = state;
            self.entry.info.set_state(state);
            if state == SessionState::Parked || was == SessionState::Parked {
                self.entry.table().notify_changed();
            }
        }
    }
}

impl Drop for StateGauge {
    fn drop(&mut self) {
        self.metrics.sessions(self.state).dec();
    }
}
