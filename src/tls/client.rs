//! Client configurations as libpq's `sslmode` names them (`require`, `verify-ca`,
//! `verify-full`), and the server name a connection sends and checks.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::files::load_roots;
use super::verify::{AnyCertificate, ChainOnly};
use super::{provider, TlsConfigError};

/// Checks the server's certificate against `ca_file` and its name (`verify-full`).
pub fn verify_full(ca_file: &Path) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(load_roots(ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Checks that a CA of `ca_file` signed the server's certificate, whatever name it
/// carries (`verify-ca`).
pub fn verify_ca(ca_file: &Path) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = provider();
    let verifier = Arc::new(ChainOnly::new(load_roots(ca_file)?, provider.clone()));
    with_verifier(provider, verifier)
}

/// Encrypts but accepts any certificate (`require`, and `prefer` when the server agrees).
pub fn require() -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = provider();
    let verifier = Arc::new(AnyCertificate::new(provider.clone()));
    with_verifier(provider, verifier)
}

/// A client configuration that checks server certificates with `verifier`.
fn with_verifier(
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The server name to send and check for `host`, an IP address or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned()).map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}
