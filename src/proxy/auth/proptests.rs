//! Property tests of SCRAM-SHA-256 on both sides of the proxy.
//!
//! - [`server`]: [`ScramServer`] (clients logging in to the proxy) against arbitrary and
//!   nearly right messages, and a client written here from RFC 5802 that lets the test
//!   choose user names, nonces and the gs2 header.
//! - [`client`]: rust-postgres's `ScramSha256`, which the proxy runs to log in upstream,
//!   against [`ScramServer`] and against arbitrary server messages.

mod client;
mod server;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::ScramServer;

/// A SCRAM-SHA-256 client without channel binding, after RFC 5802 section 3.
#[derive(Debug)]
struct Client {
    /// `n,,` (no channel binding) or `y,,` (the client could bind but thinks the server can't).
    gs2: &'static str,
    user: String,
    nonce: String,
    password: Vec<u8>,
}

/// The client-final-message and the server signature that must come back for it.
struct Final {
    message: String,
    server_signature: [u8; 32],
}

impl Client {
    fn first(&self) -> String {
        format!("{}{}", self.gs2, self.bare())
    }

    fn bare(&self) -> String {
        // RFC 5802 `saslname`: `,` and `=` are escaped.
        let user = self.user.replace('=', "=3D").replace(',', "=2C");
        format!("n={user},r={}", self.nonce)
    }

    fn last(&self, server_first: &str) -> Final {
        let mut attrs = server_first.split(',');
        let mut next = |name: &str| attrs.next().and_then(|a| a.strip_prefix(name)).expect("server-first attribute");
        let (nonce, salt, iterations) = (next("r="), next("s="), next("i="));
        assert!(nonce.starts_with(&self.nonce), "the server's nonce extends the client's");
        let salt = STANDARD.decode(salt).expect("salt is base64");
        let salted = pbkdf2(&self.password, &salt, iterations.parse().expect("iteration count"));
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(self.gs2));
        let auth_message = format!("{},{server_first},{without_proof}", self.bare());
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        Final {
            message: format!("{without_proof},p={}", STANDARD.encode(proof)),
            server_signature: hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes()),
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one output block (RFC 5802 `Hi`).
fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()].concat());
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        out.iter_mut().zip(u).for_each(|(o, x)| *o ^= x);
    }
    out
}

/// Client nonces: printable ASCII without `,`.
const NONCE: &str = "[!-+\\--~]{1,32}";

/// Clients with any user name, nonce, gs2 header and password.
fn client() -> impl Strategy<Value = Client> {
    (prop_oneof![Just("n,,"), Just("y,,")], any::<String>(), NONCE, proptest::collection::vec(any::<u8>(), 0..32))
        .prop_map(|(gs2, user, nonce, password)| Client { gs2, user, nonce, password })
}

/// Verifier parameters: a salt and a small iteration count (the count only changes cost).
fn salt_and_iterations() -> impl Strategy<Value = (Vec<u8>, u32)> {
    (proptest::collection::vec(any::<u8>(), 1..24), 1u32..=16)
}

/// Runs `client` up to its client-final-message against `server`.
fn start(server: &mut ScramServer, client: &Client) -> Final {
    let server_first = server.client_first(client.first().as_bytes()).expect("a well-formed client-first");
    client.last(std::str::from_utf8(&server_first).expect("server-first is UTF-8"))
}
