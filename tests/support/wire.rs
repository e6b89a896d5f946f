//! A hand-written frontend over std TcpStream, for tests that must send what no
//! driver would (bad lengths, unknown message types) or watch unsolicited messages.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Protocol 3.0 in a StartupMessage.
pub const PROTOCOL_3_0: u32 = 196_608;
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;

/// Fields of an ErrorResponse, by their one-byte codes ('S', 'C', 'M', ...).
#[derive(Debug, Clone, Default)]
pub struct PgError {
    pub fields: Vec<(u8, String)>,
}

impl PgError {
    pub fn parse(body: &[u8]) -> PgError {
        let mut fields = Vec::new();
        let mut rest = body;
        while let Some((&code, tail)) = rest.split_first() {
            if code == 0 {
                break;
            }
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            fields.push((code, String::from_utf8_lossy(&tail[..end]).to_string()));
            rest = tail.get(end + 1..).unwrap_or(&[]);
        }
        PgError { fields }
    }

    pub fn field(&self, code: u8) -> &str {
        self.fields.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// SQLSTATE ('C').
    pub fn code(&self) -> &str {
        self.field(b'C')
    }

    /// Severity, non-localized when the server sends 'V'.
    pub fn severity(&self) -> &str {
        match self.field(b'V') {
            "" => self.field(b'S'),
            v => v,
        }
    }

    pub fn message(&self) -> &str {
        self.field(b'M')
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity(), self.code(), self.message())?;
        match self.field(b'D') {
            "" => Ok(()),
            detail => write!(f, " ({detail})"),
        }
    }
}

/// One backend message: type byte and body (without the length).
#[derive(Debug, Clone)]
pub struct Message {
    pub tag: u8,
    pub body: Vec<u8>,
}

/// What came back when a test waits for the proxy's reaction.
#[derive(Debug)]
pub enum ReadOutcome {
    /// An ErrorResponse (the connection may close after it).
    Error(PgError),
    /// Some other message.
    Message(Message),
    /// The peer closed the connection (EOF or reset) without an ErrorResponse.
    Closed(String),
    /// Nothing within the read timeout.
    Timeout,
}

pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    startup_packet_version(PROTOCOL_3_0, params)
}

/// A StartupMessage asking for protocol `version` (major << 16 | minor).
pub fn startup_packet_version(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (key, value) in params {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// A normal-phase frontend message: tag, length, body.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A CancelRequest for the given BackendKeyData.
pub fn cancel_packet(pid: u32, key: u32) -> Vec<u8> {
    let mut packet = 16u32.to_be_bytes().to_vec();
    packet.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    packet.extend_from_slice(&pid.to_be_bytes());
    packet.extend_from_slice(&key.to_be_bytes());
    packet
}

/// An 8-byte request with no body: SSLRequest or GSSENCRequest.
pub fn request_packet(code: u32) -> Vec<u8> {
    let mut packet = 8u32.to_be_bytes().to_vec();
    packet.extend_from_slice(&code.to_be_bytes());
    packet
}

pub fn query_packet(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frame(b'Q', &body)
}

pub struct RawConn {
    pub stream: TcpStream,
    /// (process id, secret key) from the BackendKeyData of the last startup.
    pub backend_key: Option<(u32, u32)>,
}

impl RawConn {
    pub fn connect(port: u16) -> std::io::Result<RawConn> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_write_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        Ok(RawConn { stream, backend_key: None })
    }

    /// Connects and completes a trust-auth startup (until ReadyForQuery).
    pub fn connect_startup(port: u16, user: &str, dbname: &str) -> Result<RawConn, PgError> {
        let mut conn = RawConn::connect(port).map_err(|e| client_error(&format!("connect: {e}")))?;
        conn.startup(user, dbname)?;
        Ok(conn)
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).expect("set_read_timeout");
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one whole backend message; `Ok(None)` on a clean EOF before its first byte.
    pub fn read_message(&mut self) -> std::io::Result<Option<Message>> {
        let mut tag = [0u8; 1];
        if self.stream.read(&mut tag)? == 0 {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(4..=64 * 1024 * 1024).contains(&len) {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                format!("backend message {:?} with length {len}", tag[0] as char),
            ));
        }
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body)?;
        Ok(Some(Message { tag: tag[0], body }))
    }

    /// Reads messages until something other than a notice or parameter status arrives.
    pub fn next_outcome(&mut self) -> ReadOutcome {
        loop {
            match self.read_message() {
                Ok(Some(m)) if m.tag == b'E' => return ReadOutcome::Error(PgError::parse(&m.body)),
                Ok(Some(m)) if m.tag == b'N' || m.tag == b'S' => continue,
                Ok(Some(m)) => return ReadOutcome::Message(m),
                Ok(None) => return ReadOutcome::Closed("EOF".into()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return ReadOutcome::Timeout
                }
                Err(e) => return ReadOutcome::Closed(e.to_string()),
            }
        }
    }

    /// Sends a StartupMessage and reads until ReadyForQuery; only AuthenticationOk
    /// is accepted (trust). A server ErrorResponse comes back as it is; any other
    /// failure as a `PgError` with severity CLIENT and no SQLSTATE.
    pub fn startup(&mut self, user: &str, dbname: &str) -> Result<(), PgError> {
        self.startup_with(&[("user", user), ("database", dbname)])
    }

    /// Like `startup`, with any startup parameters.
    pub fn startup_with(&mut self, params: &[(&str, &str)]) -> Result<(), PgError> {
        self.send(&startup_packet(params)).map_err(|e| client_error(&format!("send startup: {e}")))?;
        loop {
            match self.next_outcome() {
                ReadOutcome::Message(m) => match m.tag {
                    b'R' if m.body.get(..4) == Some(&[0, 0, 0, 0]) => {}
                    b'R' => return Err(client_error(&format!("authentication requested: {:?}", m.body))),
                    b'K' if m.body.len() == 8 => {
                        let word =
                            |i: usize| u32::from_be_bytes([m.body[i], m.body[i + 1], m.body[i + 2], m.body[i + 3]]);
                        self.backend_key = Some((word(0), word(4)));
                    }
                    b'Z' => return Ok(()),
                    other => return Err(client_error(&format!("unexpected {:?} during startup", other as char))),
                },
                ReadOutcome::Error(e) => return Err(e),
                other => return Err(client_error(&format!("startup: {other:?}"))),
            }
        }
    }

    /// Simple query; returns the rows of the last result as text, or the first error.
    /// Always reads up to ReadyForQuery.
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, PgError> {
        if let Err(e) = self.send(&query_packet(sql)) {
            return Err(client_error(&format!("send: {e}")));
        }
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.next_outcome() {
                ReadOutcome::Message(m) => match m.tag {
                    b'T' => rows.clear(),
                    b'D' => rows.push(parse_data_row(&m.body)),
                    b'Z' => break,
                    _ => {}
                },
                ReadOutcome::Error(e) => {
                    let fatal = e.severity() == "FATAL" || e.severity() == "PANIC";
                    error.get_or_insert(e);
                    if fatal {
                        break;
                    }
                }
                ReadOutcome::Closed(why) => {
                    error.get_or_insert(client_error(&format!("closed: {why}")));
                    break;
                }
                ReadOutcome::Timeout => {
                    error.get_or_insert(client_error("timeout waiting for ReadyForQuery"));
                    break;
                }
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// Runs a query whose result is one value.
    pub fn query_value(&mut self, sql: &str) -> Result<Option<String>, PgError> {
        let rows = self.simple_query(sql)?;
        Ok(rows.first().and_then(|row| row.first().cloned()).flatten())
    }

    pub fn terminate(mut self) {
        let _ = self.send(&frame(b'X', &[]));
    }
}

/// A PgError standing for a client-side failure (no SQLSTATE).
pub fn client_error(message: &str) -> PgError {
    PgError { fields: vec![(b'S', "CLIENT".into()), (b'M', message.to_string())] }
}

pub fn parse_data_row(body: &[u8]) -> Vec<Option<String>> {
    let mut values = Vec::new();
    if body.len() < 2 {
        return values;
    }
    let count = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut pos = 2;
    for _ in 0..count {
        let Some(len_bytes) = body.get(pos..pos + 4) else {
            break;
        };
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        pos += 4;
        if len < 0 {
            values.push(None);
            continue;
        }
        let end = pos + len as usize;
        values.push(body.get(pos..end).map(|v| String::from_utf8_lossy(v).to_string()));
        pos = end;
    }
    values
}

/// Connects through `port` as `postgres` and runs `SELECT 1`; panics with `context`
/// when the proxy no longer serves a normal client.
pub fn assert_select_one(port: u16, context: &str) {
    let mut conn = RawConn::connect_startup(port, "postgres", "postgres")
        .unwrap_or_else(|e| panic!("{context}: a normal client cannot start a session: {e}"));
    let value = conn.query_value("SELECT 1").unwrap_or_else(|e| panic!("{context}: SELECT 1 failed: {e:?}"));
    assert_eq!(value.as_deref(), Some("1"), "{context}: SELECT 1");
    conn.terminate();
}
