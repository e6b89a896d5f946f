//! The limits on clients: how long one may take to log in, how many may be logging in at
//! once, how many may be logged in, and how much a parked session's client may send ahead.

use std::time::Duration;

use super::{at_most_a_day, err, ConfigError};

/// Default `client_login_timeout`.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `max_clients_logging_in`.
const MAX_LOGGING_IN: usize = 1000;
/// Default `max_client_connections`.
const MAX_CLIENTS: usize = 1000;
/// Default `max_parked_bytes`.
const MAX_PARKED_BYTES: usize = 1 << 20;

/// Validated client limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Time from accepting a connection to its client having logged in (TLS, startup
    /// packet, authentication).
    pub login_timeout: Duration,
    /// Connections still logging in at once; past it the oldest is dropped.
    pub max_logging_in: usize,
    /// Clients logged in at once; past it a new one gets FATAL 53300.
    pub max_clients: usize,
    /// Bytes read ahead from a client while its session is held behind the closed gate;
    /// past it the client is not read until the gate opens.
    pub max_parked_bytes: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            login_timeout: LOGIN_TIMEOUT,
            max_logging_in: MAX_LOGGING_IN,
            max_clients: MAX_CLIENTS,
            max_parked_bytes: MAX_PARKED_BYTES,
        }
    }
}

/// The client limits' flags (a part of [`super::ProxyArgs`]); the file keys have the same
/// names, and are read into this type too before the flags go over them.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct LimitArgs {
    /// How long a client may take to log in (TLS, startup packet, authentication) before
    /// its connection is closed [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse_flag)]
    pub client_login_timeout: Option<Duration>,
    /// Connections still logging in at once; past it the oldest of them is dropped [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_clients_logging_in: Option<usize>,
    /// Clients logged in at once; past it a new client gets FATAL 53300 [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_client_connections: Option<usize>,
    /// Bytes read ahead from a client while its session is parked; past it the client is
    /// not read until the session resumes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_parked_bytes: Option<usize>,
}

impl LimitArgs {
    /// The flags in `args` over these keys (the file's).
    pub(super) fn under(self, args: &LimitArgs) -> LimitArgs {
        LimitArgs {
            client_login_timeout: args.client_login_timeout.or(self.client_login_timeout),
            max_clients_logging_in: args.max_clients_logging_in.or(self.max_clients_logging_in),
            max_client_connections: args.max_client_connections.or(self.max_client_connections),
            max_parked_bytes: args.max_parked_bytes.or(self.max_parked_bytes),
        }
    }
}

impl ClientLimits {
    /// Checks the merged keys, filling in the defaults.
    pub(super) fn validate(keys: &LimitArgs) -> Result<ClientLimits, ConfigError> {
        let login_timeout = at_most_a_day("client_login_timeout", keys.client_login_timeout.unwrap_or(LOGIN_TIMEOUT))?;
        if login_timeout.is_zero() {
            return Err(err("client_login_timeout", "must be more than 0"));
        }
        let at_least_one = |key: &str, value: Option<usize>, default: usize| match value {
            Some(0) => Err(err(key, "must be at least 1")),
            value => Ok(value.unwrap_or(default)),
        };
        let max_parked_bytes = keys.max_parked_bytes.unwrap_or(MAX_PARKED_BYTES);
        if max_parked_bytes < 1024 {
            return Err(err("max_parked_bytes", "must be at least 1024 bytes"));
        }
        Ok(ClientLimits {
            login_timeout,
            max_logging_in: at_least_one("max_clients_logging_in", keys.max_clients_logging_in, MAX_LOGGING_IN)?,
            max_clients: at_least_one("max_client_connections", keys.max_client_connections, MAX_CLIENTS)?,
            max_parked_bytes,
        })
    }
}
