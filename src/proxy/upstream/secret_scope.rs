//! Where the secrets file's passwords may go: to the address (host and port) each upstream
//! was configured with, at start or by a config reload, and not to an address the admin
//! API gave it since, unless `secrets_follow_readdress` says they follow. An upstream the
//! admin API added under a new name has no configured address, so no secret either.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{Upstream, UpstreamUrl};

/// The configured address of every upstream, and whether secrets follow a re-addressing.
#[derive(Debug, Default)]
pub struct SecretScope {
    configured: RwLock<HashMap<String, (String, u16)>>,
    follow_readdress: bool,
}

impl SecretScope {
    /// The scope of the configured `upstreams`.
    pub fn new<'a>(upstreams: impl IntoIterator<Item = (&'a str, &'a UpstreamUrl)>, follow_readdress: bool) -> Self {
        let scope = SecretScope { configured: RwLock::default(), follow_readdress };
        for (name, url) in upstreams {
            scope.configure(name, url);
        }
        scope
    }

    /// Records `url` as the configured address of `name` (a config reload).
    pub fn configure(&self, name: &str, url: &UpstreamUrl) {
        let mut configured = self.configured.write().unwrap_or_else(|e| e.into_inner());
        configured.insert(name.to_owned(), (url.host.to_ascii_lowercase(), url.port));
    }

    /// True when the secrets file's passwords for `upstream` may be sent to where it points now.
    pub fn allows(&self, upstream: &Upstream) -> bool {
        self.follow_readdress || self.is_configured_address(&upstream.name, &upstream.url)
    }

    /// True when `url` is the configured address of `name`.
    pub fn is_configured_address(&self, name: &str, url: &UpstreamUrl) -> bool {
        let configured = self.configured.read().unwrap_or_else(|e| e.into_inner());
        configured.get(name).is_some_and(|(host, port)| host.eq_ignore_ascii_case(&url.host) && *port == url.port)
    }

    /// Whether secrets follow an upstream the admin API re-addressed.
    pub fn follows_readdress(&self) -> bool {
        self.follow_readdress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(name: &str, url: &str) -> Upstream {
        Upstream::new(name, UpstreamUrl::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn secrets_stay_with_the_configured_address() {
        let blue = UpstreamUrl::parse("postgres://app@Blue.internal:5432/db").unwrap();
        let scope = SecretScope::new([("blue", &blue)], false);
        assert!(scope.allows(&upstream("blue", "postgres://other@blue.internal:5432/x")));
        assert!(!scope.allows(&upstream("blue", "postgres://app@blue.internal:5433/db")));
        assert!(!scope.allows(&upstream("blue", "postgres://app@evil.internal:5432/db")));
        assert!(!scope.allows(&upstream("green", "postgres://app@blue.internal:5432/db")), "a name added later");
        scope.configure("green", &UpstreamUrl::parse("postgres://g:6000").unwrap());
        assert!(scope.allows(&upstream("green", "postgres://g:6000")));

        let following = SecretScope::new([("blue", &blue)], true);
        assert!(following.allows(&upstream("blue", "postgres://app@evil.internal:5432/db")));
    }
}
