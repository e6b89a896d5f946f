//! The decoders of single message bodies over arbitrary bytes (no panic, errors as
//! values), their round trips with the crate's encoders, and [`first_request_len`].

use proptest::prelude::*;

use super::{body, message};
use crate::proptest_config::config;
use crate::wire::backend::{
    self, authentication, authentication_sasl, error_code, error_response, parse_backend_key_data, parse_data_row,
    parse_parameter_description, parse_parameter_status, AuthRequest, ErrorFields, Severity,
};
use crate::wire::frontend::{
    self, first_request_len, parse_password, parse_sasl_initial, password_message, sasl_initial_response, SaslInitial,
};

/// Text without NULs, as the encoders require.
const TEXT: &str = "[^\u{0}]{0,16}";

/// Streams of messages under the tags a client sends (and a few others).
fn client_stream() -> impl Strategy<Value = Vec<u8>> {
    let tag = prop_oneof![
        Just(frontend::QUERY),
        Just(frontend::PARSE),
        Just(frontend::BIND),
        Just(frontend::SYNC),
        Just(frontend::FUNCTION_CALL),
        Just(frontend::TERMINATE),
        any::<u8>(),
    ];
    proptest::collection::vec((tag, proptest::collection::vec(any::<u8>(), 0..12)), 0..6)
        .prop_map(|ms| ms.iter().flat_map(|(t, b)| message(*t, b)).collect())
}

proptest! {
    #![proptest_config(config(4096))]

    /// Arbitrary bodies never panic any decoder.
    #[test]
    fn decoders_take_any_body(body in body()) {
        let _ = AuthRequest::parse(&body);
        let _ = ErrorFields::parse(&body);
        let _ = error_code(&body);
        let _ = parse_parameter_status(&body);
        let _ = parse_backend_key_data(&body);
        let _ = parse_data_row(&body);
        let _ = parse_parameter_description(&body);
        let _ = parse_password(&body);
        let _ = parse_sasl_initial(&body);
    }

    /// What the proxy writes as a server, it reads back as a client.
    #[test]
    fn backend_messages_round_trip(
        code in "[0-9A-Z]{5}",
        text in TEXT,
        mechanisms in proptest::collection::vec("[^\u{0}]{1,16}", 0..4),
        salt in any::<[u8; 4]>(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        (pid, key) in any::<(i32, i32)>(),
    ) {
        let mut out = Vec::new();
        error_response(&mut out, Severity::Fatal, &code, &text);
        let fields = ErrorFields::parse(&out[5..]).unwrap();
        prop_assert_eq!(
            (fields.severity.as_str(), fields.code.as_str(), fields.message.as_str()),
            ("FATAL", code.as_str(), text.as_str())
        );
        prop_assert_eq!(error_code(&out[5..]), Some(code.as_str()));

        let names: Vec<&str> = mechanisms.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        authentication_sasl(&mut out, &names);
        prop_assert_eq!(AuthRequest::parse(&out[5..]), Ok(AuthRequest::Sasl { mechanisms: names.clone() }));

        let mut out = Vec::new();
        authentication(&mut out, backend::auth_code::MD5, &salt);
        prop_assert_eq!(AuthRequest::parse(&out[5..]), Ok(AuthRequest::Md5 { salt }));
        let mut out = Vec::new();
        authentication(&mut out, backend::auth_code::SASL_CONTINUE, &data);
        prop_assert_eq!(AuthRequest::parse(&out[5..]), Ok(AuthRequest::SaslContinue(&data)));

        let mut out = Vec::new();
        backend::parameter_status(&mut out, &text, &code);
        prop_assert_eq!(parse_parameter_status(&out[5..]), Ok((text.as_str(), code.as_str())));
        let mut out = Vec::new();
        backend::backend_key_data(&mut out, pid, key);
        prop_assert_eq!(parse_backend_key_data(&out[5..]), Ok((pid, key)));
    }

    /// What the proxy writes as a client, it reads back as a server.
    #[test]
    fn frontend_messages_round_trip(
        mechanism in "[^\u{0}]{0,16}",
        data in proptest::collection::vec(any::<u8>(), 0..128),
        password in TEXT,
    ) {
        let mut out = Vec::new();
        sasl_initial_response(&mut out, &mechanism, &data);
        prop_assert_eq!(parse_sasl_initial(&out[5..]), Ok(SaslInitial { mechanism: &mechanism, data: &data }));
        let mut out = Vec::new();
        password_message(&mut out, password.as_bytes());
        prop_assert_eq!(parse_password(&out[5..]), Ok(password.as_str()));
    }

    /// The first request of a client's buffered bytes ends after its first Query, Sync or
    /// FunctionCall, is made of whole messages of known tags, and is found as soon as its
    /// last byte is buffered, never before.
    #[test]
    fn the_first_request_is_found_at_its_last_byte(
        stream in prop_oneof![client_stream(), proptest::collection::vec(any::<u8>(), 0..64)],
    ) {
        let found = first_request_len(&stream);
        if let Some(end) = found {
            prop_assert!(end <= stream.len());
            let mut pos = 0;
            let mut last = 0;
            while pos < end {
                let len = u32::from_be_bytes(stream[pos + 1..pos + 5].try_into().unwrap()) as usize;
                prop_assert!(frontend::is_known_tag(stream[pos]) && stream[pos] != frontend::TERMINATE);
                last = stream[pos];
                pos += 1 + len;
            }
            prop_assert_eq!(pos, end);
            prop_assert!(frontend::ends_request(last));
        }
        for cut in 0..=stream.len() {
            let expected = found.filter(|&end| end <= cut);
            prop_assert_eq!(first_request_len(&stream[..cut]), expected, "prefix of {} bytes", cut);
        }
    }
}
