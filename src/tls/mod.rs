//! TLS set-up shared by the sidecar and the controller, all on rustls with the `ring`
//! provider: loading CA, certificate and key files; client configurations for libpq's
//! `require`, `verify-ca` and `verify-full`; server names; PostgreSQL's SSLRequest
//! negotiation; and the plain-or-TLS stream either side gets.
//!
//! - [`files`]: PEM files in, rustls types out.
//! - [`client`]: client configurations and server names.
//! - [`verify`]: the certificate verifiers of `require` and `verify-ca`.
//! - [`negotiate`]: SSLRequest, the server's answer, the handshake.
//! - [`stream`]: [`MaybeTls`], a TCP stream with or without TLS.

pub mod client;
pub mod files;
pub mod negotiate;
pub mod stream;
pub mod verify;

use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};

pub use client::{require, server_name, verify_ca, verify_full};
pub use files::server;
pub use negotiate::{request_tls, NegotiateError, Negotiated};
pub use stream::{MaybeTls, ServerStream};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read certificates from {path}: {reason}")]
    Certs { path: String, reason: String },
    #[error("cannot read a private key from {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("{path} holds no certificate")]
    NoCerts { path: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The one crypto provider every configuration uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}
