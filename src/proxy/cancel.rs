//! Proxy-issued BackendKeyData and forwarding of CancelRequests.
//!
//! Each client gets a random (pid, key) of the proxy's own. The map points it at the server
//! connection the session uses now, so a cancel still reaches the right backend after the
//! session has moved to another upstream. A cancel of a request that the closed gate still
//! holds is the session's to answer ([`HeldCancel`]): no server has it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::proxy::io::write_all;
use crate::proxy::upstream::{connect::open_stream, Upstream, UpstreamError};
use crate::wire::startup::cancel_request;

/// Where a client's cancel must go: an upstream and that server's own backend key.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    pub upstream: Arc<Upstream>,
    pub pid: i32,
    pub key: i32,
}

/// Whether a parked session holds a whole request of its client's, and whether a cancel
/// came for it: shared between the session and the cancel requests for its key.
#[derive(Debug, Default)]
pub struct HeldCancel {
    state: AtomicU8,
    wake: Notify,
}

/// [`HeldCancel`] states.
const NOT_HOLDING: u8 = 0;
const HOLDING: u8 = 1;
const CANCELLED: u8 = 2;

impl HeldCancel {
    /// The session holds a whole request behind the closed gate (or no longer does). A
    /// cancel that came already stays until [`HeldCancel::take`] or [`HeldCancel::release`].
    pub fn set_holding(&self, holding: bool) {
        let (from, to) = if holding { (NOT_HOLDING, HOLDING) } else { (HOLDING, NOT_HOLDING) };
        let _ = self.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire);
    }

    /// For a cancel request: true when the session holds a request and takes the cancel
    /// upon itself (it will answer 57014); false when the cancel is the server's to act on.
    fn try_cancel(&self) -> bool {
        let taken = self.state.compare_exchange(HOLDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok();
        if taken {
            self.wake.notify_one();
        }
        taken
    }

    /// For the session: true when a cancel came for the request it holds (which it must
    /// now answer); the state is reset.
    pub fn take(&self) -> bool {
        self.state.compare_exchange(CANCELLED, NOT_HOLDING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// For the session, when the gate opens and it forwards what it held: true when a
    /// cancel came for the first request first (which it must answer instead).
    pub fn release(&self) -> bool {
        self.state.swap(NOT_HOLDING, Ordering::AcqRel) == CANCELLED
    }

    /// Resolves when a cancel came for the held request.
    pub async fn cancelled(&self) {
        self.wake.notified().await;
    }
}

/// A session's entry: where its cancels go, and its held request.
type Entry = (CancelTarget, Arc<HeldCancel>);

/// Client-facing backend keys and their current targets.
#[derive(Debug, Default)]
pub struct CancelMap {
    targets: Mutex<HashMap<(i32, i32), Entry>>,
}

impl CancelMap {
    fn lock(&self) -> MutexGuard<'_, HashMap<(i32, i32), Entry>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a fresh client-facing key for `target` and the session's `held` state; the
    /// entry lives as long as the handle.
    pub fn register(self: &Arc<Self>, target: CancelTarget, held: Arc<HeldCancel>) -> CancelHandle {
        let mut map = self.lock();
        let key = loop {
            // Positive pids look like PostgreSQL's to clients that print them.
            let candidate = (rand::random::<i32>() & i32::MAX, rand::random::<i32>());
            if candidate.0 != 0 && !map.contains_key(&candidate) {
                break candidate;
            }
        };
        map.insert(key, (target, held));
        CancelHandle { map: self.clone(), key }
    }

    /// What a CancelRequest with a client-facing key asks for: `None` when no session has
    /// the key or its session takes the cancel upon itself (a held request), else the
    /// server request to cancel.
    pub fn cancel(&self, pid: i32, key: i32) -> Option<CancelTarget> {
        let (target, held) = self.lock().get(&(pid, key)).cloned()?;
        (!held.try_cancel()).then_some(target)
    }

    /// Number of registered sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A session's registration; removes it from the map when dropped.
#[derive(Debug)]
pub struct CancelHandle {
    map: Arc<CancelMap>,
    key: (i32, i32),
}

impl CancelHandle {
    /// The (pid, key) the client was given.
    pub fn client_key(&self) -> (i32, i32) {
        self.key
    }

    /// Points the key at a new server connection.
    pub fn retarget(&self, target: CancelTarget) {
        if let Some(entry) = self.map.lock().get_mut(&self.key) {
            entry.0 = target;
        }
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.map.lock().remove(&self.key);
    }
}

/// Sends a CancelRequest for `target` on a new connection to its upstream (TLS if the
/// upstream uses it), as libpq does, within the upstream URL's `connect_timeout`, else
/// `timeout` (the sidecar's): also for `connect_timeout=0`, since a cancel that waits on an
/// unreachable server helps no one and holds its connection.
pub async fn forward(target: &CancelTarget, timeout: Duration) -> Result<(), UpstreamError> {
    let upstream = &target.upstream;
    let sending = async {
        let mut stream = open_stream(upstream).await?;
        write_all(&mut stream, &cancel_request(target.pid, target.key))
            .await
            .map_err(|source| UpstreamError::Io { upstream: upstream.name.clone(), source })
    };
    match tokio::time::timeout(upstream.url.connect_timeout.work_bound(timeout), sending).await {
        Ok(sent) => sent,
        Err(_) => Err(UpstreamError::Timeout { upstream: upstream.name.clone(), addr: upstream.url.address() }),
    }
}
