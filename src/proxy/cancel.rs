//! Proxy-issued BackendKeyData and forwarding of CancelRequests.
//!
//! Each client gets a random (pid, key) of the proxy's own. The map points it at the server
//! connection the session uses now, so a cancel still reaches the right backend after the
//! session has moved to another upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

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

/// Client-facing backend keys and their current targets.
#[derive(Debug, Default)]
pub struct CancelMap {
    targets: Mutex<HashMap<(i32, i32), CancelTarget>>,
}

impl CancelMap {
    fn lock(&self) -> MutexGuard<'_, HashMap<(i32, i32), CancelTarget>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a fresh client-facing key for `target`; the entry lives as long as the handle.
    pub fn register(self: &Arc<Self>, target: CancelTarget) -> CancelHandle {
        let mut map = self.lock();
        let key = loop {
            // Positive pids look like PostgreSQL's to clients that print them.
            let candidate = (rand::random::<i32>() & i32::MAX, rand::random::<i32>());
            if candidate.0 != 0 && !map.contains_key(&candidate) {
                break candidate;
            }
        };
        map.insert(key, target);
        CancelHandle { map: self.clone(), key }
    }

    /// The target for a client-facing key, if a session holds it.
    pub fn lookup(&self, pid: i32, key: i32) -> Option<CancelTarget> {
        self.lock().get(&(pid, key)).cloned()
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
        self.map.lock().insert(self.key, target);
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.map.lock().remove(&self.key);
    }
}

/// Sends a CancelRequest for `target` on a new connection to its upstream (TLS if the
/// upstream uses it), as libpq does.
pub async fn forward(target: &CancelTarget) -> Result<(), UpstreamError> {
    let mut stream = open_stream(&target.upstream).await?;
    write_all(&mut stream, &cancel_request(target.pid, target.key))
        .await
        .map_err(|source| UpstreamError::Io { upstream: target.upstream.name.clone(), source })
}
