//! Property tests of the wire parsers: arbitrary bytes, lengths and splits.
//!
//! - [`scanner`]: the normal-phase framer, [`crate::wire::Scanner`].
//! - [`startup`]: the startup-phase parser, [`crate::wire::startup::parse`].
//! - [`decoders`]: the decoders of single message bodies and the first-request finder.

mod decoders;
mod scanner;
mod startup;

use proptest::prelude::*;

use crate::wire::backend::put_message;

/// One normal-phase message as the crate's own encoder writes it.
pub(crate) fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    put_message(&mut out, tag, |b| b.extend_from_slice(body));
    out
}

/// Message bodies: mostly short, some longer than a typical read.
pub(crate) fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..32),
        1 => proptest::collection::vec(any::<u8>(), 0..3000),
    ]
}

/// `stream` cut at the given points (taken modulo its length), as a reader would see it;
/// never an empty piece, since an empty read means end of stream.
pub(crate) fn split(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    at.push(0);
    at.push(stream.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| stream[w[0]..w[1]].to_vec()).filter(|piece| !piece.is_empty()).collect()
}
