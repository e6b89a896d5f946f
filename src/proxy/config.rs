//! The sidecar's configuration: flags, or a TOML file with the same keys, validated into
//! a [`ProxyConfig`]. Every error names the key at fault.
//!
//! Flags override the file. Relative paths in the file are relative to the file.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration::Written;
use crate::proxy::auth::AuthFile;
use crate::proxy::upstream::{Secrets, UpstreamUrl};

pub use admin::{AdminArgs, AdminConfig, DEFAULT_MAX_PAUSE_LEASE};
use file_error::toml_error;
pub use file_target::FileTarget;
pub use limits::{ClientLimits, LimitArgs};
pub use standby::StandbyConfig;
pub use unix::UnixListenConfig;

/// `pgflip proxy` flags.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ProxyArgs {
    /// TOML file with the same keys as these flags (listen, admin_listen, upstream.NAME, ...).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address for application clients [default: 127.0.0.1:6432].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the admin HTTP API [default: 127.0.0.1:9187].
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// A named upstream, NAME=postgres://USER[:PASSWORD]@HOST:PORT[/DB][?sslmode=...&sslrootcert=FILE]. Repeatable.
    #[arg(long = "upstream", value_name = "NAME=URL")]
    pub upstream: Vec<String>,
    /// The upstream sessions go to (optional when only one is given).
    #[arg(long, value_name = "NAME")]
    pub active: Option<String>,
    /// File holding the bearer token of the admin API; required for a non-loopback admin_listen.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Users and verifiers clients are checked against ("user" "secret" lines). Without it: trust, loopback only.
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// TOML passwords per upstream and user: [blue] app = "...".
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
    /// PEM certificate chain offered to clients that ask for TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate chain: the admin API speaks HTTPS with it.
    #[arg(long, value_name = "FILE", requires = "admin_tls_key")]
    pub admin_tls_cert: Option<PathBuf>,
    /// PEM private key for --admin-tls-cert.
    #[arg(long, value_name = "FILE", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
    /// How long sessions get to finish after SIGTERM before they are closed with 57P01:
    /// seconds, or a number with a unit (500ms, 5s, 2m) [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_flag)]
    pub shutdown_grace: Option<Duration>,
    /// How long connecting and logging in to an upstream may take [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_flag)]
    pub connect_timeout: Option<Duration>,
    /// Largest protocol message accepted, in bytes [default: 1073741824].
    #[arg(long, value_name = "BYTES")]
    pub max_message_size: Option<usize>,
    /// Threads serving sessions, each with its own event loop [default: one per core].
    #[arg(long, value_name = "N")]
    pub worker_threads: Option<usize>,
    /// A custom setting (myapp.tenant) every session carries when it moves, besides those
    /// it is seen to SET. Repeatable.
    #[arg(long = "track-setting", value_name = "NAME")]
    pub track_setting: Vec<String>,
    /// Also listen on a Unix-domain socket in this directory: DIR/.s.PGSQL.PORT, PORT being
    /// the --listen port, as PostgreSQL names it (libpq: host=DIR port=PORT).
    #[arg(long, value_name = "DIR")]
    pub listen_unix: Option<PathBuf>,
    /// Permissions of the Unix-domain socket, in octal [default: 0777].
    #[arg(long, value_name = "MODE")]
    pub unix_socket_mode: Option<String>,
    /// Address of the standby listener: read-only sessions on the upstream that is not active.
    #[arg(long, value_name = "ADDR")]
    pub listen_standby: Option<String>,
    /// While the standby cannot serve: "active" serves standby sessions from the active
    /// upstream, "refuse" refuses new ones [default: active].
    #[arg(long, value_name = "POLICY")]
    pub standby_fallback: Option<String>,
    /// Replication lag beyond which standby sessions are served from the active upstream
    /// (seconds, or 500ms, 30s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_flag)]
    pub max_standby_lag: Option<Duration>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// The file form of [`ProxyArgs`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyFile {
    listen: Option<String>,
    admin_listen: Option<String>,
    #[serde(default)]
    upstream: BTreeMap<String, String>,
    active: Option<String>,
    admin_token_file: Option<PathBuf>,
    auth_file: Option<PathBuf>,
    secrets_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    admin_tls_cert: Option<PathBuf>,
    admin_tls_key: Option<PathBuf>,
    shutdown_grace: Option<Written>,
    connect_timeout: Option<Written>,
    max_message_size: Option<usize>,
    worker_threads: Option<usize>,
    #[serde(default)]
    track_setting: Vec<String>,
    listen_unix: Option<PathBuf>,
    unix_socket_mode: Option<String>,
    listen_standby: Option<String>,
    standby_fallback: Option<String>,
    max_standby_lag: Option<Written>,
    client_login_timeout: Option<Written>,
    max_clients_logging_in: Option<usize>,
    max_client_connections: Option<usize>,
    max_parked_bytes: Option<usize>,
    allowed_upstream_hosts: Option<Vec<String>>,
    secrets_follow_readdress: Option<bool>,
    max_pause_lease: Option<Written>,
    admin_show_queries: Option<bool>,
    admin_header_timeout: Option<Written>,
    admin_body_timeout: Option<Written>,
    admin_max_connections: Option<usize>,
    /// Generation of `active`; a reload that carries a higher one switches to it.
    generation: Option<u64>,
}

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), message: message.into() }
}

/// A validated sidecar configuration.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    /// The Unix-domain socket, when configured.
    pub listen_unix: Option<UnixListenConfig>,
    pub admin_listen: SocketAddr,
    /// Named upstreams in the order given.
    pub upstreams: Vec<(String, UpstreamUrl)>,
    pub active: String,
    pub admin_token: Option<String>,
    pub auth: Option<AuthFile>,
    pub secrets: Secrets,
    /// Certificate chain and key files for client TLS.
    pub client_tls: Option<(PathBuf, PathBuf)>,
    /// Certificate chain and key files for HTTPS on the admin API.
    pub admin_tls: Option<(PathBuf, PathBuf)>,
    pub shutdown_grace: Duration,
    pub connect_timeout: Duration,
    pub max_message_size: usize,
    pub worker_threads: Option<usize>,
    /// Custom settings every session's state capture reads.
    pub track_settings: Vec<String>,
    /// Generation of the active upstream at start (file key `generation`, default 1).
    pub generation: u64,
    /// The config file, watched for a new durable target.
    pub config_path: Option<PathBuf>,
    /// The standby listener, when configured.
    pub standby: Option<StandbyConfig>,
    /// Limits on clients.
    pub client_limits: ClientLimits,
    /// The admin plane's limits and policies.
    pub admin: AdminConfig,
}

impl ProxyConfig {
    /// Reads the file named by `--config` (if any), applies the flags over it, validates.
    pub fn load(args: &ProxyArgs) -> Result<ProxyConfig, ConfigError> {
        let (file, base) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
                let file: ProxyFile = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
                (file, path.parent().map(Path::to_path_buf))
            }
            None => (ProxyFile::default(), None),
        };
        let rel = |p: Option<PathBuf>| p.map(|p| base.as_ref().map_or(p.clone(), |b| b.join(&p)));
        let mut upstream_urls: BTreeMap<String, String> = file.upstream;
        let mut order: Vec<String> = upstream_urls.keys().cloned().collect();
        for spec in &args.upstream {
            let (name, url) =
                spec.split_once('=').ok_or_else(|| err("upstream", format!("{spec:?} is not NAME=URL")))?;
            if !order.iter().any(|n| n == name) {
                order.push(name.to_owned());
            }
            upstream_urls.insert(name.to_owned(), url.to_owned());
        }
        Self::validate(Merged {
            listen: args.listen.clone().or(file.listen),
            admin_listen: args.admin_listen.clone().or(file.admin_listen),
            upstreams: order.into_iter().map(|n| (upstream_urls[&n].clone(), n)).map(|(u, n)| (n, u)).collect(),
            active: args.active.clone().or(file.active),
            admin_token_file: args.admin_token_file.clone().or(rel(file.admin_token_file)),
            auth_file: args.auth_file.clone().or(rel(file.auth_file)),
            secrets_file: args.secrets_file.clone().or(rel(file.secrets_file)),
            tls_cert: args.tls_cert.clone().or(rel(file.tls_cert)),
            tls_key: args.tls_key.clone().or(rel(file.tls_key)),
            admin_tls_cert: args.admin_tls_cert.clone().or(rel(file.admin_tls_cert)),
            admin_tls_key: args.admin_tls_key.clone().or(rel(file.admin_tls_key)),
            shutdown_grace: args.shutdown_grace.or(file.shutdown_grace.map(|w| w.0)),
            connect_timeout: args.connect_timeout.or(file.connect_timeout.map(|w| w.0)),
            max_message_size: args.max_message_size.or(file.max_message_size),
            worker_threads: args.worker_threads.or(file.worker_threads),
            track_settings: file.track_setting.into_iter().chain(args.track_setting.iter().cloned()).collect(),
            generation: file.generation,
            config_path: args.config.clone(),
            listen_unix: args.listen_unix.clone().or(rel(file.listen_unix)),
            unix_socket_mode: args.unix_socket_mode.clone().or(file.unix_socket_mode),
            listen_standby: args.listen_standby.clone().or(file.listen_standby),
            standby_fallback: args.standby_fallback.clone().or(file.standby_fallback),
            max_standby_lag: args.max_standby_lag.or(file.max_standby_lag.map(|w| w.0)),
            limits: LimitArgs {
                client_login_timeout: file.client_login_timeout.map(|w| w.0),
                max_clients_logging_in: file.max_clients_logging_in,
                max_client_connections: file.max_client_connections,
                max_parked_bytes: file.max_parked_bytes,
            }
            .under(&args.limits),
            admin: admin::AdminKeys {
                allowed_upstream_hosts: file.allowed_upstream_hosts,
                secrets_follow_readdress: file.secrets_follow_readdress,
                max_pause_lease: file.max_pause_lease.map(|w| w.0),
                admin_show_queries: file.admin_show_queries,
                admin_header_timeout: file.admin_header_timeout.map(|w| w.0),
                admin_body_timeout: file.admin_body_timeout.map(|w| w.0),
                admin_max_connections: file.admin_max_connections,
            }
            .under(&args.admin),
        })
    }

    fn validate(m: Merged) -> Result<ProxyConfig, ConfigError> {
        let listen = socket_addr("listen", m.listen.as_deref().unwrap_or("127.0.0.1:6432"))?;
        let admin_listen = socket_addr("admin_listen", m.admin_listen.as_deref().unwrap_or("127.0.0.1:9187"))?;
        let standby = standby::standby_config(&m, listen, admin_listen)?;
        let listen_unix = unix::unix_config(&m, listen)?;
        let client_limits = ClientLimits::validate(&m.limits)?;
        if m.upstreams.is_empty() {
            return Err(err("upstream", "no upstream given; add --upstream NAME=postgres://USER@HOST:PORT/DB"));
        }
        let mut upstreams = Vec::new();
        for (name, url) in m.upstreams {
            crate::proxy::upstream::check_name(&name).map_err(|e| err("upstream", e))?;
            let parsed = UpstreamUrl::parse(&url).map_err(|e| err(format!("upstream.{name}"), format!("URL {e}")))?;
            upstreams.push((name, parsed));
        }
        let active = match m.active {
            Some(active) => active,
            None if upstreams.len() == 1 => upstreams[0].0.clone(),
            None => return Err(err("active", "several upstreams are given: say which one is active")),
        };
        if !upstreams.iter().any(|(n, _)| *n == active) {
            let known: Vec<&str> = upstreams.iter().map(|(n, _)| n.as_str()).collect();
            return Err(err(
                "active",
                format!("{active:?} is not a configured upstream (known: {})", known.join(", ")),
            ));
        }
        let admin_token = admin::admin_token(m.admin_token_file.as_deref(), admin_listen)?;
        let admin = AdminConfig::validate(m.admin, &upstreams)?;
        let auth = match &m.auth_file {
            Some(path) => Some(AuthFile::load(path).map_err(|e| err("auth_file", e.to_string()))?),
            None => None,
        };
        let secrets = match &m.secrets_file {
            Some(path) => Secrets::load(path).map_err(|e| err("secrets_file", e.to_string()))?,
            None => Secrets::default(),
        };
        let client_tls = admin::cert_and_key(m.tls_cert, m.tls_key, ("tls_cert", "tls_key"))?;
        let admin_tls = admin::cert_and_key(m.admin_tls_cert, m.admin_tls_key, ("admin_tls_cert", "admin_tls_key"))?;
        let max_message_size = m.max_message_size.unwrap_or(crate::wire::DEFAULT_MAX_MESSAGE);
        if !(1024..=crate::wire::DEFAULT_MAX_MESSAGE).contains(&max_message_size) {
            return Err(err("max_message_size", "must be between 1024 and 1073741824 bytes"));
        }
        for name in &m.track_settings {
            if !crate::proxy::capture::is_custom_setting_name(name) {
                return Err(err("track_setting", format!("{name:?} is not a custom setting name like myapp.tenant")));
            }
        }
        if m.generation == Some(0) {
            return Err(err("generation", "must be at least 1"));
        }
        if m.worker_threads == Some(0) {
            return Err(err("worker_threads", "must be at least 1"));
        }
        Ok(ProxyConfig {
            listen,
            listen_unix,
            admin_listen,
            upstreams,
            active,
            admin_token,
            auth,
            secrets,
            client_tls,
            admin_tls,
            shutdown_grace: at_most_a_day("shutdown_grace", m.shutdown_grace.unwrap_or(Duration::from_secs(30)))?,
            connect_timeout: at_most_a_day("connect_timeout", m.connect_timeout.unwrap_or(Duration::from_secs(10)))?,
            max_message_size,
            worker_threads: m.worker_threads,
            track_settings: m.track_settings,
            generation: m.generation.unwrap_or(1),
            config_path: m.config_path,
            standby,
            client_limits,
            admin,
        })
    }
}

/// Flags and file merged, not yet validated.
struct Merged {
    listen: Option<String>,
    admin_listen: Option<String>,
    upstreams: Vec<(String, String)>,
    active: Option<String>,
    admin_token_file: Option<PathBuf>,
    auth_file: Option<PathBuf>,
    secrets_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    admin_tls_cert: Option<PathBuf>,
    admin_tls_key: Option<PathBuf>,
    shutdown_grace: Option<Duration>,
    connect_timeout: Option<Duration>,
    max_message_size: Option<usize>,
    worker_threads: Option<usize>,
    track_settings: Vec<String>,
    generation: Option<u64>,
    config_path: Option<PathBuf>,
    listen_unix: Option<PathBuf>,
    unix_socket_mode: Option<String>,
    listen_standby: Option<String>,
    standby_fallback: Option<String>,
    max_standby_lag: Option<Duration>,
    limits: LimitArgs,
    admin: admin::AdminKeys,
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| err(key, format!("{value:?} is not HOST:PORT")))
}

/// The longest a duration key of the sidecar may be.
const A_DAY: Duration = Duration::from_secs(86_400);

fn at_most_a_day(key: &str, value: Duration) -> Result<Duration, ConfigError> {
    if value > A_DAY {
        return Err(err(key, format!("{} is longer than a day (24h)", crate::duration::display(value))));
    }
    Ok(value)
}

mod admin;
mod file_error;
mod file_target;
mod limits;
mod standby;
#[cfg(test)]
mod tests;
mod unix;
