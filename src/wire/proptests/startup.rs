//! [`parse`] over arbitrary bytes: lengths outside the bounds refused from the first four
//! bytes, every packet shorter than its length waiting for more, StartupMessages
//! round-tripping through [`StartupMessage::encode`], and the three request codes
//! recognised exactly.

use proptest::prelude::*;

use crate::proptest_config::config;
use crate::wire::startup::{
    cancel_request, parse, ssl_request, StartupMessage, StartupPacket, CANCEL_REQUEST, GSSENC_REQUEST, SSL_REQUEST,
};
use crate::wire::{WireError, DEFAULT_MAX_STARTUP, PROTOCOL_3_0};

/// Startup-packet caps: the default and small ones.
fn cap() -> impl Strategy<Value = usize> {
    prop_oneof![Just(DEFAULT_MAX_STARTUP), 0usize..64, Just(usize::MAX)]
}

/// A packet with the given length field, code and payload (the length may lie).
fn packet(len: u32, code: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Protocol 3 StartupMessages with arbitrary parameters (names non-empty, no NULs).
fn startup_message() -> impl Strategy<Value = StartupMessage> {
    let param = ("[^\u{0}]{1,12}", "[^\u{0}]{0,24}");
    (any::<u16>(), proptest::collection::vec(param, 0..8))
        .prop_map(|(minor, params)| StartupMessage { version: PROTOCOL_3_0 | minor as u32, params })
}

proptest! {
    #![proptest_config(config(4096))]

    /// Arbitrary bytes: the length field alone decides between "refused", "need more" and
    /// a packet of exactly that length; nothing panics.
    #[test]
    fn the_length_field_decides(
        buf in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (0u32..72, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(|(len, code, payload)| packet(len, code, &payload)),
        ],
        max in cap(),
    ) {
        let got = parse(&buf, max);
        if buf.len() < 4 {
            prop_assert_eq!(got, Ok(None));
            return Ok(());
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len < 8 || len as usize > max {
            prop_assert_eq!(got, Err(WireError::StartupLength(len)));
        } else if buf.len() < len as usize {
            prop_assert_eq!(got, Ok(None));
        } else {
            match got {
                Ok(Some((_, n))) => prop_assert_eq!(n, len as usize),
                Ok(None) => prop_assert!(false, "a whole packet was not decoded"),
                Err(e) => prop_assert!(matches!(e, WireError::Malformed(_)), "unexpected error {e:?}"),
            }
        }
    }

    /// StartupMessage::encode then parse gives the message back, whatever follows it;
    /// every proper prefix waits for more; a cap below its length refuses it.
    #[test]
    fn startup_messages_round_trip(
        msg in startup_message(),
        trailing in proptest::collection::vec(any::<u8>(), 0..16),
        cut in any::<usize>(),
    ) {
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        let len = buf.len();
        buf.extend_from_slice(&trailing);
        prop_assert_eq!(parse(&buf, usize::MAX), Ok(Some((StartupPacket::Startup(msg.clone()), len))));
        prop_assert_eq!(parse(&buf[..cut % len], usize::MAX), Ok(None));
        let below = len - 1;
        prop_assert_eq!(parse(&buf, below), Err(WireError::StartupLength(len as u32)));
    }

    /// Other major versions carry no parameter list the proxy reads: their payload is
    /// ignored (the session refuses them by version).
    #[test]
    fn other_protocol_versions_are_passed_up_without_parameters(
        version in any::<u32>().prop_filter("protocol 3 or a request code", |v| {
            v >> 16 != 3 && ![SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST].contains(v)
        }),
        payload in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let buf = packet(8 + payload.len() as u32, version, &payload);
        let expected = StartupPacket::Startup(StartupMessage { version, params: Vec::new() });
        prop_assert_eq!(parse(&buf, usize::MAX), Ok(Some((expected, buf.len()))));
    }

    /// SSLRequest and GSSENCRequest only with an empty payload, CancelRequest only with
    /// exactly 8 bytes; any other length under those codes is malformed, not a startup.
    #[test]
    fn request_codes_are_recognised_exactly(
        code in prop_oneof![Just(SSL_REQUEST), Just(GSSENC_REQUEST), Just(CANCEL_REQUEST)],
        payload in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let buf = packet(8 + payload.len() as u32, code, &payload);
        let got = parse(&buf, usize::MAX);
        let expected = match (code, payload.len()) {
            (SSL_REQUEST, 0) => Ok(Some((StartupPacket::SslRequest, 8))),
            (GSSENC_REQUEST, 0) => Ok(Some((StartupPacket::GssEncRequest, 8))),
            (CANCEL_REQUEST, 8) => {
                let pid = i32::from_be_bytes(payload[..4].try_into().unwrap());
                let key = i32::from_be_bytes(payload[4..].try_into().unwrap());
                Ok(Some((StartupPacket::Cancel { pid, key }, 16)))
            }
            _ => Err(WireError::Malformed("request packet has the wrong length")),
        };
        prop_assert_eq!(got, expected);
    }

    /// The request encoders and the parser agree.
    #[test]
    fn request_encoders_round_trip(pid in any::<i32>(), key in any::<i32>()) {
        prop_assert_eq!(parse(&cancel_request(pid, key), 16), Ok(Some((StartupPacket::Cancel { pid, key }, 16))));
        prop_assert_eq!(parse(&ssl_request(), 8), Ok(Some((StartupPacket::SslRequest, 8))));
    }
}
