//! Every live session, as the admin API sees it: address, state, server pid, and what it
//! is running, so a pause can count the parked and name the blockers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::proxy::peer::Peer;
use crate::proxy::session::SessionState;
use crate::proxy::standby::Listener;

/// How much of a query's text is kept for reports.
const QUERY_PREFIX: usize = 256;

/// One session's shared record. The session writes it; the admin API reads it.
#[derive(Debug)]
pub struct SessionInfo {
    pub id: u64,
    pub peer: Peer,
    /// The listener the client came in by.
    pub listener: Listener,
    pub started: Instant,
    state: AtomicU8,
    server_pid: AtomicI32,
    /// Registry generation of the upstream the session's server belongs to.
    generation: AtomicU64,
    /// The last pre-warm round this session has answered (connected, failed, or not needed).
    prewarmed: AtomicU64,
    /// Cancelled to end the session with FATAL 57P01 (a pause's `terminate` policy); see
    /// [`SessionInfo::end`].
    pub kill: CancellationToken,
    /// The client's startup packet and user once logged in: a pause opens one connection
    /// as some parked session to ask the server about all of them.
    login: std::sync::OnceLock<(crate::wire::startup::StartupMessage, String)>,
    /// When the session entered its current state, and the start of its last query.
    detail: Mutex<Detail>,
}

#[derive(Debug)]
struct Detail {
    state_since: Instant,
    query: String,
    /// The length of the last query's whole text, of which `query` is the start.
    query_len: usize,
    capture: Capture,
    /// Why the session is being ended, for its client, when [`SessionInfo::end`] said.
    ending: Option<String>,
}

/// Whether a parked session has read its state from its server yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// Not parked, or parked and still capturing.
    Pending,
    /// Captured; `unmovable` is the state that cannot move (empty when none). The pause
    /// adds the session advisory locks, which the capture does not read. `needs` are the
    /// settings a move sets, which the server it moves to must have.
    Done { unmovable: crate::proxy::capture::Unmovable, needs: Arc<crate::proxy::capture::SettingNeeds> },
    /// The capture failed; the session cannot move.
    Failed(String),
}

impl SessionInfo {
    /// The session's state now.
    pub fn state(&self) -> SessionState {
        SessionState::ALL[self.state.load(Ordering::Acquire) as usize]
    }

    /// Records a state change. Leaving the parked state forgets the last capture.
    pub fn set_state(&self, state: SessionState) {
        let mut detail = self.lock();
        detail.state_since = Instant::now();
        if state != SessionState::Parked {
            detail.capture = Capture::Pending;
        }
        self.state.store(state as u8, Ordering::Release);
    }

    /// Records the outcome of the capture at park time.
    pub fn set_capture(&self, capture: Capture) {
        self.lock().capture = capture;
    }

    /// The outcome of the capture at park time.
    pub fn capture(&self) -> Capture {
        self.lock().capture.clone()
    }

    /// Ends the session with FATAL 57P01, telling its client `why` (the first reason given
    /// stands).
    pub fn end(&self, why: String) {
        self.lock().ending.get_or_insert(why);
        self.kill.cancel();
    }

    /// Why the session is being ended, when [`SessionInfo::end`] gave a reason.
    pub fn ending(&self) -> Option<String> {
        self.lock().ending.clone()
    }

    /// Records the client's startup packet and user (once, after it logged in).
    pub fn set_login(&self, startup: crate::wire::startup::StartupMessage, user: String) {
        let _ = self.login.set((startup, user));
    }

    /// The client's startup packet and user, once logged in.
    pub fn login(&self) -> Option<&(crate::wire::startup::StartupMessage, String)> {
        self.login.get()
    }

    /// Records the backend pid of the server connection in use.
    pub fn set_server_pid(&self, pid: i32) {
        self.server_pid.store(pid, Ordering::Relaxed);
    }

    /// The backend pid of the server connection in use (0 before login).
    pub fn server_pid(&self) -> i32 {
        self.server_pid.load(Ordering::Relaxed)
    }

    /// Records that the session's server is on the upstream of `generation`.
    pub fn set_generation(&self, generation: u64) {
        self.generation.store(generation, Ordering::Release);
    }

    /// Records that the session answered pre-warm round `round`.
    pub fn set_prewarmed(&self, round: u64) {
        self.prewarmed.store(round, Ordering::Release);
    }

    /// The last pre-warm round the session answered.
    pub fn prewarmed(&self) -> u64 {
        self.prewarmed.load(Ordering::Acquire)
    }

    /// The generation of the upstream the session is on.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records the start of the text of a query the client sent, and its length.
    pub fn set_query(&self, text: &[u8]) {
        let text = text.split(|&b| b == 0).next().unwrap_or_default();
        let len = text.len();
        let text = &text[..len.min(QUERY_PREFIX)];
        let mut detail = self.lock();
        detail.query.clear();
        detail.query.push_str(&String::from_utf8_lossy(text));
        detail.query_len = len;
    }

    /// The start of the last query's text, its whole length, and when the current state began.
    pub fn query_and_since(&self) -> (String, usize, Instant) {
        let detail = self.lock();
        (detail.query.clone(), detail.query_len, detail.state_since)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The table of live sessions.
#[derive(Debug, Default)]
pub struct SessionTable {
    sessions: Mutex<HashMap<u64, Arc<SessionInfo>>>,
    next_id: AtomicU64,
    /// Signalled whenever a session parks, resumes or ends.
    changed: Notify,
}

impl SessionTable {
    /// Adds a session; it leaves the table when the returned entry drops.
    pub fn insert(self: &Arc<Self>, peer: Peer, listener: Listener) -> SessionEntry {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let info = Arc::new(SessionInfo {
            id,
            peer,
            listener,
            started: now,
            state: AtomicU8::new(SessionState::Startup as u8),
            server_pid: AtomicI32::new(0),
            generation: AtomicU64::new(0),
            prewarmed: AtomicU64::new(0),
            kill: CancellationToken::new(),
            login: std::sync::OnceLock::new(),
            detail: Mutex::new(Detail {
                state_since: now,
                query: String::new(),
                query_len: 0,
                capture: Capture::Pending,
                ending: None,
            }),
        });
        self.lock().insert(id, info.clone());
        SessionEntry { table: self.clone(), info }
    }

    /// Every session now.
    pub fn all(&self) -> Vec<Arc<SessionInfo>> {
        self.lock().values().cloned().collect()
    }

    /// Wakes whoever waits for sessions to park.
    pub fn notify_changed(&self) {
        self.changed.notify_waiters();
    }

    /// Resolves at the next park, resume or end of a session.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Waits until no session is `pending`, or until `deadline`; re-checks on every change
    /// and at least every `recheck`. Returns how many are still pending.
    pub async fn wait_while(
        &self,
        deadline: Instant,
        recheck: std::time::Duration,
        pending: impl Fn(&SessionInfo) -> bool,
    ) -> usize {
        loop {
            let changed = self.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let left = self.all().iter().filter(|s| pending(s)).count();
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep(recheck) => {}
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionInfo>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A session's place in the table.
#[derive(Debug)]
pub struct SessionEntry {
    table: Arc<SessionTable>,
    pub info: Arc<SessionInfo>,
}

impl SessionEntry {
    /// The table this entry is in.
    pub fn table(&self) -> &SessionTable {
        &self.table
    }
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        self.table.lock().remove(&self.info.id);
        self.table.notify_changed();
    }
}
