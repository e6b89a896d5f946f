//! Named protocol-level statements on a raw connection: Parse, Close, and running one.

use super::wire::{frame, PgError, RawConn};

impl RawConn {
    /// The next message, skipping ParameterStatus (a server may report a change inside any
    /// answer, before its ReadyForQuery).
    fn next(&mut self) -> (u8, Vec<u8>) {
        loop {
            let message = self.read_message().expect("read").expect("connection open");
            if message.tag != b'S' {
                return (message.tag, message.body);
            }
        }
    }

    /// Parse (and Sync) of statement `name`; panics unless it works.
    pub fn parse_statement(&mut self, name: &str, sql: &str) {
        let mut body = format!("{name}\0{sql}\0").into_bytes();
        body.extend_from_slice(&0i16.to_be_bytes());
        self.send(&frame(b'P', &body)).expect("send Parse");
        self.send(&frame(b'S', &[])).expect("send Sync");
        assert_eq!(self.next().0, b'1', "ParseComplete");
        assert_eq!(self.next().0, b'Z');
    }

    /// Close (and Sync) of statement `name`; panics unless it works.
    pub fn close_statement(&mut self, name: &str) {
        self.send(&frame(b'C', format!("S{name}\0").as_bytes())).expect("send Close");
        self.send(&frame(b'S', &[])).expect("send Sync");
        assert_eq!(self.next().0, b'3', "CloseComplete");
        assert_eq!(self.next().0, b'Z');
    }

    /// Bind + Execute + Sync of statement `name` (no parameters): its first value, or the
    /// SQLSTATE of the error.
    pub fn run_statement(&mut self, name: &str) -> Result<Option<String>, String> {
        let mut bind = format!("\0{name}\0").into_bytes();
        bind.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        self.send(&frame(b'B', &bind)).expect("send Bind");
        self.send(&frame(b'E', &[0, 0, 0, 0, 0])).expect("send Execute");
        self.send(&frame(b'S', &[])).expect("send Sync");
        let mut outcome = Err("no row".to_string());
        loop {
            match self.next() {
                (b'D', body) => outcome = Ok(super::wire::parse_data_row(&body).into_iter().next().flatten()),
                (b'E', body) => outcome = Err(PgError::parse(&body).code().to_string()),
                (b'Z', _) => return outcome,
                _ => {}
            }
        }
    }
}
