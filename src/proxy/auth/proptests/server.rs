//! [`ScramServer`] and [`ScramVerifier`]: arbitrary messages fail with errors, a right
//! exchange succeeds for any user name, nonce and password, and any change to the
//! client's final message fails.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;

use super::{client, salt_and_iterations, start, Client, NONCE};
use crate::proptest_config::config;
use crate::proxy::auth::{AuthError, ScramServer, ScramVerifier};

/// Client-first-messages: each attribute right or wrong in one of the ways the server
/// checks, then optional extensions; or pieces of them in any order.
fn client_first_message() -> impl Strategy<Value = Vec<u8>> {
    let flag = prop_oneof![Just("n"), Just("y"), Just("p=tls-server-end-point"), Just(""), Just("x")];
    let authzid = prop_oneof![3 => Just(""), 1 => Just("a=admin")];
    let user = prop_oneof![Just("n=user"), Just("n="), Just("m=ext"), Just("x=1")];
    let nonce = prop_oneof![
        3 => NONCE.prop_map(|n| format!("r={n}")),
        1 => Just("r=".to_owned()),
        1 => Just("r=\u{7f}".to_owned()),
        1 => Just("r=a b".to_owned()),
        1 => any::<String>(),
    ];
    let extensions = proptest::collection::vec(prop_oneof![Just("x=1".to_owned()), any::<String>()], 0..2);
    let in_order = (flag.clone(), authzid.clone(), user.clone(), nonce.clone(), extensions).prop_map(
        |(flag, authzid, user, nonce, extensions)| {
            let mut parts = vec![flag.to_owned(), authzid.to_owned(), user.to_owned(), nonce];
            parts.extend(extensions);
            parts.join(",").into_bytes()
        },
    );
    let piece =
        prop_oneof![flag.prop_map(str::to_owned), authzid.prop_map(str::to_owned), user.prop_map(str::to_owned), nonce];
    let shuffled = proptest::collection::vec(piece, 0..6).prop_map(|pieces| pieces.join(",").into_bytes());
    prop_oneof![3 => in_order, 1 => shuffled]
}

/// Client-final-messages after the client-first `n,,n=,r=abc`, each attribute right or
/// wrong, or pieces of them in any order. `NONCE` stands for the nonce the server sent.
fn client_final_message() -> impl Strategy<Value = String> {
    let binding = prop_oneof![Just("c=biws"), Just("c=eSws"), Just("c="), Just("x=1")];
    let nonce = prop_oneof![3 => Just("r=NONCE"), 1 => Just("r=abc"), 1 => Just("r=")];
    let proof = prop_oneof![
        any::<[u8; 32]>().prop_map(|proof| format!("p={}", STANDARD.encode(proof))),
        any::<Vec<u8>>().prop_map(|proof| format!("p={}", STANDARD.encode(proof))),
        Just("p=".to_owned()),
        any::<String>().prop_map(|proof| format!("p={proof}")),
    ];
    let extensions = proptest::collection::vec(prop_oneof![Just("x=1".to_owned()), any::<String>()], 0..2);
    let in_order =
        (binding.clone(), nonce.clone(), extensions, proof.clone()).prop_map(|(binding, nonce, extensions, proof)| {
            let mut parts = vec![binding.to_owned(), nonce.to_owned()];
            parts.extend(extensions);
            parts.push(proof);
            parts.join(",")
        });
    let piece = prop_oneof![binding.prop_map(str::to_owned), nonce.prop_map(str::to_owned), proof];
    let shuffled = proptest::collection::vec(piece, 0..5).prop_map(|pieces| pieces.join(","));
    prop_oneof![3 => in_order, 1 => shuffled]
}

/// A server for a fixed password, with its client-first already taken.
fn server_after_first() -> (ScramServer, String) {
    let mut server = ScramServer::new(ScramVerifier::from_password(b"pw", b"salt", 1));
    let first = server.client_first(b"n,,n=,r=abc").expect("well-formed");
    let nonce = String::from_utf8(first).unwrap().split(',').next().unwrap()[2..].to_owned();
    (server, nonce)
}

proptest! {
    #![proptest_config(config(1024))]

    /// A right exchange succeeds whatever the user name (ignored, as PostgreSQL does),
    /// nonce, gs2 header, password, salt and iteration count, and the server signs it so
    /// the client can check the server knew the verifier.
    #[test]
    fn a_right_exchange_succeeds(client in client(), (salt, iterations) in salt_and_iterations()) {
        let mut server = ScramServer::new(ScramVerifier::from_password(&client.password, &salt, iterations));
        let last = start(&mut server, &client);
        let server_final = server.client_final(last.message.as_bytes());
        prop_assert_eq!(server_final, Ok(format!("v={}", STANDARD.encode(last.server_signature)).into_bytes()));
    }

    /// Any other password fails.
    #[test]
    fn another_password_fails(
        client in client(),
        other in proptest::collection::vec(any::<u8>(), 0..32),
        (salt, iterations) in salt_and_iterations(),
    ) {
        prop_assume!(other != client.password);
        let mut server = ScramServer::new(ScramVerifier::from_password(&other, &salt, iterations));
        let last = start(&mut server, &client);
        prop_assert_eq!(server.client_final(last.message.as_bytes()), Err(AuthError::PasswordMismatch));
    }

    /// Changing any bit pattern of any byte of the client's proof is a password mismatch.
    #[test]
    fn a_changed_proof_fails(
        client in client(),
        (salt, iterations) in salt_and_iterations(),
        at in 0usize..32,
        flip in 1u8..=255,
    ) {
        let mut server = ScramServer::new(ScramVerifier::from_password(&client.password, &salt, iterations));
        let last = start(&mut server, &client);
        let (without_proof, proof) = last.message.rsplit_once(",p=").unwrap();
        let mut proof = STANDARD.decode(proof).unwrap();
        proof[at] ^= flip;
        let changed = format!("{without_proof},p={}", STANDARD.encode(proof));
        prop_assert_eq!(server.client_final(changed.as_bytes()), Err(AuthError::PasswordMismatch));
    }

    /// Changing any one byte of the client-final-message (channel binding, nonce, proof or
    /// the separators) fails, with one error or another, never a panic.
    #[test]
    fn any_changed_byte_of_client_final_fails(
        client in client(),
        (salt, iterations) in salt_and_iterations(),
        at in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let mut server = ScramServer::new(ScramVerifier::from_password(&client.password, &salt, iterations));
        let mut message = start(&mut server, &client).message.into_bytes();
        let at = at % message.len();
        prop_assume!(message[at] != byte);
        message[at] = byte;
        prop_assert!(server.client_final(&message).is_err());
    }

    /// Arbitrary client-first-messages fail with an error or get a server-first-message
    /// that extends the client's nonce.
    #[test]
    fn any_client_first_is_answered_or_refused(
        message in prop_oneof![any::<Vec<u8>>(), client_first_message()],
    ) {
        let mut server = ScramServer::new(ScramVerifier::from_password(b"pw", b"salt", 1));
        if let Ok(reply) = server.client_first(&message) {
            let reply = String::from_utf8(reply).unwrap();
            let text = std::str::from_utf8(&message).unwrap();
            let nonce = text.split(',').nth(3).unwrap().strip_prefix("r=").unwrap();
            prop_assert!(reply.starts_with(&format!("r={nonce}")), "{reply}");
            prop_assert!(reply.ends_with(",i=1"), "{reply}");
        }
    }

    /// Arbitrary client-final-messages after a right client-first fail with an error.
    #[test]
    fn any_client_final_is_refused(
        message in prop_oneof![any::<Vec<u8>>(), client_final_message().prop_map(String::into_bytes)],
    ) {
        let (mut server, nonce) = server_after_first();
        let message = String::from_utf8_lossy(&message).replace("NONCE", &nonce);
        prop_assert!(server.client_final(message.as_bytes()).is_err());
    }

    /// Messages in any order: out of turn they fail, and after the first failure every
    /// later message fails too.
    #[test]
    fn an_exchange_ends_at_its_first_error(
        calls in proptest::collection::vec(
            (any::<bool>(), prop_oneof![Just(b"n,,n=,r=abc".to_vec()), any::<Vec<u8>>()]),
            1..6,
        ),
    ) {
        let mut server = ScramServer::new(ScramVerifier::from_password(b"pw", b"salt", 1));
        let mut failed = false;
        let mut firsts = 0;
        for (is_first, message) in calls {
            let got = if is_first { server.client_first(&message) } else { server.client_final(&message) };
            if failed {
                prop_assert!(got.is_err(), "a message was accepted after the exchange failed");
            }
            match got {
                Ok(_) if is_first => firsts += 1,
                Ok(_) => prop_assert!(false, "a client-final without a right proof was accepted"),
                Err(_) => failed = true,
            }
        }
        prop_assert!(firsts <= 1);
    }

    /// Stored verifiers parse back to what they were written from; arbitrary text never
    /// panics the parser.
    #[test]
    fn verifiers_round_trip(
        (salt, iterations) in (proptest::collection::vec(any::<u8>(), 1..24), 1u32..),
        stored_key in any::<[u8; 32]>(),
        server_key in any::<[u8; 32]>(),
        noise in any::<String>(),
    ) {
        let text = format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            STANDARD.encode(&salt),
            STANDARD.encode(stored_key),
            STANDARD.encode(server_key)
        );
        let parsed = ScramVerifier::parse(&text);
        prop_assert_eq!(parsed, Ok(ScramVerifier { iterations, salt, stored_key, server_key }));
        let _ = ScramVerifier::parse(&noise);
        let _ = ScramVerifier::parse(&format!("SCRAM-SHA-256${noise}"));
    }
}

proptest! {
    // Each case runs 4096 PBKDF2 rounds (the mock verifier's count).
    #![proptest_config(config(128))]

    /// An unknown user's exchange runs to its end and fails, whatever the client sends.
    #[test]
    fn an_unknown_user_always_fails(client in client(), key in any::<[u8; 32]>()) {
        let mut server = ScramServer::unknown_user(ScramVerifier::mock(&client.user, &key, 4096, 16));
        let last = start(&mut server, &client);
        prop_assert_eq!(server.client_final(last.message.as_bytes()), Err(AuthError::PasswordMismatch));
    }
}

/// The client written for these tests agrees with the server on a fixed exchange, so a
/// failure of the properties above is not a bug of the test client.
#[test]
fn the_test_client_logs_in() {
    let client = Client { gs2: "n,,", user: "u,=".into(), nonce: "abc".into(), password: b"pw".to_vec() };
    let mut server = ScramServer::new(ScramVerifier::from_password(b"pw", b"salt", 4096));
    let last = start(&mut server, &client);
    assert!(server.client_final(last.message.as_bytes()).is_ok());
}
