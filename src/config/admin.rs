//! The keys that secure the admin API and client connections: `admin_token_file` (the
//! bearer token), `admin_tls_cert` / `admin_tls_key` (HTTPS on the admin API) and
//! `tls_cert` / `tls_key` (TLS for application clients).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{err, ConfigError};

/// The admin token from `admin_token_file`; a non-loopback `admin_listen` needs one.
pub(super) fn admin_token(file: Option<&Path>, admin_listen: SocketAddr) -> Result<Option<String>, ConfigError> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("admin_token_file", format!("cannot read {}: {e}", path.display())))?;
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(err("admin_token_file", format!("{} is empty", path.display())));
            }
            Ok(Some(token))
        }
        None if !admin_listen.ip().is_loopback() => Err(err(
            "admin_listen",
            format!(
                "{admin_listen} is not a loopback address; the admin API may listen there only with a token \
                 (--admin-token-file FILE)"
            ),
        )),
        None => Ok(None),
    }
}

/// A certificate and key pair given by keys `cert_key` and `key_key`: both or neither.
pub(super) fn cert_and_key(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    (cert_key, key_key): (&str, &str),
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(err(key_key, format!("{cert_key} is set but {key_key} is not"))),
        (None, Some(_)) => Err(err(cert_key, format!("{key_key} is set but {cert_key} is not"))),
    }
}
