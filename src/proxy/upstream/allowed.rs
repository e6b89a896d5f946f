//! The hosts `PUT /v1/upstreams/{name}` may point an upstream at (`allowed_upstream_hosts`):
//! host names, IP addresses and networks (CIDR). By default, the hosts of the configured
//! upstreams. Names are compared as written, never resolved.

use std::fmt;
use std::net::IpAddr;

/// One entry of `allowed_upstream_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// A host name, lower case, without a trailing dot.
    Name(String),
    /// An address and how many of its leading bits must match.
    Network { addr: IpAddr, prefix: u8 },
}

/// The hosts upstreams may be (re-)addressed to through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedHosts {
    rules: Vec<Rule>,
}

impl AllowedHosts {
    /// Parses entries such as `green.db.internal`, `10.0.0.7`, `10.0.0.0/8` or `fd00::/8`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedHosts, String> {
        let rules = entries.iter().map(|entry| Rule::parse(entry.as_ref())).collect::<Result<_, _>>()?;
        Ok(AllowedHosts { rules })
    }

    /// Exactly the hosts of `hosts` (the configured upstreams').
    pub fn of_hosts<'a>(hosts: impl IntoIterator<Item = &'a str>) -> AllowedHosts {
        let mut rules: Vec<Rule> = Vec::new();
        for host in hosts {
            let rule = Rule::exact(host);
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        AllowedHosts { rules }
    }

    /// True when an upstream may be pointed at `host` (as an upstream URL holds it:
    /// an IPv6 address without brackets).
    pub fn allows(&self, host: &str) -> bool {
        let name = normalize(host);
        let ip = name.parse::<IpAddr>().ok();
        self.rules.iter().any(|rule| match (rule, ip) {
            (Rule::Network { addr, prefix }, Some(ip)) => in_network(ip, *addr, *prefix),
            (Rule::Name(allowed), None) => *allowed == name,
            _ => false,
        })
    }
}

impl fmt::Display for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rules.is_empty() {
            return f.write_str("none");
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match rule {
                Rule::Name(name) => f.write_str(name)?,
                Rule::Network { addr, prefix } if *prefix == full_prefix(*addr) => write!(f, "{addr}")?,
                Rule::Network { addr, prefix } => write!(f, "{addr}/{prefix}")?,
            }
        }
        Ok(())
    }
}

impl Rule {
    fn parse(entry: &str) -> Result<Rule, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("an entry is empty".to_owned());
        }
        if let Some((addr, prefix)) = entry.split_once('/') {
            let addr: IpAddr = normalize(addr)
                .parse()
                .map_err(|_| format!("{entry:?}: {addr:?} before the / is not an IP address"))?;
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= full_prefix(addr))
                .ok_or_else(|| format!("{entry:?}: the prefix length must be 0 to {}", full_prefix(addr)))?;
            return Ok(Rule::Network { addr, prefix });
        }
        if entry.contains(|c: char| c.is_whitespace() || matches!(c, '@' | '?' | '#' | '\\')) {
            return Err(format!("{entry:?} is neither a host name, an IP address nor a CIDR network"));
        }
        Ok(Rule::exact(entry))
    }

    /// The rule that allows `host` and nothing else.
    fn exact(host: &str) -> Rule {
        let name = normalize(host);
        match name.parse::<IpAddr>() {
            Ok(addr) => Rule::Network { addr, prefix: full_prefix(addr) },
            Err(_) => Rule::Name(name),
        }
    }
}

/// Lower case, without IPv6 brackets or a trailing dot.
fn normalize(host: &str) -> String {
    let host = host.trim();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn full_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let mask = |bits: u32, prefix: u8| if prefix == 0 { 0 } else { u128::MAX << (bits - u32::from(prefix)) };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = mask(32, prefix) as u32;
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = mask(128, prefix);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_networks() {
        let allowed = AllowedHosts::parse(&["Green.DB.internal.", "10.1.0.0/16", "192.168.1.7", "fd00::/8"]).unwrap();
        for host in ["green.db.internal", "GREEN.db.internal", "10.1.255.3", "192.168.1.7", "fd12::1", "[fd00::5]"] {
            assert!(allowed.allows(host), "{host}");
        }
        for host in ["blue.db.internal", "10.2.0.1", "192.168.1.8", "fe80::1", "db.internal", "10.1.0.0.evil"] {
            assert!(!allowed.allows(host), "{host}");
        }
        assert_eq!(allowed.to_string(), "green.db.internal, 10.1.0.0/16, 192.168.1.7, fd00::/8");
    }

    #[test]
    fn a_name_never_matches_an_address_it_might_resolve_to() {
        let allowed = AllowedHosts::of_hosts(["localhost", "127.0.0.1", "127.0.0.1"]);
        assert_eq!(allowed.to_string(), "localhost, 127.0.0.1");
        assert!(allowed.allows("localhost") && allowed.allows("127.0.0.1"));
        assert!(!allowed.allows("127.0.0.2"));
        assert!(!allowed.allows("::1"));
    }

    #[test]
    fn bad_entries_are_refused() {
        for (entry, expect) in
            [("10.0.0.0/33", "prefix length"), ("nothere/8", "not an IP"), ("", "empty"), ("a b", "neither")]
        {
            let e = AllowedHosts::parse(&[entry]).unwrap_err();
            assert!(e.contains(expect), "{entry:?}: {e}");
        }
        assert!(AllowedHosts::parse(&["0.0.0.0/0"]).unwrap().allows("203.0.113.9"));
    }
}
