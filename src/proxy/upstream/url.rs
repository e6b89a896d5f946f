//! The upstream URL: `postgres://USER[:PASSWORD]@HOST:PORT[/DB][?PARAM=VALUE&...]`, with
//! the parameters `sslmode`, `sslrootcert`, `connect_timeout` and `allow_plaintext_passwords`.

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
    pub connect_timeout: ConnectTimeout,
    /// `allow_plaintext_passwords=true`: the server may ask for a cleartext or md5 password
    /// over a connection without TLS (see [`super::auth`]).
    pub allow_plaintext_passwords: bool,
}

/// How long connecting and logging in to an upstream may take, as its URL says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectTimeout {
    /// No `connect_timeout` in the URL: the sidecar's `--connect-timeout`.
    #[default]
    Sidecar,
    /// `connect_timeout=0`: no bound, as libpq has it.
    Unbounded,
    /// `connect_timeout=N`, N seconds.
    After(Duration),
}

/// The largest `connect_timeout` a URL may give, in seconds: a day, as for the sidecar's own.
const MAX_CONNECT_TIMEOUT_SECS: u64 = 24 * 60 * 60;

impl ConnectTimeout {
    /// The bound on connecting and logging in: `None` for none.
    pub fn login_bound(self, sidecar: Duration) -> Option<Duration> {
        match self {
            ConnectTimeout::Sidecar => Some(sidecar),
            ConnectTimeout::Unbounded => None,
            ConnectTimeout::After(timeout) => Some(timeout),
        }
    }

    /// The bound on the sidecar's own short exchanges with the server (a cancel request,
    /// reading a fresh connection's settings): the URL's timeout, or the sidecar's when the
    /// URL gives none or waits forever, since no client waits on them by choice.
    pub fn work_bound(self, sidecar: Duration) -> Duration {
        match self {
            ConnectTimeout::After(timeout) => timeout,
            ConnectTimeout::Sidecar | ConnectTimeout::Unbounded => sidecar,
        }
    }

    fn parse(value: &str) -> Result<ConnectTimeout, UrlError> {
        let secs: u64 = value
            .parse()
            .ok()
            .filter(|&secs| secs <= MAX_CONNECT_TIMEOUT_SECS)
            .ok_or_else(|| UrlError::ConnectTimeout(value.to_owned()))?;
        Ok(match secs {
            0 => ConnectTimeout::Unbounded,
            secs => ConnectTimeout::After(Duration::from_secs(secs)),
        })
    }
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
    #[error("has unknown parameter {0:?} (known: sslmode, sslrootcert, connect_timeout, allow_plaintext_passwords)")]
    UnknownParam(String),
    #[error("has sslmode={0:?}; use disable, require or verify-full")]
    SslMode(String),
    #[error("has sslmode=verify-full without sslrootcert=FILE")]
    MissingRootCert,
    #[error(
        "has connect_timeout={0:?}; use whole seconds from 1 to 86400, or 0 to wait without a bound (as libpq does)"
    )]
    ConnectTimeout(String),
    #[error("has allow_plaintext_passwords={0:?}; use true or false")]
    AllowPlaintextPasswords(String),
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
            connect_timeout: ConnectTimeout::Sidecar,
            allow_plaintext_passwords: false,
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
                "connect_timeout" => parsed.connect_timeout = ConnectTimeout::parse(&value)?,
                "allow_plaintext_passwords" => {
                    parsed.allow_plaintext_passwords = match value.as_str() {
                        "true" | "on" | "yes" | "1" => true,
                        "false" | "off" | "no" | "0" => false,
                        _ => return Err(UrlError::AllowPlaintextPasswords(value)),
                    }
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
        match self.connect_timeout {
            ConnectTimeout::Sidecar => {}
            ConnectTimeout::Unbounded => write!(f, "&connect_timeout=0")?,
            ConnectTimeout::After(timeout) => write!(f, "&connect_timeout={}", timeout.as_secs())?,
        }
        if self.allow_plaintext_passwords {
            write!(f, "&allow_plaintext_passwords=true")?;
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

    #[test]
    fn connect_timeout_zero_waits_forever_as_libpq() {
        let timeout = |url: &str| UpstreamUrl::parse(url).map(|u| u.connect_timeout);
        let sidecar = Duration::from_secs(10);
        assert_eq!(timeout("postgres://h"), Ok(ConnectTimeout::Sidecar));
        assert_eq!(timeout("postgres://h?connect_timeout=0"), Ok(ConnectTimeout::Unbounded));
        assert_eq!(timeout("postgres://h?connect_timeout=7"), Ok(ConnectTimeout::After(Duration::from_secs(7))));
        assert_eq!(ConnectTimeout::Sidecar.login_bound(sidecar), Some(sidecar));
        assert_eq!(ConnectTimeout::Unbounded.login_bound(sidecar), None);
        assert_eq!(ConnectTimeout::After(Duration::from_secs(7)).login_bound(sidecar), Some(Duration::from_secs(7)));
        // The sidecar's own exchanges keep a bound.
        assert_eq!(ConnectTimeout::Unbounded.work_bound(sidecar), sidecar);
        assert_eq!(ConnectTimeout::After(Duration::from_secs(7)).work_bound(sidecar), Duration::from_secs(7));
        for bad in ["-1", "1.5", "ten", "", "86401", "99999999999999999999999"] {
            let err = timeout(&format!("postgres://h?connect_timeout={bad}")).unwrap_err();
            assert_eq!(err, UrlError::ConnectTimeout(bad.to_owned()));
            assert!(err.to_string().contains("connect_timeout"), "{err}");
        }
        let shown = UpstreamUrl::parse("postgres://h?connect_timeout=0").unwrap().to_string();
        assert!(shown.ends_with("&connect_timeout=0"), "{shown}");
    }

    #[test]
    fn allow_plaintext_passwords_is_a_boolean() {
        let allowed = |url: &str| UpstreamUrl::parse(url).map(|u| u.allow_plaintext_passwords);
        assert_eq!(allowed("postgres://h"), Ok(false));
        assert_eq!(allowed("postgres://h?allow_plaintext_passwords=true"), Ok(true));
        assert_eq!(allowed("postgres://h?allow_plaintext_passwords=false"), Ok(false));
        let err = allowed("postgres://h?allow_plaintext_passwords=maybe").unwrap_err();
        assert_eq!(err, UrlError::AllowPlaintextPasswords("maybe".into()));
        assert!(err.to_string().contains("allow_plaintext_passwords"), "{err}");
        let shown = UpstreamUrl::parse("postgres://h?allow_plaintext_passwords=1").unwrap().to_string();
        assert!(shown.ends_with("&allow_plaintext_passwords=true"), "{shown}");
    }
}
