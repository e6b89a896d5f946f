//! PostgreSQL wire protocol: framing and the few typed messages the proxy acts on.
//!
//! Pure code: bytes in, typed frames out. No sockets, no tokio. Lengths are checked
//! against caps before anything is allocated, so a bogus length costs nothing.

pub mod backend;
mod error;
pub mod frame;
pub mod frontend;
pub mod startup;

#[cfg(test)]
pub(crate) mod proptests;

pub use error::WireError;
pub use frame::{Frame, Scanner, Visit};

/// Protocol version 3.0 as sent in a StartupMessage.
pub const PROTOCOL_3_0: u32 = 196_608;

/// Default cap for one message in the normal phase (PostgreSQL's own limit is 1 GiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

/// Default cap for a startup-phase packet.
pub const DEFAULT_MAX_STARTUP: usize = 10 * 1024;

/// Reads a NUL-terminated string from the front of `buf`, returning it and the rest.
pub(crate) fn read_cstr(buf: &[u8]) -> Result<(&str, &[u8]), WireError> {
    let end = buf.iter().position(|&b| b == 0).ok_or(WireError::Malformed("missing string terminator"))?;
    let s = std::str::from_utf8(&buf[..end]).map_err(|_| WireError::Malformed("string is not UTF-8"))?;
    Ok((s, &buf[end + 1..]))
}

/// Reads a big-endian i32 from the front of `buf`.
pub(crate) fn read_i32(buf: &[u8]) -> Result<(i32, &[u8]), WireError> {
    if buf.len() < 4 {
        return Err(WireError::Malformed("message too short"));
    }
    let v = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    Ok((v, &buf[4..]))
}

/// Reads a big-endian i16 from the front of `buf`.
pub(crate) fn read_i16(buf: &[u8]) -> Result<(i16, &[u8]), WireError> {
    if buf.len() < 2 {
        return Err(WireError::Malformed("message too short"));
    }
    Ok((i16::from_be_bytes([buf[0], buf[1]]), &buf[2..]))
}
