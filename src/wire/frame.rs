//! Normal-phase framing: `tag (1 byte) + length (4 bytes, self-inclusive) + body`.
//!
//! [`Scanner`] walks a buffer of bytes not yet forwarded and tells the caller how many
//! leading bytes form whole messages (or the streamed part of a large one), so the proxy
//! can forward a whole read in one write and still know where every message starts.

use crate::wire::WireError;

/// Size of a message header: tag plus length.
pub const HEADER_LEN: usize = 5;

/// One message seen by the scanner.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The whole message is in the buffer (the caller asked for it whole).
    Whole { tag: u8, body: &'a [u8] },
    /// Only the header was inspected; the body streams through as it arrives.
    /// `prefix` is the part of the body already in the buffer (possibly empty).
    Streamed { tag: u8, body_len: usize, prefix: &'a [u8] },
}

impl Frame<'_> {
    /// The message type byte.
    pub fn tag(&self) -> u8 {
        match self {
            Frame::Whole { tag, .. } | Frame::Streamed { tag, .. } => *tag,
        }
    }
}

/// What the scanner does after showing a message to its visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// The message may be forwarded; go on.
    Continue,
    /// Stop before this message: it and everything after it stay unforwarded.
    Stop,
}

/// Incremental framer over one direction of a connection.
///
/// ```
/// use pgflip::wire::{Frame, Scanner, WireError};
///
/// // ReadyForQuery('I') followed by the first 3 bytes of a DataRow header.
/// let buf = [b'Z', 0, 0, 0, 5, b'I', b'D', 0, 0];
/// let mut scanner = Scanner::new(1 << 30, 1 << 20);
/// let mut seen = Vec::new();
/// let ready = scanner
///     .scan(&buf, |tag| tag == b'Z', |frame| {
///         if let Frame::Whole { tag, body } = frame {
///             seen.push((tag, body.to_vec()));
///         }
///         Ok::<(), WireError>(())
///     })
///     .unwrap();
/// assert_eq!(ready, 6, "only the whole ReadyForQuery may be forwarded yet");
/// assert_eq!(seen, vec![(b'Z', b"I".to_vec())]);
/// ```
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Body bytes of a streamed message still to pass through uninspected.
    skip: usize,
    /// Largest message accepted, in bytes including the length field.
    max_len: usize,
    /// Largest message the scanner will hold whole for inspection.
    max_whole: usize,
}

impl Scanner {
    /// A scanner accepting messages up to `max_len` bytes, holding at most `max_whole`
    /// bytes of one message for inspection.
    pub fn new(max_len: usize, max_whole: usize) -> Self {
        Scanner { skip: 0, max_len, max_whole: max_whole.min(max_len) }
    }

    /// The largest message accepted.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// True when the scanner sits between two messages (no body is streaming).
    pub fn at_message_start(&self) -> bool {
        self.skip == 0
    }

    /// Scans `buf`, the bytes that follow everything already reported ready, and returns
    /// how many of its leading bytes may be forwarded now.
    ///
    /// `whole(tag)` says which messages must be seen in full before they are forwarded;
    /// all others are reported at their header and streamed. `visit` is called once per
    /// message, in order. A message that is not complete yet stops the scan; call again
    /// with the same bytes plus more.
    pub fn scan<W, V, E>(&mut self, buf: &[u8], whole: W, mut visit: V) -> Result<usize, E>
    where
        W: Fn(u8) -> bool,
        V: FnMut(Frame<'_>) -> Result<(), E>,
        E: From<WireError>,
    {
        self.scan_until(buf, whole, |frame| visit(frame).map(|()| Visit::Continue))
    }

    /// Like [`Scanner::scan`], but the visitor may stop the scan before a message.
    pub fn scan_until<W, V, E>(&mut self, buf: &[u8], whole: W, mut visit: V) -> Result<usize, E>
    where
        W: Fn(u8) -> bool,
        V: FnMut(Frame<'_>) -> Result<Visit, E>,
        E: From<WireError>,
    {
        let mut pos = self.skip.min(buf.len());
        self.skip -= pos;
        while self.skip == 0 && buf.len() - pos >= HEADER_LEN {
            let tag = buf[pos];
            let len = u32::from_be_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]]);
            let body_len = self.check_len(tag, len)?;
            let body_start = pos + HEADER_LEN;
            if whole(tag) {
                if body_len + 4 > self.max_whole {
                    return Err(
                        WireError::LengthTooLarge { tag: tag as char, len: len as usize, max: self.max_whole }.into()
                    );
                }
                if buf.len() - body_start < body_len {
                    break;
                }
                if visit(Frame::Whole { tag, body: &buf[body_start..body_start + body_len] })? == Visit::Stop {
                    break;
                }
                pos = body_start + body_len;
            } else {
                let here = body_len.min(buf.len() - body_start);
                if visit(Frame::Streamed { tag, body_len, prefix: &buf[body_start..body_start + here] })? == Visit::Stop
                {
                    break;
                }
                self.skip = body_len - here;
                pos = body_start + here;
            }
        }
        Ok(pos)
    }

    /// How many more bytes the caller must buffer before the next scan can make progress,
    /// given `pending` unforwarded bytes at the front of `buf`. Used to size reads.
    pub fn wanted(&self, buf: &[u8]) -> usize {
        if buf.len() < HEADER_LEN {
            return HEADER_LEN - buf.len();
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        // The length is the peer's word and not yet checked (a parked session's next
        // message is not scanned): a message the scanner will not hold whole needs no more
        // bytes, since the next scan streams it or refuses its length.
        if len > self.max_whole {
            return 0;
        }
        (len + 1).saturating_sub(buf.len())
    }

    fn check_len(&self, tag: u8, len: u32) -> Result<usize, WireError> {
        if len < 4 {
            return Err(WireError::LengthTooSmall { tag: tag as char, len });
        }
        if len as usize > self.max_len {
            return Err(WireError::LengthTooLarge { tag: tag as char, len: len as usize, max: self.max_len });
        }
        Ok(len as usize - 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn collect(s: &mut Scanner, buf: &[u8], whole: fn(u8) -> bool) -> Result<(usize, Vec<(u8, usize)>), WireError> {
        let mut seen = Vec::new();
        let n = s.scan(buf, whole, |f| {
            seen.push(match f {
                Frame::Whole { tag, body } => (tag, body.len()),
                Frame::Streamed { tag, body_len, .. } => (tag, body_len),
            });
            Ok::<(), WireError>(())
        })?;
        Ok((n, seen))
    }

    #[test]
    fn whole_messages_wait_for_their_last_byte() {
        let mut s = Scanner::new(1 << 20, 1024);
        let mut buf = msg(b'Z', b"I");
        buf.extend(msg(b'Z', b"T"));
        let (n, seen) = collect(&mut s, &buf[..8], |_| true).unwrap();
        assert_eq!((n, seen), (6, vec![(b'Z', 1)]));
        let (n, seen) = collect(&mut s, &buf[6..], |_| true).unwrap();
        assert_eq!((n, seen), (6, vec![(b'Z', 1)]));
    }

    #[test]
    fn streamed_bodies_pass_in_pieces() {
        let mut s = Scanner::new(1 << 20, 1024);
        let body = vec![7u8; 100];
        let mut buf = msg(b'D', &body);
        buf.extend(msg(b'C', b"SELECT 1\0"));
        let (n, seen) = collect(&mut s, &buf[..50], |t| t == b'C').unwrap();
        assert_eq!((n, seen), (50, vec![(b'D', 100)]));
        assert!(!s.at_message_start());
        let (n, seen) = collect(&mut s, &buf[50..], |t| t == b'C').unwrap();
        assert_eq!(n, buf.len() - 50);
        assert_eq!(seen, vec![(b'C', 9)]);
        assert!(s.at_message_start());
    }

    #[test]
    fn partial_header_is_not_forwarded() {
        let mut s = Scanner::new(1 << 20, 1024);
        let buf = msg(b'Q', b"select 1\0");
        let (n, seen) = collect(&mut s, &buf[..3], |_| false).unwrap();
        assert_eq!((n, seen.len()), (0, 0));
        assert_eq!(s.wanted(&buf[..3]), 2);
    }

    #[test]
    fn wanted_never_sizes_a_read_by_a_length_over_the_caps() {
        // A session parked behind a closed gate reads without scanning: the header's
        // length must not size its buffer.
        let s = Scanner::new(1 << 30, 1 << 20);
        let mut buf = vec![b'Q'];
        buf.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(s.wanted(&buf), 0);
        let mut buf = vec![b'd'];
        buf.extend_from_slice(&((1u32 << 20) + 1).to_be_bytes());
        assert_eq!(s.wanted(&buf), 0, "longer than the scanner holds whole: streamed or refused");
        let mut buf = vec![b'Q'];
        buf.extend_from_slice(&(1u32 << 20).to_be_bytes());
        assert_eq!(s.wanted(&buf), (1 << 20) + 1 - 5);
    }

    #[test]
    fn bogus_lengths_are_refused_before_any_buffering() {
        let mut s = Scanner::new(1 << 30, 1024);
        let mut buf = vec![b'Q'];
        buf.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
        assert!(matches!(collect(&mut s, &buf, |_| false), Err(WireError::LengthTooLarge { .. })));
        let mut buf = vec![b'Q'];
        buf.extend_from_slice(&3u32.to_be_bytes());
        assert!(matches!(collect(&mut s, &buf, |_| false), Err(WireError::LengthTooSmall { .. })));
        let mut buf = vec![b'E'];
        buf.extend_from_slice(&5000u32.to_be_bytes());
        assert!(matches!(collect(&mut s, &buf, |_| true), Err(WireError::LengthTooLarge { max: 1024, .. })));
    }
}
