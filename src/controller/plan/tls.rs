//! TLS of a plan URL: libpq's `sslmode` (all six) and `sslrootcert`, taken out of the URL
//! before tokio-postgres parses the rest (it knows only three modes and no CA file), and
//! the rustls configuration they ask for, built once when the plan is read.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;

/// libpq's `sslmode`, the default being `prefer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// Plain TCP; TLS when the server refuses plain connections.
    Allow,
    /// TLS when the server offers it, plain TCP otherwise; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS; the certificate is checked against `sslrootcert` when one is given (as libpq
    /// does), not otherwise.
    Require,
    /// TLS; the certificate must be signed by a CA of `sslrootcert`.
    VerifyCa,
    /// TLS; as `verify-ca`, and the certificate must be for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The mode from its libpq name.
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Its libpq name.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True when a connection in this mode never goes on without TLS.
    pub fn requires_tls(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS of one plan URL.
#[derive(Debug, Clone, Default)]
pub struct EndpointTls {
    pub mode: SslMode,
    /// `sslrootcert`, resolved against the plan file's directory.
    pub root_cert: Option<PathBuf>,
    /// `sslmode` and `sslrootcert` as the URL wrote them, for connection strings another
    /// server uses (a subscription's).
    pub written: Vec<(&'static str, String)>,
    /// The rustls configuration of a TLS connection in this mode.
    pub client: Option<Arc<ClientConfig>>,
}

impl EndpointTls {
    /// Reads the TLS parameters taken out of a URL; `base_dir` resolves a relative
    /// `sslrootcert`. The error is the problem, for the caller to name the key.
    pub fn new(params: TlsParams, base_dir: &Path) -> Result<EndpointTls, String> {
        let mut written = Vec::new();
        let mode = match &params.sslmode {
            Some(text) => {
                written.push(("sslmode", text.clone()));
                SslMode::parse(text).ok_or_else(|| {
                    format!("has sslmode={text:?}; use disable, allow, prefer, require, verify-ca or verify-full")
                })?
            }
            None => SslMode::Prefer,
        };
        let root_cert = params.sslrootcert.as_ref().map(|file| {
            written.push(("sslrootcert", file.clone()));
            base_dir.join(file)
        });
        let tls_err = |e: crate::tls::TlsConfigError| format!("sslrootcert: {e}");
        let client = match (mode, &root_cert) {
            (SslMode::Disable, _) => None,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(format!(
                    "has sslmode={mode} without sslrootcert=FILE (the CA that signs the server's certificate)"
                ))
            }
            (SslMode::VerifyFull, Some(ca)) => Some(crate::tls::verify_full(ca).map_err(tls_err)?),
            // libpq checks the chain under `require` too when a root certificate is given.
            (SslMode::VerifyCa | SslMode::Require, Some(ca)) => Some(crate::tls::verify_ca(ca).map_err(tls_err)?),
            (SslMode::Allow | SslMode::Prefer | SslMode::Require, _) => {
                Some(crate::tls::require().map_err(|e| e.to_string())?)
            }
        };
        Ok(EndpointTls { mode, root_cert, written, client })
    }
}

/// `sslmode` and `sslrootcert` as a URL gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
}

/// Splits `url` (a `postgres://` URL or a `key=value` connection string) into the rest,
/// for tokio-postgres, and its TLS parameters.
pub fn split(url: &str) -> Result<(String, TlsParams), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url)
    } else {
        split_key_values(url)
    }
}

fn split_url(url: &str) -> Result<(String, TlsParams), String> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_owned(), TlsParams::default())) };
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => params.sslmode = Some(percent_decode(value)?),
            "sslrootcert" => params.sslrootcert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, params))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("has an invalid percent-encoding")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "has an invalid percent-encoding")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "has a percent-encoding that is not UTF-8".to_owned())
}

/// libpq's `key = value` form: values may be single-quoted, with `\'` and `\\` escapes.
fn split_key_values(text: &str) -> Result<(String, TlsParams), String> {
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("is not a valid connection string: {key:?} has no value"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.extend(chars.next()),
                Some('\'') if quoted => break,
                Some(c) if !quoted && c.is_whitespace() => break,
                Some(c) => value.push(c),
                None if quoted => return Err("is not a valid connection string: a quote is not closed".into()),
                None => break,
            }
        }
        match key.as_str() {
            "sslmode" => params.sslmode = Some(value),
            "sslrootcert" => params.sslrootcert = Some(value),
            _ => kept.push(format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))),
        }
    }
    Ok((kept.join(" "), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_come_out_of_both_forms() {
        let (rest, params) =
            split("postgres://u:p@h:5432/db?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Fetc%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?connect_timeout=5");
        assert_eq!(params.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        let (rest, params) = split("host=h user='o\\'k' sslmode = verify-ca sslrootcert='/a b.pem'").unwrap();
        assert_eq!(rest, "host='h' user='o\\'k'");
        assert_eq!((params.sslmode.as_deref(), params.sslrootcert.as_deref()), (Some("verify-ca"), Some("/a b.pem")));
        assert!(split("host='h").is_err());
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let params = TlsParams { sslmode: Some("verify-full".into()), sslrootcert: None };
        let err = EndpointTls::new(params, Path::new("/")).unwrap_err();
        assert!(err.contains("without sslrootcert"), "{err}");
        let params = TlsParams { sslmode: Some("verify-none".into()), sslrootcert: None };
        assert!(EndpointTls::new(params, Path::new("/")).unwrap_err().contains("verify-none"));
        let missing = TlsParams { sslmode: Some("verify-ca".into()), sslrootcert: Some("nope.pem".into()) };
        let err = EndpointTls::new(missing, Path::new("/plans")).unwrap_err();
        assert!(err.contains("/plans/nope.pem"), "{err}");
        let tls = EndpointTls::new(TlsParams::default(), Path::new("/")).unwrap();
        assert_eq!((tls.mode, tls.client.is_some()), (SslMode::Prefer, true));
    }
}
