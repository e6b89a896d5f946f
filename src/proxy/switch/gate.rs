//! The pause gate. While it is closed, sessions park at their next transaction boundary.
//!
//! Closing takes a lease: unless renewed, the gate opens by itself when the lease ends, so
//! a controller that dies mid-switch never leaves applications hung. A renewal only ever
//! extends the lease: a later pause asking for less does not cut short the pause that
//! holds the gate (a controller's, renewed while it fences and switches).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

/// Whether traffic may flow, and if not, until when the current lease holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    Open,
    Closed { since: Instant, lease_until: Instant },
}

/// The gate shared by the sessions and the admin API.
#[derive(Debug)]
pub struct Gate {
    /// Mirror of `state` for the forwarding hot path: one atomic load per poll.
    closed: AtomicBool,
    state: Mutex<GateState>,
    changes: watch::Sender<u64>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate { closed: AtomicBool::new(false), state: Mutex::new(GateState::Open), changes: watch::Sender::new(0) }
    }
}

impl Gate {
    /// True while sessions must park at their next boundary.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The state now.
    pub fn state(&self) -> GateState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the gate, or renews the lease of a gate already closed: the lease then ends
    /// at the later of its end and `lease_until`. Returns the state.
    pub fn close(&self, lease_until: Instant) -> GateState {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = match *state {
            GateState::Open => GateState::Closed { since: Instant::now(), lease_until },
            GateState::Closed { since, lease_until: held } => {
                GateState::Closed { since, lease_until: held.max(lease_until) }
            }
        };
        self.closed.store(true, Ordering::Release);
        self.changes.send_modify(|n| *n += 1);
        *state
    }

    /// Opens the gate. Returns how long it was closed, if it was.
    pub fn open(&self) -> Option<std::time::Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let was = std::mem::replace(&mut *state, GateState::Open);
        self.closed.store(false, Ordering::Release);
        self.changes.send_modify(|n| *n += 1);
        match was {
            GateState::Closed { since, .. } => Some(since.elapsed()),
            GateState::Open => None,
        }
    }

    /// Opens the gate if its lease has ended. Returns how long it was closed, if it opened.
    pub fn expire(&self, now: Instant) -> Option<std::time::Duration> {
        let expired = matches!(self.state(), GateState::Closed { lease_until, .. } if lease_until <= now);
        if expired {
            self.open()
        } else {
            None
        }
    }

    /// Wakes every session watching the gate without changing it (after a repoint, so
    /// parked sessions move).
    pub fn touch(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// A receiver that changes whenever the gate opens, closes or is renewed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn close_renew_and_expire() {
        let gate = Gate::default();
        let now = Instant::now();
        let first = gate.close(now + Duration::from_secs(1));
        assert!(gate.is_closed());
        let GateState::Closed { since, .. } = first else { panic!("closed") };
        let renewed = gate.close(now + Duration::from_secs(5));
        assert_eq!(renewed, GateState::Closed { since, lease_until: now + Duration::from_secs(5) });
        assert_eq!(gate.expire(now + Duration::from_secs(2)), None, "the renewed lease still holds");
        let shorter = gate.close(now + Duration::from_secs(2));
        assert_eq!(shorter, renewed, "a shorter lease does not cut the held one short");
        assert!(gate.expire(now + Duration::from_secs(6)).is_some());
        assert!(!gate.is_closed());
        assert_eq!(gate.open(), None);
    }
}
