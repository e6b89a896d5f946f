//! The pump's scanning: which of each direction's buffered bytes are whole messages to
//! forward now, and what forwarding them means for the session (its transaction state,
//! settings, statements, parameter changes still to tell its client, translation).

use crate::proxy::metrics::Metrics;
use crate::proxy::session::custom_gucs;
use crate::wire::backend::{self, ErrorFields};
use crate::wire::{frontend, Frame, Visit, WireError};

use super::{Pump, PumpEnd};

impl Pump {
    /// Marks the client's complete messages ready, except that behind a closed gate a
    /// session at a boundary holds its next request, and one inside a transaction sends
    /// one request at a time (so that a pipelining client stops at its first boundary).
    pub(super) fn scan_client(&mut self, gate_closed: bool) -> Result<(), PumpEnd> {
        if self.parked || (gate_closed && self.tracker.at_boundary()) {
            return Ok(());
        }
        let mut request_sent = false;
        // A translated session's bytes are framed only once rewritten.
        let walked = match &mut self.translation {
            Some(translation) => {
                translation.walk_client(&mut self.c2s, gate_closed).map_err(PumpEnd::ClientProtocol)?
            }
            None => usize::MAX,
        };
        let info = self.gauge.info();
        let custom = &mut self.custom_settings;
        let statements = &mut self.statements;
        let tracker = &mut self.tracker;
        let terminated = &mut self.client_terminated;
        let half = &mut self.c2s;
        let end = half.buf.len().min(half.ready.saturating_add(walked));
        let n = half
            .scanner
            .scan_until(
                &half.buf[half.ready..end],
                // Query texts are read whole: a setting they change may be anywhere in them.
                |tag| tag == frontend::QUERY || tag == frontend::PARSE,
                |frame| {
                    let tag = frame.tag();
                    if gate_closed && request_sent && !tracker.may_send_next() {
                        return Ok(Visit::Stop);
                    }
                    request_sent |= frontend::ends_request(tag);
                    if *terminated {
                        return Err(WireError::Malformed("message after Terminate"));
                    }
                    if !frontend::is_known_tag(tag) {
                        return Err(WireError::UnexpectedTag(tag as char));
                    }
                    match frame {
                        Frame::Streamed { tag: frontend::TERMINATE, .. } => *terminated = true,
                        Frame::Whole { tag: frontend::QUERY, body } => {
                            info.set_query(body);
                            custom_gucs::notice(body, custom);
                            statements.query();
                        }
                        Frame::Whole { tag: frontend::PARSE, body } => {
                            // The statement name, then the query text.
                            let text = body.iter().position(|&b| b == 0).map_or(&[][..], |end| &body[end + 1..]);
                            info.set_query(text);
                            custom_gucs::notice(text, custom);
                            statements.parse(body.len(), body);
                        }
                        Frame::Streamed { tag: frontend::CLOSE, prefix, body_len } => {
                            statements.close(body_len, prefix)
                        }
                        _ => {}
                    }
                    tracker.client_message(tag);
                    Ok(Visit::Continue)
                },
            )
            .map_err(PumpEnd::ClientProtocol)?;
        half.ready += n;
        if let Some(translation) = &mut self.translation {
            translation.framed_client(n);
        }
        Ok(())
    }

    /// Marks the server's messages ready for the client. While parked only asynchronous
    /// messages pass (notifications, notices, parameter changes); anything else, such as
    /// the FATAL of a backend terminated by a fence, is held back and dropped if the
    /// session reconnects.
    pub(super) fn scan_server(&mut self, metrics: &Metrics) -> Result<(), PumpEnd> {
        loop {
            let parked = self.parked;
            let tracker = &mut self.tracker;
            let fatal = &mut self.server_fatal;
            let client_params = &mut self.client_params;
            let untold = &mut self.untold;
            let mut tell_here = false;
            let walked = match &mut self.translation {
                Some(translation) => translation.walk_server(&mut self.s2c).map_err(PumpEnd::ServerProtocol)?,
                None => usize::MAX,
            };
            let half = &mut self.s2c;
            let end = half.buf.len().min(half.ready.saturating_add(walked));
            let n = half
                .scanner
                .scan_until(&half.buf[half.ready..end], inspect_server, |frame| {
                    if parked && !is_asynchronous(frame.tag()) {
                        return Ok(Visit::Stop);
                    }
                    match frame {
                        Frame::Whole { tag: backend::READY_FOR_QUERY, .. } if !untold.is_empty() => {
                            tell_here = true;
                            return Ok(Visit::Stop);
                        }
                        Frame::Whole { tag: backend::ERROR_RESPONSE, body } => {
                            let fields = ErrorFields::parse(body)?;
                            metrics.client_error(&fields.code);
                            *fatal = fields.is_fatal();
                            tracker.server_message(backend::ERROR_RESPONSE, body);
                        }
                        Frame::Whole { tag: backend::PARAMETER_STATUS, body } => {
                            let (name, value) = backend::parse_parameter_status(body)?;
                            client_params.retain(|(k, _)| k != name);
                            client_params.push((name.to_owned(), value.to_owned()));
                            // The server's own report is newer than one still to tell.
                            untold.retain(|(k, _)| k != name);
                        }
                        Frame::Whole { tag, body } => {
                            if let Some(started) = tracker.server_message(tag, body) {
                                metrics.transaction_seconds.observe(started.elapsed().as_secs_f64());
                            }
                        }
                        Frame::Streamed { tag, .. } => {
                            tracker.server_message(tag, &[]);
                        }
                    }
                    Ok(Visit::Continue)
                })
                .map_err(PumpEnd::ServerProtocol)?;
            half.ready += n;
            if let Some(translation) = &mut self.translation {
                translation.framed_server(n);
            }
            if !tell_here {
                break;
            }
            // Put the untold ParameterStatus messages just before this ReadyForQuery.
            let mut told = Vec::with_capacity(64 * self.untold.len());
            for (name, value) in self.untold.drain(..) {
                backend::parameter_status(&mut told, &name, &value);
            }
            self.put_for_client(&told);
        }
        if !self.parked {
            self.gauge.set(self.tracker.state());
        }
        if self.translation.as_ref().is_some_and(|t| t.is_done()) && self.tracker.at_boundary() {
            self.translation = None;
        }
        Ok(())
    }
}

/// Server messages that may arrive outside any request.
fn is_asynchronous(tag: u8) -> bool {
    matches!(tag, backend::NOTIFICATION_RESPONSE | backend::NOTICE_RESPONSE | backend::PARAMETER_STATUS)
}

/// Server messages held whole: the ones the proxy reads fields from.
fn inspect_server(tag: u8) -> bool {
    matches!(tag, backend::READY_FOR_QUERY | backend::ERROR_RESPONSE | backend::PARAMETER_STATUS)
}
