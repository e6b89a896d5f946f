//! The secrets file: per-upstream passwords for users, as TOML.
//!
//! ```toml
//! [blue]
//! app = "s3cret"
//! [green]
//! app = "other"
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Passwords per upstream and user. Never printed.
#[derive(Default, Clone)]
pub struct Secrets {
    by_upstream: HashMap<String, HashMap<String, String>>,
}

/// Why the secrets file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secrets file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("secrets file {path}: {reason} (expected tables of user = \"password\" per upstream, e.g. [blue] app = \"...\")")]
    Syntax { path: PathBuf, reason: String },
}

impl Secrets {
    /// Loads and parses a secrets file.
    pub fn load(path: &Path) -> Result<Secrets, SecretsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretsError::Read { path: path.into(), source })?;
        Secrets::parse(&text).map_err(|reason| SecretsError::Syntax { path: path.into(), reason })
    }

    fn parse(text: &str) -> Result<Secrets, String> {
        // Parse errors from toml quote the offending line, which may hold a password.
        let by_upstream: HashMap<String, HashMap<String, String>> = toml::from_str(text).map_err(|e| {
            let span = e.span().map(|s| text[..s.start].lines().count().max(1));
            match span {
                Some(line) => format!("line {line}: not a table of user = \"password\" strings"),
                None => "not valid TOML".to_owned(),
            }
        })?;
        Ok(Secrets { by_upstream })
    }

    /// The password for `user` on `upstream`, if the file names it.
    pub fn password(&self, upstream: &str, user: &str) -> Option<&str> {
        self.by_upstream.get(upstream)?.get(user).map(String::as_str)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: HashMap<&str, usize> = self.by_upstream.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
        f.debug_struct("Secrets").field("users_per_upstream", &counts).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_per_upstream() {
        let s = Secrets::parse("[blue]\napp = \"b\"\n[green]\napp = \"g\"\n").unwrap();
        assert_eq!(s.password("blue", "app"), Some("b"));
        assert_eq!(s.password("green", "app"), Some("g"));
        assert_eq!(s.password("green", "other"), None);
        assert!(!format!("{s:?}").contains("\"b\""));
    }

    #[test]
    fn syntax_errors_do_not_echo_secrets() {
        let err = Secrets::parse("[blue]\napp = 42 # hunter2\n").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
}
