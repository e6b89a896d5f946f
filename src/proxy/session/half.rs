//! One direction of a session's forwarding: its buffer, how much of it is framed and
//! ready to write, and its framer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

use crate::wire::Scanner;

/// Bytes reserved for each read.
const READ_CHUNK: usize = 16 * 1024;
/// A direction stops reading once this many forwardable bytes wait to be written.
const HIGH_WATER: usize = 256 * 1024;

/// One direction's buffer and framing position.
#[derive(Debug)]
pub(super) struct Half {
    pub buf: BytesMut,
    /// Leading bytes of `buf` that may be written to the other side.
    pub ready: usize,
    pub scanner: Scanner,
}

impl Half {
    pub fn new(initial: BytesMut, max_message: usize, max_whole: usize) -> Half {
        Half { buf: initial, ready: 0, scanner: Scanner::new(max_message, max_whole) }
    }

    /// Writes ready bytes. `Ready(Ok(true))` when something was written.
    pub fn poll_write<W: AsyncWrite + Unpin>(&mut self, cx: &mut Context<'_>, to: &mut W) -> Poll<io::Result<bool>> {
        if self.ready == 0 {
            return Poll::Ready(Ok(false));
        }
        let n = match Pin::new(&mut *to).poll_write(cx, &self.buf[..self.ready]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        self.buf.advance(n);
        self.ready -= n;
        if self.ready == 0 {
            // TLS streams hold written bytes until flushed; for TCP this is a no-op.
            if let Poll::Ready(Err(e)) = Pin::new(&mut *to).poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(true))
    }

    /// Reads more bytes if the direction has room. `Ready(Ok(0))` is end of stream.
    pub fn poll_read<R: AsyncRead + Unpin>(&mut self, cx: &mut Context<'_>, from: &mut R) -> Poll<io::Result<usize>> {
        let want = self.scanner.wanted(&self.buf[self.ready..]).max(READ_CHUNK);
        if self.buf.capacity() - self.buf.len() < want / 4 {
            self.buf.reserve(want);
        }
        poll_read_buf(Pin::new(from), cx, &mut self.buf)
    }

    pub fn has_room(&self) -> bool {
        self.ready < HIGH_WATER
    }
}
