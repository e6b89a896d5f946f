//! Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL runs it, without channel
//! binding, and the stored verifier it checks proofs against.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{constant_time_eq, AuthError};

/// The SASL mechanism name to offer in `AuthenticationSASL`.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Iteration count PostgreSQL uses by default (`scram_iterations`).
const DEFAULT_ITERATIONS: u32 = 4096;
/// Salt length PostgreSQL uses for new verifiers.
const DEFAULT_SALT_LEN: usize = 16;
/// Random bytes in the server's half of the nonce (PostgreSQL: `SCRAM_RAW_NONCE_LEN`).
const SERVER_NONCE_LEN: usize = 18;

/// What PostgreSQL stores in `pg_authid.rolpassword` for a SCRAM-SHA-256 password:
/// enough to check a client's proof, not enough to log in as the client.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    /// PBKDF2 rounds the client must run.
    pub iterations: u32,
    /// Salt sent to the client in server-first.
    pub salt: Vec<u8>,
    /// SHA-256(ClientKey): checks the client's proof.
    pub stored_key: [u8; 32],
    /// Signs the server-final message, proving to the client that we know the verifier.
    pub server_key: [u8; 32],
}

impl ScramVerifier {
    /// Parses `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>`.
    ///
    /// Errors say which part is wrong and never contain the text.
    pub fn parse(text: &str) -> Result<ScramVerifier, AuthError> {
        let bad = AuthError::InvalidVerifier;
        let rest = text.strip_prefix("SCRAM-SHA-256$").ok_or(bad("does not start with SCRAM-SHA-256$"))?;
        let (params, keys) = rest.split_once('$').ok_or(bad("missing `$` before the keys"))?;
        let (iterations, salt) = params.split_once(':').ok_or(bad("missing `:` between iterations and salt"))?;
        let (stored_key, server_key) =
            keys.split_once(':').ok_or(bad("missing `:` between StoredKey and ServerKey"))?;
        let iterations: u32 = iterations.parse().map_err(|_| bad("iteration count is not a number"))?;
        if iterations == 0 {
            return Err(bad("iteration count is zero"));
        }
        let salt = STANDARD.decode(salt).map_err(|_| bad("salt is not base64"))?;
        if salt.is_empty() {
            return Err(bad("salt is empty"));
        }
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key: decode_key(stored_key).ok_or(bad("StoredKey is not 32 bytes of base64"))?,
            server_key: decode_key(server_key).ok_or(bad("ServerKey is not 32 bytes of base64"))?,
        })
    }

    /// Derives the verifier of `password` with the given salt and iteration count.
    ///
    /// The bytes are used as given, without SASLprep: right for ASCII passwords and for text
    /// already in SASLprep form. [`ScramVerifier::from_plain`] normalises like PostgreSQL does.
    pub fn from_password(password: &[u8], salt: &[u8], iterations: u32) -> ScramVerifier {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac_sha256(&salted, &[b"Server Key"]),
        }
    }

    /// Derives a fresh verifier (random 16-byte salt, 4096 iterations) for a plain-text
    /// password, applying SASLprep the way PostgreSQL and its clients do.
    pub fn from_plain(password: &str) -> ScramVerifier {
        if password.is_ascii() {
            // SASLprep leaves ASCII unchanged (or rejects it, and then the raw bytes are used).
            let salt: [u8; DEFAULT_SALT_LEN] = rand::random();
            return ScramVerifier::from_password(password.as_bytes(), &salt, DEFAULT_ITERATIONS);
        }
        let text = postgres_protocol::password::scram_sha_256(password.as_bytes());
        ScramVerifier::parse(&text).expect("postgres_protocol builds well-formed verifiers")
    }

    /// A fake verifier for a user the proxy does not know, so the exchange runs to its end
    /// and fails there, as PostgreSQL does: answering early would tell a prober which user
    /// names exist. The salt is the same for a user for the life of the auth file (a changing
    /// salt would give the game away too) and unpredictable from outside it; the iteration
    /// count and salt length are those of a real verifier, given by the caller.
    /// `key` is the auth file's random mock key.
    pub fn mock(user: &str, key: &[u8; 32], iterations: u32, salt_len: usize) -> ScramVerifier {
        let user = user.as_bytes();
        let salt: Vec<u8> = (0u32..)
            .flat_map(|block| hmac_sha256(key, &[b"salt\0", &block.to_be_bytes(), user]))
            .take(salt_len.max(1))
            .collect();
        ScramVerifier {
            iterations,
            salt,
            stored_key: hmac_sha256(key, &[b"stored\0", user]),
            server_key: hmac_sha256(key, &[b"server\0", user]),
        }
    }

    /// The iteration count and salt length of a verifier made by [`ScramVerifier::from_plain`]
    /// (PostgreSQL's defaults).
    pub const DEFAULT_SHAPE: (u32, usize) = (DEFAULT_ITERATIONS, DEFAULT_SALT_LEN);
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

/// Where a [`ScramServer`] is in the exchange.
enum State {
    AwaitClientFirst,
    AwaitClientFinal {
        /// The gs2 header the client sent: `n,,` or `y,,`.
        gs2_header: &'static str,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

/// One SCRAM-SHA-256 exchange with one client: `client_first`, then `client_final`.
///
/// The user name comes from the startup packet; like PostgreSQL, the `n=` attribute in the
/// SCRAM message is ignored.
pub struct ScramServer {
    verifier: ScramVerifier,
    /// Set for unknown users: the exchange must fail whatever the client proves.
    doomed: bool,
    state: State,
}

impl ScramServer {
    /// Starts an exchange that checks the client's proof against `verifier`.
    pub fn new(verifier: ScramVerifier) -> ScramServer {
        ScramServer { verifier, doomed: false, state: State::AwaitClientFirst }
    }

    /// Starts an exchange for a user the proxy does not know: it runs like a real one with
    /// `mock` (see [`ScramVerifier::mock`]) and always ends in [`AuthError::PasswordMismatch`].
    pub fn unknown_user(mock: ScramVerifier) -> ScramServer {
        ScramServer { doomed: true, ..ScramServer::new(mock) }
    }

    /// Takes the client-first-message (the `SASLInitialResponse` data) and returns the
    /// server-first-message to send in `AuthenticationSASLContinue`.
    pub fn client_first(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::AwaitClientFirst = std::mem::replace(&mut self.state, State::Done) else {
            return Err(AuthError::OutOfOrder("client-first-message sent twice"));
        };
        let message =
            std::str::from_utf8(message).map_err(|_| AuthError::Malformed("client-first-message is not UTF-8"))?;
        let (flag, rest) = message.split_once(',').ok_or(AuthError::Malformed("missing gs2 header"))?;
        let gs2_header = match flag {
            "n" => "n,,",
            "y" => "y,,",
            _ if flag.starts_with("p=") => return Err(AuthError::ChannelBindingUnsupported),
            _ => return Err(AuthError::Malformed("unknown channel-binding flag")),
        };
        let (authzid, bare) =
            rest.split_once(',').ok_or(AuthError::Malformed("missing authorization identity field"))?;
        if !authzid.is_empty() {
            return Err(AuthError::Unsupported("authorization identity (a=)"));
        }
        let mut attrs = bare.split(',');
        match attrs.next() {
            Some(a) if a.starts_with("m=") => return Err(AuthError::Unsupported("extension m=")),
            Some(a) if a.starts_with("n=") => {}
            _ => return Err(AuthError::Malformed("expected n= in client-first-message")),
        }
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(AuthError::Malformed("expected r= in client-first-message"))?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(AuthError::Malformed("client nonce is not printable ASCII"));
        }
        // Any further attributes are optional extensions; PostgreSQL ignores them too.
        let server_nonce: [u8; SERVER_NONCE_LEN] = rand::random();
        let nonce = format!("{client_nonce}{}", STANDARD.encode(server_nonce));
        let server_first =
            format!("r={nonce},s={},i={}", STANDARD.encode(&self.verifier.salt), self.verifier.iterations);
        let reply = server_first.clone().into_bytes();
        self.state = State::AwaitClientFinal { gs2_header, client_first_bare: bare.to_owned(), server_first, nonce };
        Ok(reply)
    }

    /// Takes the client-final-message (the `SASLResponse` data), checks it, and returns the
    /// server-final-message (`v=...`) to send in `AuthenticationSASLFinal`.
    ///
    /// A wrong password (or an unknown user) gives [`AuthError::PasswordMismatch`].
    pub fn client_final(&mut self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::AwaitClientFinal { gs2_header, client_first_bare, server_first, nonce } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(AuthError::OutOfOrder("client-final-message before client-first"));
        };
        let message =
            std::str::from_utf8(message).map_err(|_| AuthError::Malformed("client-final-message is not UTF-8"))?;
        let (without_proof, proof) =
            message.rsplit_once(",p=").ok_or(AuthError::Malformed("expected p= at the end of client-final-message"))?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(AuthError::Malformed("expected c= in client-final-message"))?;
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(AuthError::Malformed("expected r= in client-final-message"))?;
        // Without channel binding the echo is just the gs2 header: `biws` or `eSws`.
        if cbind != STANDARD.encode(gs2_header) {
            return Err(AuthError::ChannelBindingMismatch);
        }
        if client_nonce != nonce {
            return Err(AuthError::NonceMismatch);
        }
        let proof: [u8; 32] = STANDARD
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(AuthError::Malformed("proof is not 32 bytes of base64"))?;

        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac_sha256(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let client_key: Vec<u8> = proof.iter().zip(client_signature).map(|(p, s)| p ^ s).collect();
        let proved = constant_time_eq(&Sha256::digest(&client_key), &self.verifier.stored_key);
        if !proved || self.doomed {
            return Err(AuthError::PasswordMismatch);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::AwaitClientFirst => "AwaitClientFirst",
            State::AwaitClientFinal { .. } => "AwaitClientFinal",
            State::Done => "Done",
        };
        f.debug_struct("ScramServer").field("state", &state).finish_non_exhaustive()
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `Hi()` of RFC 5802: PBKDF2 with HMAC-SHA-256 and one output block.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut prev = hmac_sha256(password, &[salt, &[0, 0, 0, 1]]);
    let mut result = prev;
    for _ in 1..iterations {
        prev = hmac_sha256(password, &[&prev]);
        result.iter_mut().zip(prev).for_each(|(r, p)| *r ^= p);
    }
    result
}
