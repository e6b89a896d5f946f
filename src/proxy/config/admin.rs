//! The keys that secure the admin API and client connections: `admin_token_file` (the
//! bearer token), `admin_tls_cert` / `admin_tls_key` (HTTPS on the admin API),
//! `tls_cert` / `tls_key` (TLS for application clients), and the admin plane's limits:
//! `allowed_upstream_hosts`, `secrets_follow_readdress`, `max_pause_lease`,
//! `admin_show_queries`, `admin_header_timeout`, `admin_body_timeout`, `admin_max_connections`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{err, ConfigError};
use crate::proxy::upstream::{AllowedHosts, UpstreamUrl};

/// The admin token from `admin_token_file`; a non-loopback `admin_listen` needs one. On
/// loopback without one, the sidecar makes a token at start ([`crate::admin_token`]).
pub(super) fn admin_token(file: Option<&Path>, admin_listen: SocketAddr) -> Result<Option<String>, ConfigError> {
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("admin_token_file", format!("cannot read {}: {e}", path.display())))?;
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(err("admin_token_file", format!("{} is empty", path.display())));
            }
            Ok(Some(token))
        }
        None if !admin_listen.ip().is_loopback() => Err(err(
            "admin_listen",
            format!(
                "{admin_listen} is not a loopback address; the admin API may listen there only with a token \
                 (--admin-token-file FILE)"
            ),
        )),
        None => Ok(None),
    }
}

/// A certificate and key pair given by keys `cert_key` and `key_key`: both or neither.
pub(super) fn cert_and_key(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    (cert_key, key_key): (&str, &str),
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(err(key_key, format!("{cert_key} is set but {key_key} is not"))),
        (None, Some(_)) => Err(err(cert_key, format!("{key_key} is set but {cert_key} is not"))),
    }
}

/// The admin plane's flags (a part of [`super::ProxyArgs`]); the file keys have the same names.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct AdminArgs {
    /// Hosts `PUT /v1/upstreams/NAME` may point an upstream at: host names, IP addresses or
    /// CIDR networks, comma-separated or repeated [default: the configured upstreams' hosts].
    #[arg(long, value_name = "HOST|CIDR", value_delimiter = ',')]
    pub allowed_upstream_hosts: Option<Vec<String>>,
    /// Send the secrets file's passwords for an upstream also after the admin API gave it
    /// another address (by default they go only to the configured address).
    #[arg(long)]
    pub secrets_follow_readdress: bool,
    /// Longest pause lease and drain timeout an admin request may ask for [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_flag)]
    pub max_pause_lease: Option<Duration>,
    /// Show the text of sessions' queries in the admin API (pause blockers); by default only
    /// their first keyword and length.
    #[arg(long)]
    pub admin_show_queries: bool,
    /// How long an admin client may take to send a request's headers [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_flag)]
    pub admin_header_timeout: Option<Duration>,
    /// How long an admin client may take to send a request's body [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_flag)]
    pub admin_body_timeout: Option<Duration>,
    /// Admin connections served in full at once; beyond them, new connections are answered
    /// only on /healthz and /readyz [default: 64].
    #[arg(long, value_name = "N")]
    pub admin_max_connections: Option<usize>,
}

/// The admin plane's keys: as the file gives them, or merged with the flags over them.
#[derive(Debug, Default)]
pub(super) struct AdminKeys {
    pub allowed_upstream_hosts: Option<Vec<String>>,
    pub secrets_follow_readdress: Option<bool>,
    pub max_pause_lease: Option<Duration>,
    pub admin_show_queries: Option<bool>,
    pub admin_header_timeout: Option<Duration>,
    pub admin_body_timeout: Option<Duration>,
    pub admin_max_connections: Option<usize>,
}

impl AdminKeys {
    /// The flags in `args` over the file's keys.
    pub fn under(self, args: &AdminArgs) -> AdminKeys {
        let flag = |set: bool| set.then_some(true);
        AdminKeys {
            allowed_upstream_hosts: args.allowed_upstream_hosts.clone().or(self.allowed_upstream_hosts),
            secrets_follow_readdress: flag(args.secrets_follow_readdress).or(self.secrets_follow_readdress),
            max_pause_lease: args.max_pause_lease.or(self.max_pause_lease),
            admin_show_queries: flag(args.admin_show_queries).or(self.admin_show_queries),
            admin_header_timeout: args.admin_header_timeout.or(self.admin_header_timeout),
            admin_body_timeout: args.admin_body_timeout.or(self.admin_body_timeout),
            admin_max_connections: args.admin_max_connections.or(self.admin_max_connections),
        }
    }
}

/// The admin plane's limits and policies.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Hosts the admin API may point upstreams at.
    pub allowed_upstream_hosts: AllowedHosts,
    pub secrets_follow_readdress: bool,
    pub max_pause_lease: Duration,
    pub show_queries: bool,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

/// Default of `max_pause_lease`: long enough for a cutover's write pause (the controller
/// asks for `max_write_pause` + `drain_timeout` + 10 s, 75 s by default), short enough
/// that a stray call cannot freeze the application for long.
pub const DEFAULT_MAX_PAUSE_LEASE: Duration = Duration::from_secs(300);
const DEFAULT_ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;

impl AdminConfig {
    /// Checks the merged keys; the configured `upstreams` give the default allowed hosts.
    pub(super) fn validate(keys: AdminKeys, upstreams: &[(String, UpstreamUrl)]) -> Result<AdminConfig, ConfigError> {
        let allowed_upstream_hosts = match keys.allowed_upstream_hosts {
            Some(entries) => AllowedHosts::parse(&entries).map_err(|e| err("allowed_upstream_hosts", e))?,
            None => AllowedHosts::of_hosts(upstreams.iter().map(|(_, url)| url.host.as_str())),
        };
        let positive = |key: &str, value: Option<Duration>, default: Duration| match value {
            Some(value) if value.is_zero() => Err(err(key, "must be longer than 0")),
            Some(value) => super::at_most_a_day(key, value),
            None => Ok(default),
        };
        if keys.admin_max_connections == Some(0) {
            return Err(err("admin_max_connections", "must be at least 1"));
        }
        Ok(AdminConfig {
            allowed_upstream_hosts,
            secrets_follow_readdress: keys.secrets_follow_readdress == Some(true),
            max_pause_lease: positive("max_pause_lease", keys.max_pause_lease, DEFAULT_MAX_PAUSE_LEASE)?,
            show_queries: keys.admin_show_queries == Some(true),
            header_timeout: positive("admin_header_timeout", keys.admin_header_timeout, DEFAULT_ADMIN_TIMEOUT)?,
            body_timeout: positive("admin_body_timeout", keys.admin_body_timeout, DEFAULT_ADMIN_TIMEOUT)?,
            max_connections: keys.admin_max_connections.unwrap_or(DEFAULT_ADMIN_MAX_CONNECTIONS),
        })
    }
}
