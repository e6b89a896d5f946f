//! PostgreSQL's legacy `md5` password method, checked on the server side.
//!
//! The server sends a 4-byte salt; the client answers
//! `"md5" + md5hex(md5hex(password + user) + salt)`, NUL-terminated.

use md5::{Digest, Md5};

use super::{constant_time_eq, AuthError, Secret};

/// One md5 challenge's check: against a user's secret, or, for a user the auth file does
/// not list, against a made-up hash, failing whatever the client answers.
#[derive(Clone)]
pub struct Md5Check {
    secret: Secret,
    /// Set for unknown users.
    doomed: bool,
}

impl Md5Check {
    /// Checks answers against `secret` ([`Secret::Md5`] or [`Secret::Plain`]).
    pub fn new(secret: Secret) -> Md5Check {
        Md5Check { secret, doomed: false }
    }

    /// A check for a user the proxy does not know: it does the same work as a real one and
    /// always ends in [`AuthError::PasswordMismatch`].
    pub fn unknown_user(hash: [u8; 16]) -> Md5Check {
        Md5Check { secret: Secret::Md5(hash), doomed: true }
    }

    /// Whether `response` (the PasswordMessage data) proves the password for `user`.
    pub fn verify(&self, user: &str, salt: [u8; 4], response: &[u8]) -> Result<(), AuthError> {
        let matched = md5_response_matches(&self.secret, user, salt, response);
        if matched && !self.doomed {
            Ok(())
        } else {
            Err(AuthError::PasswordMismatch)
        }
    }
}

impl std::fmt::Debug for Md5Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Md5Check").finish_non_exhaustive()
    }
}

/// Whether `response` (the `PasswordMessage` data) proves the password behind `secret`
/// for `user` under `salt`.
///
/// Works for [`Secret::Md5`] and [`Secret::Plain`]. For [`Secret::Scram`] it is always
/// false: the client's answer needs md5(password + user), which cannot be derived from a
/// SCRAM verifier, so such a user must authenticate with SCRAM.
pub fn md5_response_matches(secret: &Secret, user: &str, salt: [u8; 4], response: &[u8]) -> bool {
    let response = response.strip_suffix(&[0]).unwrap_or(response);
    let stored = match secret {
        Secret::Md5(hash) => *hash,
        Secret::Plain(password) => md5_of(&[password.as_bytes(), user.as_bytes()]),
        Secret::Scram(_) => return false,
    };
    let expected = md5_of(&[to_hex(&stored).as_bytes(), &salt]);
    let expected = format!("md5{}", to_hex(&expected));
    constant_time_eq(expected.as_bytes(), response)
}

fn md5_of(parts: &[&[u8]]) -> [u8; 16] {
    let mut md5 = Md5::new();
    for part in parts {
        md5.update(part);
    }
    md5.finalize().into()
}

/// Lower-case hex, as PostgreSQL writes md5 hashes.
fn to_hex(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
