//! The sidecar's half of an upstream's authentication exchange, as an explicit state
//! machine: it answers each Authentication request and accepts AuthenticationOk only when
//! the exchange it began has ended as it must.
//!
//! - SCRAM-SHA-256 (RFC 5802, RFC 7677): the server must prove it knows the password with
//!   its signature in SASLFinal (`v=HMAC(ServerKey, AuthMessage)`) before AuthenticationOk.
//!   A server (or anything in between) that skips SASLFinal, signs wrongly or ends with
//!   `e=` is refused. Its first message is checked before any work: its nonce extends ours,
//!   the salt is base64, the iteration count is 1 to [`MAX_SCRAM_ITERATIONS`].
//! - Cleartext and md5 hand the password (or a hash as good as it to an eavesdropper who
//!   guesses offline) to whoever asks: only over TLS, unless the upstream's URL says
//!   `allow_plaintext_passwords=true`. Upstreams are reached over TCP only, loopback
//!   included, as `[security] allow_plaintext_passwords` has it for the controller.
//! - Trust: AuthenticationOk straight away, as libpq accepts it.

use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::connect::Login;
use super::{Upstream, UpstreamError};
use crate::wire::backend::AuthRequest;
use crate::wire::frontend;

/// The largest SCRAM iteration count a server may ask for. The count drives a PBKDF2 loop
/// the sidecar runs before the server has proven anything, so a hostile server could ask
/// for billions; 100 000 is 24 times PostgreSQL's default (4096) and the bound rust-postgres
/// and pgjdbc apply.
pub const MAX_SCRAM_ITERATIONS: u32 = 100_000;

/// Why the sidecar broke off an upstream's authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRefusal {
    #[error(
        "the server sent AuthenticationOk without proving that it knows the password \
         (no SCRAM server signature): it may not be the server the URL names"
    )]
    OkWithoutSignature,
    #[error(
        "the server's SCRAM signature is wrong: it does not know the password, or something \
         between the sidecar and the server changed the exchange"
    )]
    BadSignature,
    #[error("the server ended the SCRAM exchange with error {0:?}")]
    ServerError(String),
    #[error("the server's SCRAM nonce does not extend the sidecar's")]
    Nonce,
    #[error("the server's SCRAM iteration count {0:?} is not from 1 to {MAX_SCRAM_ITERATIONS}")]
    Iterations(String),
    #[error("the server's SCRAM salt is empty or not base64")]
    Salt,
    #[error("malformed SCRAM message from the server: {0}")]
    Malformed(&'static str),
    #[error("{0}")]
    OutOfOrder(&'static str),
}

/// Where the exchange is.
enum State {
    /// Nothing asked yet.
    Start,
    /// A cleartext or md5 password went out; the server's verdict is next.
    PasswordSent,
    /// SASLInitialResponse went out; the server-first-message is next.
    ScramStarted { client: Box<ScramSha256>, nonce: String },
    /// The client-final-message (our proof) went out; the server's signature is next.
    ScramProofSent { client: Box<ScramSha256> },
    /// The server's signature verified; AuthenticationOk is next.
    ScramVerified,
    /// AuthenticationOk came.
    Done,
    /// An answer failed: the connection is given up.
    Failed,
}

/// One login's authentication exchange with one upstream.
pub struct Authenticator<'a> {
    upstream: &'a Upstream,
    login: &'a Login,
    /// True when the connection is TLS.
    encrypted: bool,
    state: State,
}

impl<'a> Authenticator<'a> {
    pub fn new(upstream: &'a Upstream, login: &'a Login, encrypted: bool) -> Self {
        Authenticator { upstream, login, encrypted, state: State::Start }
    }

    /// True once AuthenticationOk has been accepted.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Takes one Authentication request and appends the answer, if it needs one, to `out`.
    pub fn answer(&mut self, request: AuthRequest<'_>, out: &mut Vec<u8>) -> Result<(), UpstreamError> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        self.state = match (state, request) {
            (State::Start | State::PasswordSent | State::ScramVerified, AuthRequest::Ok) => State::Done,
            (State::ScramStarted { .. } | State::ScramProofSent { .. }, AuthRequest::Ok) => {
                return Err(self.refuse(AuthRefusal::OkWithoutSignature))
            }
            (State::Start, AuthRequest::Cleartext) => {
                self.check_plaintext_allowed("cleartext")?;
                frontend::password_message(out, self.password()?.as_bytes());
                State::PasswordSent
            }
            (State::Start, AuthRequest::Md5 { salt }) => {
                self.check_plaintext_allowed("md5")?;
                let hash = md5_hash(self.login.user.as_bytes(), self.password()?.as_bytes(), salt);
                frontend::password_message(out, hash.as_bytes());
                State::PasswordSent
            }
            (State::Start, AuthRequest::Sasl { mechanisms }) => {
                if !mechanisms.contains(&SCRAM_SHA_256) {
                    return Err(self.unsupported(mechanisms.join(", ")));
                }
                let client = ScramSha256::new(self.password()?.as_bytes(), ChannelBinding::unsupported());
                let nonce = client_nonce(client.message()).to_owned();
                frontend::sasl_initial_response(out, SCRAM_SHA_256, client.message());
                State::ScramStarted { client: Box::new(client), nonce }
            }
            (State::ScramStarted { mut client, nonce }, AuthRequest::SaslContinue(data)) => {
                check_server_first(data, &nonce).map_err(|r| self.refuse(r))?;
                client.update(data).map_err(|_| self.refuse(AuthRefusal::Malformed("server-first-message")))?;
                frontend::sasl_response(out, client.message());
                State::ScramProofSent { client }
            }
            (State::ScramProofSent { mut client }, AuthRequest::SaslFinal(data)) => {
                check_server_final(data).map_err(|r| self.refuse(r))?;
                client.finish(data).map_err(|_| self.refuse(AuthRefusal::BadSignature))?;
                State::ScramVerified
            }
            (_, AuthRequest::Unsupported(code)) => return Err(self.unsupported(format!("code {code}"))),
            (state, request) => return Err(self.refuse(AuthRefusal::OutOfOrder(out_of_order(&state, &request)))),
        };
        Ok(())
    }

    fn password(&self) -> Result<&'a str, UpstreamError> {
        self.login.password.as_deref().ok_or_else(|| UpstreamError::NoPassword {
            upstream: self.upstream.name.clone(),
            user: self.login.user.clone(),
        })
    }

    fn check_plaintext_allowed(&self, method: &'static str) -> Result<(), UpstreamError> {
        if self.encrypted || self.upstream.url.allow_plaintext_passwords {
            return Ok(());
        }
        Err(UpstreamError::PlaintextPassword { upstream: self.upstream.name.clone(), method })
    }

    fn refuse(&self, reason: AuthRefusal) -> UpstreamError {
        UpstreamError::AuthRefused { upstream: self.upstream.name.clone(), reason }
    }

    fn unsupported(&self, method: String) -> UpstreamError {
        UpstreamError::UnsupportedAuth { upstream: self.upstream.name.clone(), method }
    }
}

/// The `r=` value of our client-first-message (`n,,n=,r=NONCE`).
fn client_nonce(client_first: &[u8]) -> &str {
    let text = std::str::from_utf8(client_first).unwrap_or_default();
    text.split_once(",r=").map_or("", |(_, nonce)| nonce)
}

/// Checks a server-first-message (`r=NONCE,s=SALT,i=COUNT`) before any PBKDF2 work.
fn check_server_first(data: &[u8], client_nonce: &str) -> Result<(), AuthRefusal> {
    let text = std::str::from_utf8(data).map_err(|_| AuthRefusal::Malformed("server-first-message is not UTF-8"))?;
    let mut attrs = text.split(',');
    let mut next = |key: &'static str, what: &'static str| {
        attrs.next().and_then(|a| a.strip_prefix(key)).ok_or(AuthRefusal::Malformed(what))
    };
    let nonce = next("r=", "expected r= first in server-first-message")?;
    let salt = next("s=", "expected s= after r= in server-first-message")?;
    let iterations = next("i=", "expected i= after s= in server-first-message")?;
    if client_nonce.is_empty() || !nonce.starts_with(client_nonce) || nonce.len() == client_nonce.len() {
        return Err(AuthRefusal::Nonce);
    }
    if STANDARD.decode(salt).map_or(true, |salt| salt.is_empty()) {
        return Err(AuthRefusal::Salt);
    }
    match iterations.parse::<u32>() {
        Ok(count) if (1..=MAX_SCRAM_ITERATIONS).contains(&count) => Ok(()),
        _ => Err(AuthRefusal::Iterations(iterations.chars().take(20).collect())),
    }
}

/// Checks the form of a server-final-message: `e=` ends the exchange with the server's
/// error, `v=` must hold 32 bytes of base64 (checked against our key by the caller).
fn check_server_final(data: &[u8]) -> Result<(), AuthRefusal> {
    let text = std::str::from_utf8(data).map_err(|_| AuthRefusal::Malformed("server-final-message is not UTF-8"))?;
    if let Some(error) = text.strip_prefix("e=") {
        return Err(AuthRefusal::ServerError(error.chars().take(100).collect()));
    }
    let signature = text.strip_prefix("v=").ok_or(AuthRefusal::Malformed("expected v= in server-final-message"))?;
    match STANDARD.decode(signature) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(AuthRefusal::BadSignature),
    }
}

/// What an out-of-order request is, for the error.
fn out_of_order(state: &State, request: &AuthRequest<'_>) -> &'static str {
    match (state, request) {
        (State::Done | State::Failed, _) => "the server asked to authenticate again after AuthenticationOk",
        (_, AuthRequest::SaslContinue(_)) => "the server sent SASLContinue outside a SCRAM exchange's first step",
        (_, AuthRequest::SaslFinal(_)) => "the server sent SASLFinal outside a SCRAM exchange's last step",
        (State::Start, _) => "unexpected authentication request",
        _ => "the server asked for a second authentication method in the middle of the first",
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
