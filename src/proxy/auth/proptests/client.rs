//! rust-postgres's `ScramSha256`, the client the proxy runs to log in upstream: it logs
//! in to [`ScramServer`] with any password, refuses a server-final-message changed in any
//! byte, and takes arbitrary server messages without panicking.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use proptest::prelude::*;

use crate::proptest_config::config;
use crate::proxy::auth::{ScramServer, ScramVerifier};

/// rust-postgres's client nonce, from its client-first-message `n,,n=,r=<nonce>`.
fn client_nonce(client: &ScramSha256) -> String {
    let first = std::str::from_utf8(client.message()).unwrap();
    first.rsplit_once("r=").unwrap().1.to_owned()
}

fn binding(requested: bool) -> ChannelBinding {
    if requested {
        ChannelBinding::unrequested()
    } else {
        ChannelBinding::unsupported()
    }
}

/// Server-first-messages: arbitrary, or well-formed with an iteration count that is
/// cheap, zero or over the client's limit. `NONCE` stands for the client's nonce.
fn server_first() -> impl Strategy<Value = String> {
    let iterations = prop_oneof![1u32..8, 100_001u32.., Just(0)];
    let well_formed = ("[!-+\\--~]{0,8}", any::<Vec<u8>>(), iterations, any::<bool>()).prop_map(
        |(suffix, salt, iterations, extend)| {
            let nonce = if extend { format!("NONCE{suffix}") } else { suffix };
            format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt))
        },
    );
    prop_oneof![any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()), well_formed]
}

proptest! {
    #![proptest_config(config(32))]

    /// The upstream client logs in to the proxy's server with any password (SASLprep
    /// applied on both sides), with or without offering channel binding, and accepts the
    /// server's signature.
    #[test]
    fn the_upstream_client_logs_in_to_the_proxy(password in any::<String>(), requested in any::<bool>()) {
        let mut server = ScramServer::new(ScramVerifier::from_plain(&password));
        let mut client = ScramSha256::new(password.as_bytes(), binding(requested));
        let server_first = server.client_first(client.message()).unwrap();
        client.update(&server_first).unwrap();
        let server_final = server.client_final(client.message()).unwrap();
        prop_assert!(client.finish(&server_final).is_ok());
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// A server-final-message changed in any one byte is refused: the client only logs in
    /// to a server that knows the verifier.
    #[test]
    fn a_changed_server_signature_is_refused(at in any::<usize>(), byte in any::<u8>()) {
        let mut server = ScramServer::new(ScramVerifier::from_password(b"pw", b"salt", 1));
        let mut client = ScramSha256::new(b"pw", ChannelBinding::unsupported());
        let server_first = server.client_first(client.message()).unwrap();
        client.update(&server_first).unwrap();
        let mut server_final = server.client_final(client.message()).unwrap();
        let at = at % server_final.len();
        prop_assume!(server_final[at] != byte);
        server_final[at] = byte;
        prop_assert!(client.finish(&server_final).is_err());
    }

    /// Arbitrary server messages fail with errors; a nonce that does not extend the
    /// client's, or an iteration count over the client's limit, is refused.
    #[test]
    fn arbitrary_server_messages_are_refused(first in server_first(), last in any::<Vec<u8>>()) {
        let mut client = ScramSha256::new(b"pw", ChannelBinding::unsupported());
        let nonce = client_nonce(&client);
        let first = first.replace("NONCE", &nonce);
        let updated = client.update(first.as_bytes());
        let fair = first.strip_prefix("r=").is_some_and(|r| r.starts_with(&nonce))
            && first.rsplit_once(",i=").and_then(|(_, i)| i.parse::<u32>().ok()).is_some_and(|i| i <= 100_000);
        if !fair {
            prop_assert!(updated.is_err(), "accepted {first:?}");
        }
        prop_assert!(client.finish(&last).is_err());
    }
}
