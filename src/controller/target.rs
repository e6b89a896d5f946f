//! Where one controller connection goes and how: a plan URL's parsed connection, its TLS,
//! and the rule that a password never crosses the network in the clear unless the plan
//! says `[security] allow_plaintext_passwords = true`.
//!
//! The rule holds for every TCP connection (loopback included) that carries a password
//! and is not certain to be TLS: `sslmode=disable` and `allow` are refused, and `prefer`
//! insists on TLS, as `require` does. Unix-domain sockets never leave the machine and are
//! exempt, as libpq never uses TLS on them.

use std::path::Path;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

use super::plan::{EndpointTls, SslMode};

/// A controller connection to blue or green (or another of their databases).
#[derive(Debug, Clone)]
pub struct Target {
    /// The connection, without its TLS parameters (see `tls`).
    pub config: Config,
    pub tls: EndpointTls,
    /// `[security] allow_plaintext_passwords`.
    pub allow_plaintext_passwords: bool,
    /// The plan key the URL comes from, for errors: `[blue] url`.
    pub key: &'static str,
}

/// How a connection uses TLS, once the plan's rule is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP (`disable`, and every mode on a Unix-domain socket but the TLS ones).
    Plain,
    /// Plain TCP, then TLS if the server refuses the plain connection (`allow`).
    PlainThenTls,
    /// TLS if the server offers it (`prefer`).
    TlsIfOffered,
    /// TLS or nothing (`require`, `verify-ca`, `verify-full`, and `prefer` with a password).
    Tls,
}

/// A password would cross the network without TLS, and the plan does not allow it.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{key} has a password and sslmode={mode}, so it could go over TCP in the clear: use sslmode=require, \
     verify-ca or verify-full (with sslrootcert), or, where the network is trusted, set \
     [security] allow_plaintext_passwords = true"
)]
pub struct PlaintextPassword {
    pub key: &'static str,
    pub mode: SslMode,
}

impl Target {
    /// The transport to use, or the refusal of a password in the clear.
    pub fn transport(&self) -> Result<Transport, PlaintextPassword> {
        let mode = self.tls.mode;
        if !self.over_tcp() {
            return Ok(if mode.requires_tls() { Transport::Tls } else { Transport::Plain });
        }
        let guarded = self.config.get_password().is_some() && !self.allow_plaintext_passwords;
        Ok(match mode {
            SslMode::Disable | SslMode::Allow if guarded => return Err(PlaintextPassword { key: self.key, mode }),
            SslMode::Disable => Transport::Plain,
            SslMode::Allow => Transport::PlainThenTls,
            SslMode::Prefer if guarded => Transport::Tls,
            SslMode::Prefer => Transport::TlsIfOffered,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Transport::Tls,
        })
    }

    /// The `sslmode` a client program (pg_dump, psql) gets, so that it connects as the
    /// controller does: `require` where the rule made `prefer` insist on TLS.
    pub fn program_sslmode(&self) -> SslMode {
        match (self.tls.mode, self.transport()) {
            (SslMode::Prefer, Ok(Transport::Tls)) => SslMode::Require,
            (mode, _) => mode,
        }
    }

    /// The CA file, resolved against the plan's directory.
    pub fn root_cert(&self) -> Option<&Path> {
        self.tls.root_cert.as_deref()
    }

    /// How the connection is made, for error messages: `sslmode=verify-full, sslrootcert=/ca.pem`.
    pub fn describe_tls(&self) -> String {
        let mut text = format!("sslmode={}", self.tls.mode);
        if let Some(ca) = self.root_cert() {
            text.push_str(&format!(", sslrootcert={}", ca.display()));
        }
        if self.tls.mode == SslMode::Prefer && self.transport().ok() == Some(Transport::Tls) {
            text.push_str(", TLS required: the URL has a password");
        }
        text
    }

    /// True when some host is reached over TCP (not only Unix-domain sockets).
    fn over_tcp(&self) -> bool {
        let hosts = self.config.get_hosts();
        hosts.is_empty() || hosts.iter().any(|host| matches!(host, Host::Tcp(_)))
    }
}
