//! The auth file: which users may connect to the proxy and the secret each one proves,
//! in PgBouncer's `userlist.txt` format.
//!
//! One user per line, `"username" "secret"`; a `"` inside a field is written `""`; text
//! after the second field is ignored (as PgBouncer does); blank lines and lines starting
//! with `;` or `#` are skipped. The secret is a SCRAM verifier
//! (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`), an md5 hash (`md5` + 32 hex
//! digits, md5(password || username) as PostgreSQL stores it) or a plain-text password.
//!
//! A user's secret decides the challenge: md5 for an md5 hash, SCRAM otherwise. A user the
//! file does not list gets the challenge of a real user chosen by name (md5, or SCRAM with
//! that user's iteration count and salt length), the same on every attempt, and fails at
//! the end of it: what a client is asked does not tell whether the name exists.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::md5::Md5Check;
use super::scram::{ScramServer, ScramVerifier};

/// What the proxy knows about one user's password.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A SCRAM-SHA-256 verifier: clients must use SCRAM.
    Scram(ScramVerifier),
    /// md5(password || username): clients may use md5 only.
    Md5([u8; 16]),
    /// The password itself: clients may use SCRAM or md5.
    Plain(String),
}

impl Secret {
    /// Reads a secret the way PostgreSQL classifies `rolpassword`, but strictly: text that
    /// starts like a SCRAM verifier or looks like an md5 hash must be a valid one, so a
    /// truncated paste is reported instead of being taken as a plain-text password.
    pub fn parse(text: &str) -> Result<Secret, String> {
        if text.starts_with("SCRAM-SHA-256$") {
            return ScramVerifier::parse(text).map(Secret::Scram).map_err(|e| e.to_string());
        }
        if let Some(hex) = text.strip_prefix("md5").filter(|h| h.len() == 32) {
            return decode_hex(hex).map(Secret::Md5).ok_or_else(|| "md5 secret is not 32 hex digits".to_owned());
        }
        if text.is_empty() {
            return Err("empty secret; PostgreSQL does not accept empty passwords".to_owned());
        }
        Ok(Secret::Plain(text.to_owned()))
    }

    /// The SCRAM verifier clients are checked against, or `None` for an md5 hash, from which
    /// no SCRAM verifier can be derived. A plain password gets a fresh verifier (new salt)
    /// each call.
    pub fn scram_verifier(&self) -> Option<ScramVerifier> {
        match self {
            Secret::Scram(verifier) => Some(verifier.clone()),
            Secret::Md5(_) => None,
            Secret::Plain(password) => Some(ScramVerifier::from_plain(password)),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::Scram(_) => "Secret::Scram(..)",
            Secret::Md5(_) => "Secret::Md5(..)",
            Secret::Plain(_) => "Secret::Plain(..)",
        })
    }
}

/// Why an auth file could not be loaded. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read auth file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("auth file {}line {line}: {reason}", path.as_ref().map(|p| format!("{} ", p.display())).unwrap_or_default())]
    Syntax {
        /// Set when the text came from [`AuthFile::load`].
        path: Option<PathBuf>,
        /// 1-based.
        line: usize,
        reason: String,
    },
}

impl AuthFileError {
    /// The 1-based line of a syntax error.
    pub fn line(&self) -> Option<usize> {
        match self {
            AuthFileError::Syntax { line, .. } => Some(*line),
            AuthFileError::Read { .. } => None,
        }
    }
}

/// What a client logging in as a user is asked to prove.
#[derive(Debug)]
pub enum Challenge {
    /// AuthenticationMD5Password.
    Md5(Md5Check),
    /// AuthenticationSASL with SCRAM-SHA-256.
    Scram(ScramServer),
}

/// The kind of challenge a listed user gets, and for SCRAM the iteration count and salt
/// length a client sees: what an unknown user's mock challenge must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Md5,
    Scram { iterations: u32, salt_len: usize },
}

/// The users the proxy authenticates its clients against.
#[derive(Clone, Debug, Default)]
pub struct AuthFile {
    users: HashMap<String, Secret>,
    /// SCRAM verifiers of the users that have one, derived once at load.
    verifiers: HashMap<String, ScramVerifier>,
    /// One per listed user, in a fixed order: unknown users' challenges copy one of them.
    shapes: Vec<Shape>,
    /// Random per load (the file is loaded once per process): derives unknown users'
    /// challenges.
    mock_key: [u8; 32],
}

impl AuthFile {
    /// Parses the text of an auth file.
    pub fn parse(text: &str) -> Result<AuthFile, AuthFileError> {
        let mut users = HashMap::new();
        let mut first_seen = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let syntax = |reason: String| AuthFileError::Syntax { path: None, line, reason };
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
                continue;
            }
            let (user, rest) = quoted_field(trimmed).map_err(|e| syntax(format!("user name: {e}")))?;
            let (secret, _) =
                quoted_field(rest.trim_start()).map_err(|e| syntax(format!("secret of user {user:?}: {e}")))?;
            if user.is_empty() {
                return Err(syntax("empty user name".to_owned()));
            }
            let secret = Secret::parse(&secret).map_err(|e| syntax(format!("secret of user {user:?}: {e}")))?;
            if let Some(first) = first_seen.insert(user.clone(), line) {
                return Err(syntax(format!("user {user:?} is already listed on line {first}")));
            }
            users.insert(user, secret);
        }
        let verifiers: HashMap<String, ScramVerifier> =
            users.iter().filter_map(|(u, s)| Some((u.clone(), s.scram_verifier()?))).collect();
        let mut names: Vec<&String> = users.keys().collect();
        names.sort();
        let shapes = names
            .into_iter()
            .map(|name| match verifiers.get(name) {
                Some(v) => Shape::Scram { iterations: v.iterations, salt_len: v.salt.len() },
                None => Shape::Md5,
            })
            .collect();
        Ok(AuthFile { users, verifiers, shapes, mock_key: rand::random() })
    }

    /// The challenge for `user`: md5 for an md5 hash, SCRAM for a verifier or a plain
    /// password, and for a user the file does not list, a mock of a listed user's challenge
    /// (chosen by name, so the same on every attempt) that fails at its end.
    pub fn challenge(&self, user: &str) -> Challenge {
        match (self.users.get(user), self.verifiers.get(user)) {
            (Some(_), Some(verifier)) => Challenge::Scram(ScramServer::new(verifier.clone())),
            (Some(secret), None) => Challenge::Md5(Md5Check::new(secret.clone())),
            (None, _) => self.mock_challenge(user),
        }
    }

    fn mock_challenge(&self, user: &str) -> Challenge {
        let (iterations, salt_len) = ScramVerifier::DEFAULT_SHAPE;
        let default = Shape::Scram { iterations, salt_len };
        let pick = u64::from_be_bytes(self.mock_hmac(b"shape\0", user)[..8].try_into().expect("8 bytes"));
        let shape = match self.shapes.len() as u64 {
            0 => default,
            n => self.shapes[(pick % n) as usize],
        };
        match shape {
            Shape::Md5 => {
                let hash = self.mock_hmac(b"md5\0", user);
                Challenge::Md5(Md5Check::unknown_user(hash[..16].try_into().expect("16 bytes")))
            }
            Shape::Scram { iterations, salt_len } => Challenge::Scram(ScramServer::unknown_user(ScramVerifier::mock(
                user,
                &self.mock_key,
                iterations,
                salt_len,
            ))),
        }
    }

    fn mock_hmac(&self, label: &[u8], user: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.mock_key).expect("HMAC accepts keys of any length");
        mac.update(label);
        mac.update(user.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Reads and parses the auth file at `path`; errors name the file.
    pub fn load(path: &Path) -> Result<AuthFile, AuthFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| AuthFileError::Read { path: path.to_owned(), source })?;
        AuthFile::parse(&text).map_err(|e| match e {
            AuthFileError::Syntax { line, reason, .. } => {
                AuthFileError::Syntax { path: Some(path.to_owned()), line, reason }
            }
            other => other,
        })
    }

    /// The secret of `user`, if listed.
    pub fn get(&self, user: &str) -> Option<&Secret> {
        self.users.get(user)
    }

    /// How many users are listed.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user is listed: no client can log in.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Reads one `"..."` field (with `""` for a quote) from the start of `text`; returns its
/// value and the text after the closing quote.
fn quoted_field(text: &str) -> Result<(String, &str), &'static str> {
    let body = text.strip_prefix('"').ok_or("expected a double-quoted field, as in \"user\" \"secret\"")?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            value.push(c);
        } else if body[i + 1..].starts_with('"') {
            value.push('"');
            chars.next();
        } else {
            return Ok((value, &body[i + 1..]));
        }
    }
    Err("missing closing double quote")
}

fn decode_hex(hex: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}
