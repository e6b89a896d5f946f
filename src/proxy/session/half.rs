//! One direction of a session's forwarding: its buffer, how much of it is framed and
//! ready to write, and its framer.
//!
//! The buffer holds memory only while bytes pass: a direction with nothing buffered that
//! finds nothing to read gives its buffer back, and its next read goes into scratch space
//! on the stack, so an idle session holds no buffer at all, and one that read a large
//! message holds nothing of it once it is written.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

use crate::wire::Scanner;

/// Bytes read at once: the scratch space, and the least room made for a read.
const READ_CHUNK: usize = 16 * 1024;
/// Free room in an empty buffer below which a read goes through scratch space.
const MIN_DIRECT_READ: usize = 4 * 1024;
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

    /// Reads more bytes. `Ready(Ok(0))` is end of stream.
    pub fn poll_read<R: AsyncRead + Unpin>(&mut self, cx: &mut Context<'_>, from: &mut R) -> Poll<io::Result<usize>> {
        let spare = self.buf.capacity() - self.buf.len();
        let read = if self.buf.is_empty() && spare < MIN_DIRECT_READ {
            poll_read_scratch(cx, from, &mut self.buf)
        } else {
            if spare < READ_CHUNK / 4 {
                self.grow();
            }
            poll_read_buf(Pin::new(from), cx, &mut self.buf)
        };
        if read.is_pending() && self.buf.is_empty() {
            // Nothing buffered and nothing to read: hold no memory while idle.
            self.buf = BytesMut::new();
        }
        read
    }

    /// Makes room for a read: for the rest of the message being read, but never more than
    /// is buffered already (or a chunk), so that the room grows with the bytes that came
    /// and a length the peer claims costs nothing until its bytes arrive.
    fn grow(&mut self) {
        let wanted = self.scanner.wanted(&self.buf[self.ready..]);
        self.buf.reserve(wanted.clamp(READ_CHUNK, self.buf.len().max(READ_CHUNK)));
    }

    /// Bytes buffered that are not ready to write: held back, or not whole yet.
    pub fn unready(&self) -> usize {
        self.buf.len() - self.ready
    }

    pub fn has_room(&self) -> bool {
        self.ready < HIGH_WATER
    }
}

/// Reads into scratch space on the stack, then appends what came to `buf`: an idle
/// direction allocates nothing until bytes arrive, and then only as many as arrived.
fn poll_read_scratch<R: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    from: &mut R,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut read = ReadBuf::uninit(&mut scratch);
    ready!(Pin::new(from).poll_read(cx, &mut read))?;
    buf.extend_from_slice(read.filled());
    Poll::Ready(Ok(read.filled().len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn noop_cx() -> Context<'static> {
        Context::from_waker(std::task::Waker::noop())
    }

    #[tokio::test]
    async fn an_idle_direction_gives_its_buffer_back() {
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        let mut half = Half::new(BytesMut::with_capacity(8192), 1 << 30, 1 << 20);
        let mut cx = noop_cx();
        assert!(half.poll_read(&mut cx, &mut near).is_pending());
        assert_eq!(half.buf.capacity(), 0, "nothing buffered, nothing to read: no buffer");

        let big = frame(b'd', &vec![7; 40_000]);
        tokio::io::AsyncWriteExt::write_all(&mut far, &big).await.unwrap();
        let mut got = 0;
        while got < big.len() {
            match half.poll_read(&mut cx, &mut near) {
                Poll::Ready(Ok(n)) => got += n,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(&half.buf[..], &big[..]);
        half.ready = half.buf.len();
        let mut sink = Vec::new();
        assert!(matches!(half.poll_write(&mut cx, &mut sink), Poll::Ready(Ok(true))));
        assert_eq!(sink, big);
        assert!(half.poll_read(&mut cx, &mut near).is_pending());
        assert_eq!(half.buf.capacity(), 0, "the large message's buffer went once it was written");
    }

    #[tokio::test]
    async fn a_claimed_length_costs_only_the_bytes_sent() {
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        let mut half = Half::new(BytesMut::new(), 1 << 30, 1 << 30);
        let mut cx = noop_cx();
        let mut header = vec![b'Q'];
        header.extend_from_slice(&(1u32 << 29).to_be_bytes());
        header.extend_from_slice(&[b'x'; 100]);
        tokio::io::AsyncWriteExt::write_all(&mut far, &header).await.unwrap();
        for _ in 0..4 {
            let _ = half.poll_read(&mut cx, &mut near);
        }
        assert_eq!(half.buf.len(), header.len());
        assert!(half.buf.capacity() < 64 * 1024, "room made: {} bytes", half.buf.capacity());
    }
}
