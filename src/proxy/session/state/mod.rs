//! The session's state and the transaction bookkeeping that decides when it is at a
//! transaction boundary (DESIGN 2.2). Pure: fed message tags, no I/O.

use std::time::Instant;

use crate::wire::{backend, frontend};

/// Where a client session is in its life. Also the `state` label of `pgflip_client_sessions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Startup,
    Authenticating,
    Idle,
    InTransaction,
    FailedTransaction,
    Copy,
    /// Held at a transaction boundary while the pause gate is closed.
    Parked,
}

impl SessionState {
    /// Every state, in `as usize` order.
    pub const ALL: [SessionState; 7] = [
        SessionState::Startup,
        SessionState::Authenticating,
        SessionState::Idle,
        SessionState::InTransaction,
        SessionState::FailedTransaction,
        SessionState::Copy,
        SessionState::Parked,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            SessionState::Startup => "startup",
            SessionState::Authenticating => "authenticating",
            SessionState::Idle => "idle",
            SessionState::InTransaction => "in_transaction",
            SessionState::FailedTransaction => "failed_transaction",
            SessionState::Copy => "copy",
            SessionState::Parked => "parked",
        }
    }
}

/// Transaction status from the last ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
}

impl TxStatus {
    fn from_byte(b: u8) -> Option<TxStatus> {
        match b {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InTransaction),
            b'E' => Some(TxStatus::Failed),
            _ => None,
        }
    }
}

/// COPY sub-protocol in progress, as the server announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyMode {
    None,
    /// CopyInResponse seen; the server reads CopyData until CopyDone or CopyFail.
    In,
    /// CopyOutResponse or CopyBothResponse seen; ends at the next ReadyForQuery.
    Out,
}

/// Counts requests in flight and follows the transaction status.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub tx: TxStatus,
    /// Query, Sync and FunctionCall messages sent upstream and not yet answered by ReadyForQuery.
    awaiting: u32,
    /// An extended-protocol message was sent after the last Sync.
    extended_open: bool,
    /// Syncs sent since the last Execute or Query: if that command turns out to be a
    /// COPY FROM STDIN, the server ignores them (it ignores Sync during copy-in).
    syncs_since_execute: u32,
    copy: CopyMode,
    /// When the current transaction's first request was sent.
    started: Option<Instant>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            tx: TxStatus::Idle,
            awaiting: 0,
            extended_open: false,
            syncs_since_execute: 0,
            copy: CopyMode::None,
            started: None,
        }
    }
}

impl Tracker {
    /// A session is at a boundary when it is idle outside a transaction, every request has
    /// been answered, no extended-protocol message awaits a Sync, and no COPY is open.
    pub fn at_boundary(&self) -> bool {
        self.tx == TxStatus::Idle && self.awaiting == 0 && !self.extended_open && self.copy == CopyMode::None
    }

    /// True when every request sent has been answered, or the server is reading COPY
    /// data: behind a closed gate, the client's next request (or its data) may go.
    pub fn may_send_next(&self) -> bool {
        self.awaiting == 0 || self.copy == CopyMode::In
    }

    /// The state to report for this session.
    pub fn state(&self) -> SessionState {
        if self.copy != CopyMode::None {
            return SessionState::Copy;
        }
        match self.tx {
            TxStatus::Idle => SessionState::Idle,
            TxStatus::InTransaction => SessionState::InTransaction,
            TxStatus::Failed => SessionState::FailedTransaction,
        }
    }

    /// Records a message the client sent upstream.
    pub fn client_message(&mut self, tag: u8) {
        match tag {
            frontend::QUERY => {
                self.begin_request();
                self.syncs_since_execute = 0;
            }
            frontend::FUNCTION_CALL => self.begin_request(),
            frontend::SYNC => {
                self.extended_open = false;
                if self.copy != CopyMode::In {
                    self.begin_request();
                    self.syncs_since_execute += 1;
                }
            }
            frontend::EXECUTE => {
                self.extended_open = true;
                self.syncs_since_execute = 0;
            }
            frontend::PARSE | frontend::BIND | frontend::DESCRIBE | frontend::CLOSE => self.extended_open = true,
            frontend::COPY_DONE | frontend::COPY_FAIL if self.copy == CopyMode::In => self.copy = CopyMode::None,
            _ => {}
        }
    }

    fn begin_request(&mut self) {
        if self.awaiting == 0 && self.tx == TxStatus::Idle && self.started.is_none() {
            self.started = Some(Instant::now());
        }
        self.awaiting += 1;
    }

    /// Records a message the server sent. For ReadyForQuery, `body` is its status byte.
    /// Returns the start time of a transaction that this message ended.
    pub fn server_message(&mut self, tag: u8, body: &[u8]) -> Option<Instant> {
        match tag {
            backend::READY_FOR_QUERY => {
                self.awaiting = self.awaiting.saturating_sub(1);
                self.copy = CopyMode::None;
                if let Some(status) = body.first().copied().and_then(TxStatus::from_byte) {
                    self.tx = status;
                }
                if self.tx == TxStatus::Idle && self.awaiting == 0 {
                    return self.started.take();
                }
            }
            backend::COPY_IN_RESPONSE => {
                self.copy = CopyMode::In;
                self.awaiting = self.awaiting.saturating_sub(self.syncs_since_execute);
                self.syncs_since_execute = 0;
            }
            backend::COPY_OUT_RESPONSE | backend::COPY_BOTH_RESPONSE => self.copy = CopyMode::Out,
            // An error ends copy-in mode: the server stops reading CopyData.
            backend::ERROR_RESPONSE if self.copy == CopyMode::In => self.copy = CopyMode::None,
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests;
