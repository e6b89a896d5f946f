//! Reading whole messages during the startup and authentication phases, with caps.
//!
//! The forwarding phase does not use these: it streams through [`crate::wire::Scanner`].

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wire::frame::HEADER_LEN;
use crate::wire::startup::{self, StartupPacket};
use crate::wire::WireError;

/// Why a handshake read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Wire(#[from] WireError),
}

/// Largest message accepted while authenticating.
pub const MAX_HANDSHAKE_MESSAGE: usize = 1 << 20;

/// Free room below which a read first makes more.
const MIN_READ: usize = 512;
/// Room made for a read when little is buffered.
const FIRST_READ: usize = 4096;

/// Reads one startup-phase packet. Bytes after it stay in `buf`.
pub async fn read_startup<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<StartupPacket, ReadError> {
    loop {
        if let Some((packet, len)) = startup::parse(buf, max)? {
            buf.advance(len);
            return Ok(packet);
        }
        let needed = startup::wanted(buf);
        read_more(stream, buf, needed).await?;
    }
}

/// Reads one normal-phase message, returning its tag and body. Bytes after it stay in `buf`.
pub async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<(u8, BytesMut), ReadError> {
    loop {
        let mut needed = HEADER_LEN - buf.len().min(HEADER_LEN);
        if buf.len() >= HEADER_LEN {
            let tag = buf[0];
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
            if len < 4 {
                return Err(WireError::LengthTooSmall { tag: tag as char, len }.into());
            }
            if len as usize > max {
                return Err(WireError::LengthTooLarge { tag: tag as char, len: len as usize, max }.into());
            }
            let total = len as usize + 1;
            if buf.len() >= total {
                let mut msg = buf.split_to(total);
                msg.advance(HEADER_LEN);
                return Ok((tag, msg));
            }
            needed = total - buf.len();
        }
        read_more(stream, buf, needed).await?;
    }
}

/// Reads more into `buf`, which lacks `needed` bytes of the message being read. The room
/// made grows with what has come, never with what a length claims: a bogus length costs
/// no more than the bytes actually sent.
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut, needed: usize) -> Result<(), ReadError> {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(needed.clamp(MIN_READ, buf.len().max(FIRST_READ)));
    }
    if stream.read_buf(buf).await? == 0 {
        return Err(ReadError::Closed);
    }
    Ok(())
}

/// Writes all of `bytes` and flushes (TLS streams buffer otherwise).
pub async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

#[cfg(test)]
mod proptests;
