//! The sidecar's own TLS servers: towards application clients (ALPN `postgresql`) and,
//! optionally, on the admin API (ALPN `http/1.1`). Client-side set-up, CA files and
//! verifiers live in [`crate::tls`], shared with the controller.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;

pub use crate::tls::TlsConfigError;

/// Server configuration for application clients, from PEM certificate chain and key files.
pub fn server(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsConfigError> {
    crate::tls::server(cert_file, key_file, &[b"postgresql"])
}

/// Server configuration for the admin API (HTTPS), from PEM certificate chain and key files.
pub fn admin_server(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsConfigError> {
    crate::tls::server(cert_file, key_file, &[b"http/1.1"])
}
