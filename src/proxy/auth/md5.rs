//! PostgreSQL's legacy `md5` password method, checked on the server side.
//!
//! The server sends a 4-byte salt; the client answers
//! `"md5" + md5hex(md5hex(password + user) + salt)`, NUL-terminated.

use md5::{Digest, Md5};

use super::{constant_time_eq, Secret};

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
