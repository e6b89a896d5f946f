//! PEM files in, rustls types out: certificate chains, CA bundles, private keys, and the
//! server configuration built from a certificate and its key.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{RootCertStore, ServerConfig};

use super::{provider, TlsConfigError};

/// Every certificate in the PEM file at `path`; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let err = |reason: String| TlsConfigError::Certs { path: path.display().to_string(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCerts { path: path.display().to_string() });
    }
    Ok(certs)
}

/// The trust anchors of the CA file at `ca_file` (libpq's `sslrootcert`).
pub fn load_roots(ca_file: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_file)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// The first private key in the PEM file at `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsConfigError::Key { path: path.display().to_string(), reason: e.to_string() })
}

/// A server configuration from PEM certificate chain and key files, offering `alpn`.
pub fn server(cert_file: &Path, key_file: &Path, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let certs = load_certs(cert_file)?;
    let key = load_key(key_file)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}
