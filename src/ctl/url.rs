//! The `--admin-url` of `pgflip ctl`: only `http://HOST:PORT[/]`, since the admin API is
//! plain HTTP on a fixed listener and every route path is absolute.

use std::fmt;
use std::str::FromStr;

use super::error::UrlError;

/// Where the sidecar's admin API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUrl {
    /// A name or an IP address, IPv6 without brackets.
    pub host: String,
    pub port: u16,
}

impl AdminUrl {
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
        write!(f, "http://{}", self.authority())
    }
}

impl FromStr for AdminUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => return Err(UrlError::Https),
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
        Ok(AdminUrl { host: host.to_owned(), port })
    }
}
