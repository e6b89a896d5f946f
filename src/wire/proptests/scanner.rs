//! [`Scanner`] over arbitrary streams: the same messages whatever the read sizes, every
//! length checked against its cap before a byte is buffered, and valid messages framed
//! back to the tag and body they were encoded from.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::{body, message, split};
use crate::proptest_config::config;
use crate::wire::frame::HEADER_LEN;
use crate::wire::{Frame, Scanner, Visit, WireError};

/// A message as the scanner showed it, without the part that depends on read sizes
/// (how much of a streamed body came with its header).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Whole(u8, Vec<u8>),
    Streamed(u8, usize),
}

/// Everything a run of the scanner over one stream reported.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    seen: Vec<Seen>,
    /// Leading bytes of the stream reported ready to forward (none once an error ends the
    /// session: what was forwarded before it depends on the read sizes).
    forwarded: usize,
    error: Option<WireError>,
    at_message_start: bool,
}

/// Feeds `pieces` to `scanner` the way a session's direction does: after each read, scan
/// the bytes not yet forwarded and forward the ready ones.
fn run(mut scanner: Scanner, pieces: &[Vec<u8>], whole: &BTreeSet<u8>) -> Outcome {
    let mut seen = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut forwarded = 0;
    let mut error = None;
    for piece in pieces {
        pending.extend_from_slice(piece);
        let scanned = scanner.scan(
            &pending,
            |tag| whole.contains(&tag),
            |frame| {
                seen.push(match frame {
                    Frame::Whole { tag, body } => Seen::Whole(tag, body.to_vec()),
                    Frame::Streamed { tag, body_len, .. } => Seen::Streamed(tag, body_len),
                });
                Ok::<(), WireError>(())
            },
        );
        match scanned {
            Ok(n) => {
                assert!(n <= pending.len(), "ready {n} of only {} bytes", pending.len());
                pending.drain(..n);
                forwarded += n;
            }
            Err(e) => {
                error = Some(e);
                forwarded = 0;
                break;
            }
        }
    }
    Outcome { seen, forwarded, error, at_message_start: scanner.at_message_start() }
}

/// Streams of messages, of garbage, and of messages with a few bytes overwritten.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let messages = || {
        proptest::collection::vec((any::<u8>(), body()), 0..8)
            .prop_map(|ms| ms.iter().flat_map(|(tag, b)| message(*tag, b)).collect::<Vec<u8>>())
    };
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        messages(),
        (messages(), proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)).prop_map(|(mut s, edits)| {
            for (at, byte) in edits {
                if !s.is_empty() {
                    let at = at % s.len();
                    s[at] = byte;
                }
            }
            s
        }),
    ]
}

fn whole_tags() -> impl Strategy<Value = BTreeSet<u8>> {
    prop_oneof![Just(BTreeSet::new()), Just((0..=255).collect()), proptest::collection::btree_set(any::<u8>(), 0..64),]
}

/// Message caps: the default, and small ones that the streams above cross.
fn cap() -> impl Strategy<Value = usize> {
    prop_oneof![Just(crate::wire::DEFAULT_MAX_MESSAGE), 0usize..4096]
}

/// A header length near one of the caps, tiny, or anything at all.
fn declared_len(max_len: usize, max_whole: usize) -> impl Strategy<Value = u32> {
    let near = |cap: usize| (-2i64..=2).prop_map(move |d| (cap as i64 + d).clamp(0, u32::MAX as i64) as u32);
    prop_oneof![any::<u32>(), 0u32..16, near(max_len), near(max_whole), u32::MAX - 2..=u32::MAX]
}

proptest! {
    #![proptest_config(config(4096))]

    /// Whatever the read sizes, a direction sees the same messages, forwards the same
    /// bytes and fails with the same error as when the whole stream arrives at once.
    #[test]
    fn read_sizes_do_not_change_the_framing(
        stream in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        whole in whole_tags(),
        max_len in cap(),
        max_whole in cap(),
    ) {
        let at_once = run(Scanner::new(max_len, max_whole), std::slice::from_ref(&stream), &whole);
        let pieces = split(&stream, &cuts);
        let in_pieces = run(Scanner::new(max_len, max_whole), &pieces, &whole);
        prop_assert_eq!(&in_pieces, &at_once);
        prop_assert!(at_once.forwarded <= stream.len());
    }

    /// Valid messages come back with the tag and body they were encoded with, every byte is
    /// forwarded, and the scanner ends between messages.
    #[test]
    fn valid_messages_round_trip(
        messages in proptest::collection::vec((any::<u8>(), body()), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        whole in whole_tags(),
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(|(tag, b)| message(*tag, b)).collect();
        let got = run(Scanner::new(1 << 20, 1 << 20), &split(&stream, &cuts), &whole);
        let expected: Vec<Seen> = messages
            .iter()
            .map(|(tag, b)| match whole.contains(tag) {
                true => Seen::Whole(*tag, b.clone()),
                false => Seen::Streamed(*tag, b.len()),
            })
            .collect();
        prop_assert_eq!(got, Outcome { seen: expected, forwarded: stream.len(), error: None, at_message_start: true });
    }

    /// Any declared length (0..=u32::MAX) of any tag is checked against the caps from the
    /// header alone: refused with the error naming the cap, or framed as declared. The
    /// scanner never asks its caller to buffer more than one message it holds whole.
    #[test]
    fn declared_lengths_are_checked_before_buffering(
        (max_len, max_whole, len) in (cap(), cap()).prop_flat_map(|(l, w)| (Just(l), Just(w), declared_len(l, w))),
        tag in any::<u8>(),
        held_whole in any::<bool>(),
        mut after in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        // Only part of this message's body follows its header, never a next message.
        after.truncate((len as usize).saturating_sub(4));
        let mut buf = vec![tag];
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&after);
        let mut scanner = Scanner::new(max_len, max_whole);
        let effective_whole = max_whole.min(max_len);
        prop_assert!(
            scanner.wanted(&buf) <= effective_whole + 1,
            "wanted {} bytes for a message the scanner holds at most {} bytes of",
            scanner.wanted(&buf),
            effective_whole
        );
        let mut seen = Vec::new();
        let got = scanner.scan(&buf, |_| held_whole, |frame| {
            seen.push(match frame {
                Frame::Whole { tag, body } => (tag, body.len(), body.len()),
                Frame::Streamed { tag, body_len, prefix } => (tag, body_len, prefix.len()),
            });
            Ok::<(), WireError>(())
        });
        if got.is_err() {
            prop_assert!(seen.is_empty(), "a refused message was shown to the visitor");
        }
        let len_usize = len as usize;
        let c = tag as char;
        if len < 4 {
            prop_assert_eq!(got, Err(WireError::LengthTooSmall { tag: c, len }));
        } else if len_usize > max_len {
            prop_assert_eq!(got, Err(WireError::LengthTooLarge { tag: c, len: len_usize, max: max_len }));
        } else if held_whole && len_usize > effective_whole {
            prop_assert_eq!(got, Err(WireError::LengthTooLarge { tag: c, len: len_usize, max: effective_whole }));
        } else {
            let body_len = len_usize - 4;
            let here = body_len.min(after.len());
            if held_whole && here < body_len {
                prop_assert_eq!(got, Ok(0));
                prop_assert!(seen.is_empty());
            } else {
                prop_assert_eq!(got, Ok(HEADER_LEN + here));
                prop_assert_eq!(seen.first().copied(), Some((tag, body_len, here)));
            }
        }
    }

    /// Whatever the bytes, the read size the scanner asks for stays within what it holds.
    #[test]
    fn wanted_is_bounded_by_the_whole_cap(
        buf in proptest::collection::vec(any::<u8>(), 0..16),
        max_len in cap(),
        max_whole in cap(),
    ) {
        let scanner = Scanner::new(max_len, max_whole);
        prop_assert!(scanner.wanted(&buf) <= max_whole.min(max_len).max(HEADER_LEN) + 1);
    }

    /// A visitor that stops before message `k` gets the offset where `k` starts; scanning
    /// from there shows the rest, each message once.
    #[test]
    fn stopping_then_resuming_shows_each_message_once(
        messages in proptest::collection::vec((any::<u8>(), body()), 0..8),
        stop_at in 0usize..9,
        whole in whole_tags(),
    ) {
        let encoded: Vec<Vec<u8>> = messages.iter().map(|(tag, b)| message(*tag, b)).collect();
        let stream = encoded.concat();
        let mut scanner = Scanner::new(1 << 20, 1 << 20);
        let mut tags = Vec::new();
        let offset = scanner
            .scan_until(&stream, |t| whole.contains(&t), |frame| {
                if tags.len() == stop_at {
                    return Ok::<Visit, WireError>(Visit::Stop);
                }
                tags.push(frame.tag());
                Ok(Visit::Continue)
            })
            .unwrap();
        let k = stop_at.min(messages.len());
        prop_assert_eq!(offset, encoded[..k].iter().map(Vec::len).sum::<usize>());
        prop_assert!(scanner.at_message_start());
        let rest = scanner
            .scan(&stream[offset..], |t| whole.contains(&t), |frame| {
                tags.push(frame.tag());
                Ok::<(), WireError>(())
            })
            .unwrap();
        prop_assert_eq!(offset + rest, stream.len());
        prop_assert_eq!(tags, messages.iter().map(|(t, _)| *t).collect::<Vec<u8>>());
    }
}
