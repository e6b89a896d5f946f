//! The upstream URL: `postgres://USER[:PASSWORD]@HOST:PORT[/DB][?sslmode=...&sslrootcert=FILE]`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// TLS towards the upstream, as libpq's `sslmode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS, without checking the server's certificate.
    Require,
    /// TLS, with the certificate checked against the CA file and the host name.
    VerifyFull,
}

/// A parsed upstream URL. The password never appears in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
}

/// Why an upstream URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("must start with postgres:// or postgresql://")]
    Scheme,
    #[error("has no host")]
    NoHost,
    #[error("has an invalid port {0:?}")]
    Port(String),
    #[error("has an invalid percent-encoding")]
    Percent,
    #[error("has unknown parameter {0:?} (known: sslmode, sslrootcert, connect_timeout)")]
    UnknownParam(String),
    #[error("has sslmode={0:?}; use disable, require or verify-full")]
    SslMode(String),
    #[error("has sslmode=verify-full without sslrootcert=FILE")]
    MissingRootCert,
    #[error("has an invalid connect_timeout {0:?} (seconds)")]
    ConnectTimeout(String),
}

impl UpstreamUrl {
    /// Parses an upstream URL.
    ///
    /// ```
    /// use pgflip::proxy::upstream::{SslMode, UpstreamUrl};
    ///
    /// let url = UpstreamUrl::parse("postgres://app:s3cret@db.internal/ledger?sslmode=require").unwrap();
    /// assert_eq!((url.host.as_str(), url.port, url.sslmode), ("db.internal", 5432, SslMode::Require));
    /// assert_eq!(url.to_string(), "postgres://app:***@db.internal:5432/ledger?sslmode=require");
    /// ```
    pub fn parse(url: &str) -> Result<UpstreamUrl, UrlError> {
        let rest =
            url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")).ok_or(UrlError::Scheme)?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((name, pw)) => (non_empty(decode(name)?), Some(decode(pw)?)),
                None => (non_empty(decode(u)?), None),
            },
        };
        let (host, port) = split_host_port(hostport)?;
        let mut parsed = UpstreamUrl {
            host,
            port,
            user,
            password,
            database: non_empty(decode(path)?),
            sslmode: SslMode::Disable,
            sslrootcert: None,
            connect_timeout: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value)?;
            match key {
                "sslmode" => {
                    parsed.sslmode = match value.as_str() {
                        "disable" => SslMode::Disable,
                        "require" => SslMode::Require,
                        "verify-full" => SslMode::VerifyFull,
                        _ => return Err(UrlError::SslMode(value)),
                    }
                }
                "sslrootcert" => parsed.sslrootcert = Some(PathBuf::from(value)),
                "connect_timeout" => {
                    let secs: u64 = value.parse().map_err(|_| UrlError::ConnectTimeout(value.clone()))?;
                    parsed.connect_timeout = Some(Duration::from_secs(secs));
                }
                other => return Err(UrlError::UnknownParam(other.to_owned())),
            }
        }
        if parsed.sslmode == SslMode::VerifyFull && parsed.sslrootcert.is_none() {
            return Err(UrlError::MissingRootCert);
        }
        Ok(parsed)
    }

    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn split_host_port(hostport: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(UrlError::NoHost)?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let port = match port {
        None => 5432,
        Some(p) => p.parse().ok().filter(|&p: &u16| p != 0).ok_or_else(|| UrlError::Port(p.to_owned()))?,
    };
    Ok((host.to_owned(), port))
}

fn decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(UrlError::Percent)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::Percent)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Percent)
}

impl fmt::Debug for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for UpstreamUrl {
    /// The URL with the password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}{}@", if self.password.is_some() { ":***" } else { "" })?;
        }
        write!(f, "{}/{}", self.address(), self.database.as_deref().unwrap_or(""))?;
        let mode = match self.sslmode {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        };
        write!(f, "?sslmode={mode}")?;
        if let Some(ca) = &self.sslrootcert {
            write!(f, "&sslrootcert={}", ca.display())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url_parses() {
        let u =
            UpstreamUrl::parse("postgres://app:p%40ss@db.internal:6543/ledger?sslmode=verify-full&sslrootcert=/ca.pem")
                .unwrap();
        assert_eq!(u.host, "db.internal");
        assert_eq!(u.port, 6543);
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.database.as_deref(), Some("ledger"));
        assert_eq!(u.sslmode, SslMode::VerifyFull);
        assert!(!format!("{u}").contains("p@ss"));
    }

    #[test]
    fn minimal_and_ipv6_urls_parse() {
        let u = UpstreamUrl::parse("postgresql://[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.user.clone()), ("::1", 5432, None));
        assert_eq!(u.address(), "[::1]:5432");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert_eq!(UpstreamUrl::parse("mysql://x"), Err(UrlError::Scheme));
        assert_eq!(UpstreamUrl::parse("postgres://h:99999"), Err(UrlError::Port("99999".into())));
        assert_eq!(UpstreamUrl::parse("postgres://h?sslmode=prefer"), Err(UrlError::SslMode("prefer".into())));
        assert_eq!(UpstreamUrl::parse("postgres://h?sslmode=verify-full"), Err(UrlError::MissingRootCert));
        assert_eq!(UpstreamUrl::parse("postgres://h?foo=1"), Err(UrlError::UnknownParam("foo".into())));
        assert_eq!(UpstreamUrl::parse("postgres://u@:5432"), Err(UrlError::NoHost));
    }
}
