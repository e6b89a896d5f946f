//! Client-to-server messages: the tags the proxy watches, decoders for the client's
//! authentication answers, and builders for what the proxy sends its upstream.

use crate::wire::backend::put_message;
use crate::wire::{read_cstr, read_i32, WireError};

pub const BIND: u8 = b'B';
pub const CLOSE: u8 = b'C';
pub const COPY_DATA: u8 = b'd';
pub const COPY_DONE: u8 = b'c';
pub const COPY_FAIL: u8 = b'f';
pub const DESCRIBE: u8 = b'D';
pub const EXECUTE: u8 = b'E';
pub const FLUSH: u8 = b'H';
pub const FUNCTION_CALL: u8 = b'F';
pub const PARSE: u8 = b'P';
/// PasswordMessage, SASLInitialResponse and SASLResponse all use this tag.
pub const PASSWORD: u8 = b'p';
pub const QUERY: u8 = b'Q';
pub const SYNC: u8 = b'S';
pub const TERMINATE: u8 = b'X';

/// True for the tags a client may send in the normal phase.
pub fn is_known_tag(tag: u8) -> bool {
    matches!(
        tag,
        BIND | CLOSE
            | COPY_DATA
            | COPY_DONE
            | COPY_FAIL
            | DESCRIBE
            | EXECUTE
            | FLUSH
            | FUNCTION_CALL
            | PARSE
            | PASSWORD
            | QUERY
            | SYNC
            | TERMINATE
    )
}

/// True for the messages that end a request: the server answers each with ReadyForQuery.
pub fn ends_request(tag: u8) -> bool {
    matches!(tag, QUERY | SYNC | FUNCTION_CALL)
}

/// The length of the leading whole messages of `buf` that make up the client's first
/// request (up to and including the first Query, FunctionCall or Sync), or `None` when
/// `buf` holds no whole request yet (or starts with something else that cannot be one,
/// such as Terminate).
pub fn first_request_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while buf.len() - pos >= crate::wire::frame::HEADER_LEN {
        let tag = buf[pos];
        let len = u32::from_be_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]]) as usize;
        if len < 4 || tag == TERMINATE || !is_known_tag(tag) {
            return None;
        }
        let end = pos + 1 + len;
        if end > buf.len() {
            return None;
        }
        if ends_request(tag) {
            return Some(end);
        }
        pos = end;
    }
    None
}

/// Decodes a PasswordMessage body (cleartext or md5 answer).
pub fn parse_password(body: &[u8]) -> Result<&str, WireError> {
    Ok(read_cstr(body)?.0)
}

/// A decoded SASLInitialResponse.
#[derive(Debug, PartialEq, Eq)]
pub struct SaslInitial<'a> {
    pub mechanism: &'a str,
    pub data: &'a [u8],
}

/// Decodes a SASLInitialResponse body.
pub fn parse_sasl_initial(body: &[u8]) -> Result<SaslInitial<'_>, WireError> {
    let (mechanism, rest) = read_cstr(body)?;
    let (len, rest) = read_i32(rest)?;
    let data = match len {
        -1 => &[][..],
        n if n >= 0 && n as usize == rest.len() => rest,
        _ => return Err(WireError::Malformed("SASL data length does not match the message")),
    };
    Ok(SaslInitial { mechanism, data })
}

/// Appends a PasswordMessage carrying `password` (cleartext or an md5 answer).
pub fn password_message(out: &mut Vec<u8>, password: &[u8]) {
    put_message(out, PASSWORD, |b| {
        b.extend_from_slice(password);
        b.push(0);
    });
}

/// Appends a SASLInitialResponse.
pub fn sasl_initial_response(out: &mut Vec<u8>, mechanism: &str, data: &[u8]) {
    put_message(out, PASSWORD, |b| {
        b.extend_from_slice(mechanism.as_bytes());
        b.push(0);
        b.extend_from_slice(&(data.len() as i32).to_be_bytes());
        b.extend_from_slice(data);
    });
}

/// Appends a SASLResponse.
pub fn sasl_response(out: &mut Vec<u8>, data: &[u8]) {
    put_message(out, PASSWORD, |b| b.extend_from_slice(data));
}

/// Appends a Terminate.
pub fn terminate(out: &mut Vec<u8>) {
    put_message(out, TERMINATE, |_| {});
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_request_ends_at_its_query_sync_or_function_call() {
        let message = |tag: u8, body: &[u8]| {
            let mut out = Vec::new();
            put_message(&mut out, tag, |b| b.extend_from_slice(body));
            out
        };
        let query = message(QUERY, b"SELECT 1\0");
        let mut buf = query.clone();
        buf.extend(message(QUERY, b"SELECT 2\0"));
        assert_eq!(first_request_len(&buf), Some(query.len()));
        let extended: Vec<u8> =
            [message(PARSE, b"\0SELECT 1\0\0\0"), message(BIND, &[0; 6]), message(SYNC, b"")].concat();
        assert_eq!(first_request_len(&extended), Some(extended.len()));
        assert_eq!(first_request_len(&extended[..extended.len() - 1]), None, "the Sync is not whole yet");
        assert_eq!(first_request_len(&message(PARSE, b"\0SELECT 1\0\0\0")), None, "no Sync yet");
        assert_eq!(first_request_len(&message(TERMINATE, b"")), None);
        assert_eq!(first_request_len(&[b'Q', 0, 0, 0, 2]), None, "a bogus length is no request");
        assert_eq!(first_request_len(&[]), None);
    }

    #[test]
    fn sasl_initial_round_trips() {
        let mut out = Vec::new();
        sasl_initial_response(&mut out, "SCRAM-SHA-256", b"n,,n=,r=abc");
        let m = parse_sasl_initial(&out[5..]).unwrap();
        assert_eq!(m, SaslInitial { mechanism: "SCRAM-SHA-256", data: b"n,,n=,r=abc" });
    }

    #[test]
    fn sasl_initial_with_wrong_length_is_malformed() {
        let mut out = Vec::new();
        sasl_initial_response(&mut out, "SCRAM-SHA-256", b"abc");
        out.pop();
        assert!(parse_sasl_initial(&out[5..]).is_err());
    }
}
