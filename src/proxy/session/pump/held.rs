//! The pump's client requests held behind a closed gate: whether one is held (for cancel
//! requests), answering a cancelled one, and how far the client is read ahead meanwhile.

use std::sync::Arc;

use bytes::Buf;

use crate::proxy::cancel::HeldCancel;
use crate::proxy::metrics::{ClientLimit, Metrics};
use crate::wire::{backend, frontend};

use super::Pump;

impl Pump {
    /// The held-request cancel state this session shares with cancel requests.
    pub fn held(&self) -> &Arc<HeldCancel> {
        &self.held
    }

    /// Answers the first request held behind the closed gate with 57014, as a server
    /// answers a cancelled statement, and drops it: it never runs. Requests after it stay
    /// held. For a cancel that came for it ([`HeldCancel::take`]).
    pub fn answer_held_cancel(&mut self, metrics: &Metrics) {
        let Some(len) = frontend::first_request_len(&self.c2s.buf[self.c2s.ready..]) else { return };
        let at = self.c2s.ready;
        let mut rest = self.c2s.buf.split_off(at);
        rest.advance(len);
        self.c2s.buf.unsplit(rest);
        if let Some(translation) = &mut self.translation {
            translation.framed_client(len);
        }
        let mut answer = Vec::with_capacity(96);
        backend::error_response(
            &mut answer,
            backend::Severity::Error,
            "57014",
            "canceling statement due to user request",
        );
        backend::ready_for_query(&mut answer, b'I');
        metrics.client_error("57014");
        self.put_for_client(&answer);
        self.note_held();
    }

    /// Tells cancel requests whether a whole request is held now.
    pub(super) fn note_held(&self) {
        let holding = self.parked && frontend::first_request_len(&self.c2s.buf[self.c2s.ready..]).is_some();
        self.held.set_holding(holding);
    }

    /// False while the client is held back: it sent `max_held` bytes ahead while its
    /// session holds its requests. It is read again once they go on (backpressure: its
    /// writes wait; nothing is refused). Behind the closed gate inside a transaction, the
    /// next request goes on once whole, so the client is read until it is.
    pub(super) fn may_read_ahead(&mut self, holding: bool, metrics: &Metrics) -> bool {
        let full = holding
            && self.c2s.unready() >= self.max_held
            && (self.parked
                || self.tracker.at_boundary()
                || !self.tracker.may_send_next()
                || self.c2s.scanner.wanted(&self.c2s.buf[self.c2s.ready..]) == 0);
        if full && !self.held_full {
            metrics.client_limit(ClientLimit::ParkedBytes);
        }
        self.held_full = full;
        !full
    }
}
