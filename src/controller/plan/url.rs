//! Connection URLs rebuilt from a parsed configuration: for another database, without the
//! password (for client programs), or with it redacted (for logs).

use std::fmt::Write as _;
use std::time::Duration;

use tokio_postgres::config::{ChannelBinding, Host, LoadBalanceHosts, SslNegotiation, TargetSessionAttrs};
use tokio_postgres::Config;

/// How a rebuilt URL shows the password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Password {
    Shown,
    Redacted,
    Left,
}

/// Writes `config` as a libpq URL naming `database`, the password as `password_as` says,
/// with `tls` (`sslmode`, `sslrootcert`) after the other parameters.
pub(super) fn config_url(
    config: &Config,
    database: &str,
    password_as: Password,
    tls: &[(&'static str, String)],
) -> String {
    let mut url = String::from("postgres://");
    if let Some(user) = config.get_user() {
        url += &percent_encode(user.as_bytes());
    }
    let password = config.get_password().filter(|_| password_as != Password::Left);
    if let Some(password) = password {
        url.push(':');
        url += &if password_as == Password::Redacted { "***".to_owned() } else { percent_encode(password) };
    }
    if config.get_user().is_some() || password.is_some() {
        url.push('@');
    }
    let ports = config.get_ports();
    for (i, host) in config.get_hosts().iter().enumerate() {
        if i > 0 {
            url.push(',');
        }
        match host {
            Host::Tcp(name) if name.contains(':') => url += &format!("[{name}]"),
            Host::Tcp(name) => url += &percent_encode(name.as_bytes()),
            #[cfg(unix)]
            Host::Unix(dir) => url += &percent_encode(dir.as_os_str().as_encoded_bytes()),
        }
        // One port applies to every host.
        if let Some(port) = ports.get(i).or(ports.first()) {
            let _ = write!(url, ":{port}");
        }
    }
    url.push('/');
    url += &percent_encode(database.as_bytes());
    for (i, (key, value)) in url_params(config).into_iter().chain(tls.iter().cloned()).enumerate() {
        let _ = write!(url, "{}{key}={}", if i == 0 { '?' } else { '&' }, percent_encode(value.as_bytes()));
    }
    url
}

/// The URL parameters of `config` that differ from libpq's defaults, as the user wrote them
/// (TLS aside: the plan keeps `sslmode` and `sslrootcert` itself).
fn url_params(config: &Config) -> Vec<(&'static str, String)> {
    let defaults = Config::new();
    let seconds = |d: &Duration| d.as_secs().to_string();
    let hostaddrs: Vec<String> = config.get_hostaddrs().iter().map(ToString::to_string).collect();
    [
        ("sslnegotiation", (config.get_ssl_negotiation() == SslNegotiation::Direct).then(|| "direct".to_owned())),
        (
            "channel_binding",
            match config.get_channel_binding() {
                ChannelBinding::Disable => Some("disable".to_owned()),
                ChannelBinding::Require => Some("require".to_owned()),
                _ => None,
            },
        ),
        (
            "target_session_attrs",
            match config.get_target_session_attrs() {
                TargetSessionAttrs::ReadWrite => Some("read-write".to_owned()),
                TargetSessionAttrs::ReadOnly => Some("read-only".to_owned()),
                _ => None,
            },
        ),
        (
            "load_balance_hosts",
            (config.get_load_balance_hosts() == LoadBalanceHosts::Random).then(|| "random".to_owned()),
        ),
        ("options", config.get_options().map(str::to_owned)),
        ("application_name", config.get_application_name().map(str::to_owned)),
        ("hostaddr", (!hostaddrs.is_empty()).then(|| hostaddrs.join(","))),
        ("connect_timeout", config.get_connect_timeout().map(seconds)),
        // tokio-postgres reads this number as seconds, libpq as milliseconds: pass it on unchanged.
        ("tcp_user_timeout", config.get_tcp_user_timeout().map(seconds)),
        ("keepalives", (!config.get_keepalives()).then(|| "0".to_owned())),
        (
            "keepalives_idle",
            (config.get_keepalives_idle() != defaults.get_keepalives_idle())
                .then(|| seconds(&config.get_keepalives_idle())),
        ),
        ("keepalives_interval", config.get_keepalives_interval().as_ref().map(seconds)),
        ("keepalives_retries", config.get_keepalives_retries().map(|n| n.to_string())),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key, value?)))
    .collect()
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
