//! Startup-phase packets: `length (4 bytes, self-inclusive) + code (4 bytes) + payload`,
//! with no type byte. SSLRequest, GSSENCRequest, CancelRequest and StartupMessage.

use crate::wire::{read_cstr, WireError, PROTOCOL_3_0};

/// Code of an SSLRequest.
pub const SSL_REQUEST: u32 = 80_877_103;
/// Code of a GSSENCRequest.
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// Code of a CancelRequest.
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// A decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel { pid: i32, key: i32 },
    Startup(StartupMessage),
}

/// A StartupMessage: the protocol version asked for and the session parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    pub version: u32,
    /// Parameters in the order the client sent them (user, database, options, ...).
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    /// The value of parameter `name`, if sent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Major protocol version.
    pub fn major(&self) -> u16 {
        (self.version >> 16) as u16
    }

    /// Minor protocol version.
    pub fn minor(&self) -> u16 {
        (self.version & 0xffff) as u16
    }

    /// Encodes the message for sending to a server.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.version.to_be_bytes());
        for (k, v) in &self.params {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out.push(0);
        let len = (out.len() - start) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// Decodes one startup packet from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, else the packet and its total length.
/// The length is checked against `max` before the caller buffers anything.
pub fn parse(buf: &[u8], max: usize) -> Result<Option<(StartupPacket, usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > max {
        return Err(WireError::StartupLength(len));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let code = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let payload = &buf[8..len];
    let packet = match code {
        SSL_REQUEST if payload.is_empty() => StartupPacket::SslRequest,
        GSSENC_REQUEST if payload.is_empty() => StartupPacket::GssEncRequest,
        CANCEL_REQUEST if payload.len() == 8 => StartupPacket::Cancel {
            pid: i32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
            key: i32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
        },
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
            return Err(WireError::Malformed("request packet has the wrong length"))
        }
        version => StartupPacket::Startup(parse_params(version, payload)?),
    };
    Ok(Some((packet, len)))
}

fn parse_params(version: u32, mut rest: &[u8]) -> Result<StartupMessage, WireError> {
    let mut params = Vec::new();
    // Protocol 2 and older carry no key/value list; let the caller refuse them by version.
    if version >> 16 != PROTOCOL_3_0 >> 16 {
        return Ok(StartupMessage { version, params });
    }
    loop {
        let (key, after) = read_cstr(rest)?;
        if key.is_empty() {
            if !after.is_empty() {
                return Err(WireError::Malformed("bytes after the parameter list"));
            }
            break;
        }
        let (value, after) = read_cstr(after)?;
        params.push((key.to_owned(), value.to_owned()));
        rest = after;
    }
    Ok(StartupMessage { version, params })
}

/// How many more bytes the packet at the front of `buf` needs, as far as its length field
/// says (which [`parse`] checks before anything is buffered for it).
pub fn wanted(buf: &[u8]) -> usize {
    match buf.get(..4) {
        Some(len) => (u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize).saturating_sub(buf.len()),
        None => 4 - buf.len(),
    }
}

/// Encodes an SSLRequest.
pub fn ssl_request() -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&8u32.to_be_bytes());
    out[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    out
}

/// Encodes a CancelRequest for a server's backend key.
pub fn cancel_request(pid: i32, key: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&16u32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..].copy_from_slice(&key.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_round_trips() {
        let msg = StartupMessage {
            version: PROTOCOL_3_0,
            params: vec![("user".into(), "app".into()), ("database".into(), "db".into())],
        };
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        let (packet, len) = parse(&buf, 10_240).unwrap().unwrap();
        assert_eq!(len, buf.len());
        assert_eq!(packet, StartupPacket::Startup(msg));
        assert_eq!(parse(&buf[..buf.len() - 1], 10_240).unwrap(), None);
    }

    #[test]
    fn requests_decode() {
        assert_eq!(parse(&ssl_request(), 64).unwrap().unwrap().0, StartupPacket::SslRequest);
        let c = cancel_request(42, -7);
        assert_eq!(parse(&c, 64).unwrap().unwrap().0, StartupPacket::Cancel { pid: 42, key: -7 });
    }

    #[test]
    fn bad_lengths_are_refused() {
        assert_eq!(parse(&[0x7f, 0xff, 0xff, 0xff], 10_240), Err(WireError::StartupLength(0x7fff_ffff)));
        assert_eq!(parse(&[0, 0, 0, 2], 10_240), Err(WireError::StartupLength(2)));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", 10_240), Err(WireError::StartupLength(0x4745_5420)));
    }

    #[test]
    fn unterminated_parameters_are_malformed() {
        let mut buf = vec![0, 0, 0, 0];
        buf.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
        buf.extend_from_slice(b"user\0app");
        let len = buf.len() as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(parse(&buf, 10_240), Err(WireError::Malformed(_))));
    }
}
