//! Forwarding in both directions at once on one task, message-aware.
//!
//! Each direction keeps one buffer. A read appends to it, the scanner marks how many
//! leading bytes are whole messages (or the streamed part of a large one), and those are
//! written to the other side in one write. Reads stop while a direction has too much
//! unwritten, which is the backpressure. Polling both directions in one `poll_fn` keeps
//! the tracker in one place without locks, and a slow writer on one side never stops the
//! other side from draining.

mod held;
mod scan;

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::proxy::cancel::HeldCancel;
use crate::proxy::context::Limits;
use crate::proxy::context::ProxyContext;
use crate::proxy::session::gauge::StateGauge;
use crate::proxy::session::half::Half;
use crate::proxy::session::state::Tracker;
use crate::proxy::session::statements::{Logged, StatementLog};
use crate::proxy::session::translate::Translation;
use crate::proxy::session::SessionState;
use crate::proxy::switch::SessionInfo;
use crate::wire::WireError;

/// Largest server message held whole for inspection (ErrorResponse, ParameterStatus, ...).
const MAX_INSPECTED_SERVER_MESSAGE: usize = 8 << 20;

/// Why forwarding stopped.
#[derive(Debug)]
pub enum PumpEnd {
    /// The gate is closed and the session is at a boundary with nothing in flight: it
    /// holds the client's next request until the gate opens. Forwarding may go on after
    /// this (server notifications still reach the client).
    Parked,
    /// The client sent Terminate, which was passed on.
    ClientTerminated,
    /// The client closed its connection.
    ClientClosed,
    ClientIo(io::Error),
    /// The client broke the protocol; nothing of the offending message was forwarded.
    ClientProtocol(WireError),
    /// The server closed its connection; `fatal` when it said why in a FATAL error first.
    ServerClosed {
        fatal: bool,
    },
    ServerIo(io::Error),
    ServerProtocol(WireError),
}

/// Forwards between a client and a server until one of them ends or breaks the protocol.
#[derive(Debug)]
pub struct Pump {
    c2s: Half,
    s2c: Half,
    pub tracker: Tracker,
    gauge: StateGauge,
    /// The server's last ErrorResponse was FATAL.
    server_fatal: bool,
    /// Holding the client's requests behind the closed gate.
    parked: bool,
    /// Park at the next boundary whatever the gate says (see [`Pump::set_hold`]).
    hold: bool,
    /// ParameterStatus values the client was told, or is to be told, latest last.
    client_params: Vec<(String, String)>,
    /// ParameterStatus values to tell the client with the answer to its next request,
    /// just before its ReadyForQuery, as a server reports a change (never to an idle
    /// client, which may not expect one: pgjdbc's notification reader, say).
    untold: Vec<(String, String)>,
    /// Custom setting names (`myapp.tenant`) the client has set.
    custom_settings: Vec<String>,
    statements: StatementLog,
    client_terminated: bool,
    /// Client bytes written to the server so far (held bytes count once forwarded).
    forwarded: u64,
    /// Whether a whole request is held behind the closed gate, and a cancel for it.
    held: Arc<HeldCancel>,
    /// While another side than the session's home serves it: the rewriting of OIDs.
    translation: Option<Box<Translation>>,
    /// Client bytes read ahead while holding, at most (`max_parked_bytes`).
    max_held: usize,
    /// The client is not read for now: it sent `max_held` bytes ahead.
    held_full: bool,
}

impl Pump {
    /// A pump whose client buffer starts with `client_pending` (bytes the client sent
    /// during the handshake) and server buffer with `server_pending`.
    pub fn new(
        client_pending: BytesMut,
        server_pending: BytesMut,
        limits: &Limits,
        mut gauge: StateGauge,
        client_params: Vec<(String, String)>,
        held: Arc<HeldCancel>,
    ) -> Pump {
        let tracker = Tracker::default();
        gauge.set(tracker.state());
        let max_message = limits.max_message;
        Pump {
            c2s: Half::new(client_pending, max_message, max_message),
            s2c: Half::new(server_pending, max_message, MAX_INSPECTED_SERVER_MESSAGE),
            tracker,
            gauge,
            server_fatal: false,
            parked: false,
            hold: false,
            client_params,
            untold: Vec::new(),
            custom_settings: Vec::new(),
            statements: StatementLog::default(),
            client_terminated: false,
            forwarded: 0,
            held,
            translation: None,
            max_held: limits.max_parked_bytes,
            held_full: false,
        }
    }

    /// Starts or ends translating (at a move, while parked: nothing is in flight).
    pub fn set_translation(&mut self, translation: Option<Translation>) {
        debug_assert!(self.parked, "only a parked session changes servers");
        self.translation = translation.map(Box::new);
    }

    /// The session's translation, while another side serves it.
    pub fn translation(&mut self) -> Option<&mut Translation> {
        self.translation.as_deref_mut()
    }

    /// Queues `bytes` (whole messages) for the client, after what is ready and before what
    /// the server sent that is not scanned yet.
    fn put_for_client(&mut self, bytes: &[u8]) {
        let rest = self.s2c.buf.split_off(self.s2c.ready);
        self.s2c.buf.extend_from_slice(bytes);
        self.s2c.buf.unsplit(rest);
        self.s2c.ready += bytes.len();
    }

    /// Runs until forwarding ends or the session parks. Cancel-safe: all state lives in `self`.
    pub async fn run<C, S>(&mut self, client: &mut C, server: &mut S, ctx: &ProxyContext) -> PumpEnd
    where
        C: AsyncRead + AsyncWrite + Unpin,
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Bytes held back (from the handshake, or behind the gate) are scanned first.
        let closed = self.holding(ctx);
        if let Err(end) = self.scan_client(closed).and_then(|_| self.scan_server(&ctx.metrics)) {
            return end;
        }
        poll_fn(|cx| self.poll(cx, client, server, ctx)).await
    }

    /// The session's record in the session table.
    pub fn info(&self) -> &SessionInfo {
        self.gauge.info()
    }

    /// How many client bytes have been written to the server.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// True while holding the client's requests behind the closed gate.
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// Asks the session to park at its next boundary even with the gate open (to move by
    /// itself), or lets it go on.
    pub fn set_hold(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// True when the session must park at its next boundary: the gate is closed, or it
    /// is to move by itself.
    fn holding(&self, ctx: &ProxyContext) -> bool {
        self.hold || ctx.gate.is_closed()
    }

    /// The value of server parameter `name` the client was last told.
    pub fn client_param(&self, name: &str) -> Option<&str> {
        self.client_params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Custom setting names the client has set.
    pub fn custom_settings(&self) -> &[String] {
        &self.custom_settings
    }

    /// The client's named statements as its Parse and Close messages declared them.
    pub fn statements(&self) -> &[Logged] {
        self.statements.statements()
    }

    /// The client's unnamed statement, as its last Parse of it declared it.
    pub fn unnamed(&self) -> Option<&Logged> {
        self.statements.unnamed()
    }

    /// Tells the client `name = value`, unless that is what it was told, with the answer
    /// to its next request.
    pub fn tell_client_later(&mut self, name: &str, value: &str) {
        if self.client_param(name) == Some(value) {
            return;
        }
        self.client_params.retain(|(k, _)| k != name);
        self.client_params.push((name.to_owned(), value.to_owned()));
        self.untold.retain(|(k, _)| k != name);
        self.untold.push((name.to_owned(), value.to_owned()));
    }

    /// The buffer of bytes read from the server and not yet forwarded, for reading the
    /// answers to the proxy's own statements through it while parked: it may hold an
    /// asynchronous message that came first, and whatever follows those answers stays in
    /// it, for the pump to pass on.
    pub fn server_buf(&mut self) -> &mut BytesMut {
        debug_assert!(self.parked && self.s2c.ready == 0 && self.s2c.scanner.at_message_start());
        if let Some(translation) = &mut self.translation {
            translation.restart_server();
        }
        &mut self.s2c.buf
    }

    /// Starts the server direction afresh on a new server connection. Only for a parked
    /// session: nothing of the old server is in flight.
    pub fn reset_server(&mut self, leftover: BytesMut) {
        debug_assert!(self.parked, "only a parked session changes servers");
        let max_message = self.s2c.scanner.max_len();
        self.s2c = Half::new(leftover, max_message, MAX_INSPECTED_SERVER_MESSAGE);
        self.server_fatal = false;
    }

    /// Parked means at a boundary with every byte of both directions delivered.
    fn parkable(&self) -> bool {
        self.tracker.at_boundary()
            && self.c2s.ready == 0
            && self.s2c.ready == 0
            && self.c2s.scanner.at_message_start()
            && self.s2c.scanner.at_message_start()
    }

    /// True when nothing is buffered in the server-to-client direction mid-message, so
    /// the proxy may write a message of its own to the client.
    pub fn client_at_message_start(&self) -> bool {
        self.s2c.ready == 0 && self.s2c.scanner.at_message_start()
    }

    fn poll<C, S>(&mut self, cx: &mut Context<'_>, client: &mut C, server: &mut S, ctx: &ProxyContext) -> Poll<PumpEnd>
    where
        C: AsyncRead + AsyncWrite + Unpin,
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let metrics = &ctx.metrics;
        loop {
            let closed = self.holding(ctx);
            if self.parked && !closed {
                if self.held.release() {
                    // A cancel came for the first held request: it never runs.
                    self.answer_held_cancel(metrics);
                }
                self.parked = false;
                self.held.set_holding(false);
                self.gauge.set(self.tracker.state());
                if let Err(end) = self.scan_client(false) {
                    return Poll::Ready(end);
                }
            } else if !self.parked && closed {
                if self.parkable() {
                    self.parked = true;
                    self.gauge.set(SessionState::Parked);
                    self.note_held();
                    return Poll::Ready(PumpEnd::Parked);
                }
                if self.tracker.may_send_next() && self.c2s.buf.len() > self.c2s.ready {
                    // Behind the closed gate, inside a transaction: its previous request
                    // is answered, so the next one may go.
                    if let Err(end) = self.scan_client(true) {
                        return Poll::Ready(end);
                    }
                }
            }
            let mut progress = false;
            let ready = self.c2s.ready;
            match self.c2s.poll_write(cx, server) {
                Poll::Ready(Ok(wrote)) => {
                    self.forwarded += (ready - self.c2s.ready) as u64;
                    progress |= wrote
                }
                Poll::Ready(Err(e)) => return Poll::Ready(PumpEnd::ServerIo(e)),
                Poll::Pending => {}
            }
            if self.client_terminated && self.c2s.ready == 0 {
                return Poll::Ready(PumpEnd::ClientTerminated);
            }
            match self.s2c.poll_write(cx, client) {
                Poll::Ready(Ok(wrote)) => progress |= wrote,
                Poll::Ready(Err(e)) => return Poll::Ready(PumpEnd::ClientIo(e)),
                Poll::Pending => {}
            }
            if self.c2s.has_room() && !self.client_terminated && self.may_read_ahead(closed, metrics) {
                match self.c2s.poll_read(cx, client) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(PumpEnd::ClientClosed),
                    Poll::Ready(Ok(n)) => {
                        metrics.bytes_client_to_server.inc_by(n as u64);
                        if let Err(end) = self.scan_client(closed) {
                            return Poll::Ready(end);
                        }
                        if self.parked {
                            self.note_held();
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(PumpEnd::ClientIo(e)),
                    Poll::Pending => {}
                }
            }
            if self.s2c.has_room() {
                match self.s2c.poll_read(cx, server) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(PumpEnd::ServerClosed { fatal: self.server_fatal }),
                    Poll::Ready(Ok(n)) => {
                        metrics.bytes_server_to_client.inc_by(n as u64);
                        if let Err(end) = self.scan_server(metrics) {
                            return Poll::Ready(end);
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(PumpEnd::ServerIo(e)),
                    Poll::Pending => {}
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Writes everything still buffered for the client (after the server ended, say).
    pub async fn drain_to_client<C: AsyncWrite + Unpin>(&mut self, client: &mut C) -> io::Result<()> {
        while self.s2c.ready > 0 {
            poll_fn(|cx| self.s2c.poll_write(cx, client)).await?;
        }
        Ok(())
    }
}
