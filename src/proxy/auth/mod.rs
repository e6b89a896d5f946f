//! Authentication of the proxy's own clients: here the proxy plays the PostgreSQL server.
//!
//! Pure logic, no I/O: the session code moves the bytes, this module decides.
//!
//! - [`file`]: [`AuthFile`], the users and secrets (PgBouncer `userlist.txt` format), and
//!   the [`Challenge`] each user name gets, known or not.
//! - [`scram`]: [`ScramServer`], the server side of SCRAM-SHA-256, and [`ScramVerifier`].
//! - [`md5`]: [`Md5Check`] and [`md5_response_matches`], PostgreSQL's legacy `md5` method.

pub mod file;
pub mod md5;
pub mod scram;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use file::{AuthFile, AuthFileError, Challenge, Secret};
pub use md5::{md5_response_matches, Md5Check};
pub use scram::{ScramServer, ScramVerifier, SCRAM_SHA_256};

/// Why a client's authentication exchange failed.
///
/// Only [`AuthError::PasswordMismatch`] means "wrong credentials"; every other variant is a
/// client speaking the protocol in a way the proxy does not accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The proof (SCRAM) did not match the stored secret, or the user is unknown.
    #[error("password authentication failed")]
    PasswordMismatch,
    /// The client asked for SCRAM channel binding (`p=`), which the proxy never offers.
    #[error(
        "client requires SCRAM channel binding, but the proxy does not offer it; \
         connect with channel_binding=prefer or disable"
    )]
    ChannelBindingUnsupported,
    /// The channel-binding echo in client-final does not match the client-first header.
    #[error("SCRAM channel binding check failed")]
    ChannelBindingMismatch,
    /// The nonce in client-final is not the one the server sent.
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    /// A SCRAM feature PostgreSQL does not support either (authzid, mandatory extensions).
    #[error("unsupported SCRAM feature: {0}")]
    Unsupported(&'static str),
    /// The client's SCRAM message could not be parsed.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// A message arrived in a state that does not expect it.
    #[error("SCRAM message out of order: {0}")]
    OutOfOrder(&'static str),
    /// A stored SCRAM verifier is not in `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`
    /// form.
    #[error("invalid SCRAM verifier: {0}")]
    InvalidVerifier(&'static str),
}

impl AuthError {
    /// The SQLSTATE to send the client in the ErrorResponse, as PostgreSQL would.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            // invalid_password
            AuthError::PasswordMismatch => "28P01",
            // invalid_authorization_specification: a configuration problem on our side.
            AuthError::InvalidVerifier(_) => "28000",
            // protocol_violation
            _ => "08P01",
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths, so an attacker
/// cannot learn how many leading bytes of a key or proof were right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
