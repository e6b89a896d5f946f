//! The `--admin-url` of `pgflip ctl` and the plan's sidecars: only `http://HOST:PORT[/]` or
//! `https://HOST:PORT[/]`, since the admin API is on a fixed listener and every route path
//! is absolute.

use std::fmt;
use std::str::FromStr;

use super::error::UrlError;

/// Plain HTTP, or HTTPS with the sidecar's certificate checked against a CA file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Where the sidecar's admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUrl {
    pub scheme: Scheme,
    /// A name or an IP address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
}

impl AdminUrl {
    /// `http://HOST:PORT`.
    pub fn http(host: impl Into<String>, port: u16) -> AdminUrl {
        AdminUrl { scheme: Scheme::Http, host: host.into(), port }
    }

    /// `host:port` as it goes into the `Host` header, IPv6 in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for AdminUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}", self.authority())
    }
}

impl FromStr for AdminUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            Some((scheme, _)) => return Err(UrlError::Scheme(scheme.to_owned())),
            None => return Err(UrlError::NoScheme),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(UrlError::Path);
        }
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or(UrlError::Ipv6Brackets)?;
                (host, after.strip_prefix(':').ok_or(UrlError::NoPort)?)
            }
            None => match authority.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => return Err(UrlError::Ipv6Brackets),
                Some((host, port)) => (host, port),
                None => return Err(UrlError::NoPort),
            },
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let port = match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ if port.is_empty() => return Err(UrlError::NoPort),
            _ => return Err(UrlError::BadPort(port.to_owned())),
        };
        Ok(AdminUrl { scheme, host: host.to_owned(), port })
    }
}
