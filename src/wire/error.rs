//! Errors found while framing or decoding protocol bytes.

/// A protocol violation by the peer. None of these allocate on the peer's say-so.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("invalid message length {len} for message type {tag:?}")]
    LengthTooSmall { tag: char, len: u32 },
    #[error("message type {tag:?} of {len} bytes exceeds the limit of {max} bytes")]
    LengthTooLarge { tag: char, len: usize, max: usize },
    #[error("invalid startup packet length {0}")]
    StartupLength(u32),
    #[error("unexpected message type {0:?}")]
    UnexpectedTag(char),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}
