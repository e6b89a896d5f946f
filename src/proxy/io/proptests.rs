//! [`read_message`] and [`read_startup`] over arbitrary streams cut at arbitrary points:
//! the same messages and the same error as a model reading the whole stream, and a buffer
//! whose capacity follows the lengths the cap lets through, never a refused one.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_util::FutureExt;
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};

use super::{read_message, read_startup, ReadError, MAX_HANDSHAKE_MESSAGE};
use crate::proptest_config::config;
use crate::wire::backend::put_message;
use crate::wire::frame::HEADER_LEN;
use crate::wire::startup::{self, StartupMessage, StartupPacket};
use crate::wire::{WireError, DEFAULT_MAX_STARTUP, PROTOCOL_3_0};

/// A peer whose bytes arrive in the given pieces, then end of stream. Reads never pend.
struct Pieces(VecDeque<Vec<u8>>);

impl Pieces {
    fn new(stream: &[u8], cuts: &[usize]) -> Pieces {
        Pieces(crate::wire::proptests::split(stream, cuts).into())
    }
}

impl AsyncRead for Pieces {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(front) = self.0.front_mut() {
            let n = front.len().min(out.remaining());
            out.put_slice(&front[..n]);
            front.drain(..n);
            if front.is_empty() {
                self.0.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// How a sequence of reads ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    Wire(WireError),
}

fn end_of(e: ReadError) -> End {
    match e {
        ReadError::Closed => End::Closed,
        ReadError::Wire(e) => End::Wire(e),
        ReadError::Io(e) => panic!("the test peer does not fail: {e}"),
    }
}

/// What successive `read_message` calls must give for `stream` under cap `max`, and the
/// largest message (header included) the cap lets the reader buffer on the way.
fn model(stream: &[u8], max: usize) -> (Vec<(u8, Vec<u8>)>, End, usize) {
    let mut messages = Vec::new();
    let mut rest = stream;
    let mut largest = 0;
    loop {
        if rest.len() < HEADER_LEN {
            return (messages, End::Closed, largest);
        }
        let (tag, len) = (rest[0], u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]));
        if len < 4 {
            return (messages, End::Wire(WireError::LengthTooSmall { tag: tag as char, len }), largest);
        }
        if len as usize > max {
            let refused = WireError::LengthTooLarge { tag: tag as char, len: len as usize, max };
            return (messages, End::Wire(refused), largest);
        }
        let total = len as usize + 1;
        largest = largest.max(total);
        if rest.len() < total {
            return (messages, End::Closed, largest);
        }
        messages.push((tag, rest[HEADER_LEN..total].to_vec()));
        rest = &rest[total..];
    }
}

/// The most a reader's buffer may hold for messages of up to `largest` bytes: the buffer
/// grows by doubling, reads add up to 4 KiB, and `BytesMut` may keep 64 KiB it started with.
fn capacity_bound(largest: usize) -> usize {
    4 * (largest + 4096) + (64 << 10)
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_message(&mut out, tag, |b| b.extend_from_slice(body));
    out
}

/// Streams of messages, possibly followed by a header of any length, or garbage.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..9000),
    ];
    let messages = proptest::collection::vec((any::<u8>(), body), 0..6);
    let header = proptest::option::of((any::<u8>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..32)));
    prop_oneof![
        (messages, header).prop_map(|(ms, header)| {
            let mut out: Vec<u8> = ms.iter().flat_map(|(t, b)| message(*t, b)).collect();
            if let Some((tag, len, after)) = header {
                out.push(tag);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&after);
            }
            out
        }),
        proptest::collection::vec(any::<u8>(), 0..128),
    ]
}

proptest! {
    #![proptest_config(config(2048))]

    /// Reading message after message gives what the model gives for the whole stream,
    /// whatever the read sizes; a length over the cap fails before any buffering for it.
    #[test]
    fn read_message_frames_like_the_model(
        stream in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
        max in prop_oneof![Just(MAX_HANDSHAKE_MESSAGE), 0usize..10_000],
    ) {
        let (expected, expected_end, largest) = model(&stream, max);
        let mut peer = Pieces::new(&stream, &cuts);
        let mut buf = BytesMut::with_capacity(4096);
        let mut got = Vec::new();
        let end = loop {
            let read = read_message(&mut peer, &mut buf, max).now_or_never().expect("the test peer never pends");
            prop_assert!(
                buf.capacity() <= capacity_bound(largest),
                "buffer of {} bytes for messages of at most {} bytes",
                buf.capacity(),
                largest
            );
            match read {
                Ok((tag, body)) => got.push((tag, body.to_vec())),
                Err(e) => break end_of(e),
            }
        };
        prop_assert_eq!(got, expected);
        prop_assert_eq!(end, expected_end);
    }

    /// Reading one startup packet gives what `startup::parse` gives for the whole stream;
    /// bytes after the packet stay buffered.
    #[test]
    fn read_startup_agrees_with_parse(
        stream in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(("[^\u{0}]{1,8}", "[^\u{0}]{0,8}"), 0..4).prop_map(|params| {
                let mut out = Vec::new();
                StartupMessage { version: PROTOCOL_3_0, params }.encode(&mut out);
                out
            }),
            Just(startup::ssl_request().to_vec()),
        ],
        trailing in proptest::collection::vec(any::<u8>(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut whole = stream.clone();
        whole.extend_from_slice(&trailing);
        let mut peer = Pieces::new(&whole, &cuts);
        let mut buf = BytesMut::new();
        let got = read_startup(&mut peer, &mut buf, DEFAULT_MAX_STARTUP).now_or_never().expect("never pends");
        prop_assert!(buf.capacity() <= capacity_bound(DEFAULT_MAX_STARTUP));
        match startup::parse(&whole, DEFAULT_MAX_STARTUP) {
            Ok(Some((packet, len))) => {
                let got: Result<StartupPacket, End> = got.map_err(end_of);
                prop_assert_eq!(got, Ok(packet));
                prop_assert!(whole[len..].starts_with(&buf), "bytes after the packet were lost");
            }
            Ok(None) => prop_assert_eq!(got.map_err(end_of), Err(End::Closed)),
            Err(e) => prop_assert_eq!(got.map_err(end_of), Err(End::Wire(e))),
        }
    }
}
