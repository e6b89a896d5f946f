//! Failures on the upstream side of a session, with the SQLSTATE its client receives.

use super::auth::AuthRefusal;
use crate::proxy::io::ReadError;
use crate::wire::backend::ErrorFields;

/// An upstream connection or session failure. Every variant names the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to upstream \"{upstream}\" at {addr}: {source}")]
    Connect { upstream: String, addr: String, source: std::io::Error },
    #[error("timed out connecting to upstream \"{upstream}\" at {addr}")]
    Timeout { upstream: String, addr: String },
    #[error("upstream \"{upstream}\" does not support TLS, but its sslmode requires it")]
    TlsRefused { upstream: String },
    #[error("TLS with upstream \"{upstream}\" failed: {source}")]
    Tls { upstream: String, source: std::io::Error },
    #[error(
        "upstream \"{upstream}\" asks for a password for user \"{user}\", and none is configured (secrets file or URL)"
    )]
    NoPassword { upstream: String, user: String },
    #[error("upstream \"{upstream}\" asks for an unsupported authentication method ({method})")]
    UnsupportedAuth { upstream: String, method: String },
    #[error(
        "upstream \"{upstream}\" asks for the password with method {method} over a connection without TLS; the sidecar \
         does not send it in the clear: use sslmode=require or verify-full in the upstream's URL, or \
         scram-sha-256 on the server, or, where the network is trusted, add allow_plaintext_passwords=true \
         to the URL"
    )]
    PlaintextPassword { upstream: String, method: &'static str },
    #[error("login to upstream \"{upstream}\" broken off: {reason}")]
    AuthRefused { upstream: String, reason: AuthRefusal },
    #[error("upstream \"{upstream}\": {} {}: {}", .fields.severity, .fields.code, .fields.message)]
    Server { upstream: String, fields: ErrorFields, raw: Vec<u8> },
    #[error("upstream \"{upstream}\" closed the connection unexpectedly")]
    Closed { upstream: String },
    #[error("lost the connection to upstream \"{upstream}\": {source}")]
    Io { upstream: String, source: std::io::Error },
    #[error("protocol violation by upstream \"{upstream}\": {source}")]
    Protocol { upstream: String, source: crate::wire::WireError },
}

impl UpstreamError {
    /// Maps a failed read from the upstream.
    pub fn from_read(upstream: &str, err: ReadError) -> Self {
        let upstream = upstream.to_owned();
        match err {
            ReadError::Closed => UpstreamError::Closed { upstream },
            ReadError::Io(source) => UpstreamError::Io { upstream, source },
            ReadError::Wire(source) => UpstreamError::Protocol { upstream, source },
        }
    }

    /// The SQLSTATE the client gets.
    pub fn sqlstate(&self) -> &str {
        match self {
            UpstreamError::Connect { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::TlsRefused { .. }
            | UpstreamError::Tls { .. } => "08001",
            UpstreamError::NoPassword { .. }
            | UpstreamError::UnsupportedAuth { .. }
            | UpstreamError::PlaintextPassword { .. } => "28000",
            UpstreamError::Server { fields, .. } => &fields.code,
            // The server failed to prove itself: a connection failure, not the client's
            // credentials (as libpq reports a bad SCRAM server signature).
            UpstreamError::AuthRefused { .. } | UpstreamError::Closed { .. } | UpstreamError::Io { .. } => "08006",
            UpstreamError::Protocol { .. } => "08P01",
        }
    }

    /// The `kind` label of `pgflip_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } | UpstreamError::Timeout { .. } => "connect",
            UpstreamError::TlsRefused { .. } | UpstreamError::Tls { .. } => "tls",
            UpstreamError::NoPassword { .. }
            | UpstreamError::UnsupportedAuth { .. }
            | UpstreamError::PlaintextPassword { .. }
            | UpstreamError::AuthRefused { .. } => "auth",
            UpstreamError::Server { .. } => "server",
            UpstreamError::Closed { .. } | UpstreamError::Io { .. } => "closed",
            UpstreamError::Protocol { .. } => "protocol",
        }
    }

    /// The server's own ErrorResponse, when the upstream sent one: forwarded verbatim.
    pub fn server_message(&self) -> Option<&[u8]> {
        match self {
            UpstreamError::Server { raw, .. } => Some(raw),
            _ => None,
        }
    }
}
