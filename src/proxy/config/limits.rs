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

/// The limits from the merged flags and file.
pub(super) fn client_limits(m: &super::Merged) -> Result<ClientLimits, ConfigError> {
    let login_timeout = at_most_a_day("client_login_timeout", m.client_login_timeout.unwrap_or(LOGIN_TIMEOUT))?;
    if login_timeout.is_zero() {
        return Err(err("client_login_timeout", "must be more than 0"));
    }
    let at_least_one = |key: &str, value: Option<usize>, default: usize| match value {
        Some(0) => Err(err(key, "must be at least 1")),
        value => Ok(value.unwrap_or(default)),
    };
    let max_parked_bytes = m.max_parked_bytes.unwrap_or(MAX_PARKED_BYTES);
    if max_parked_bytes < 1024 {
        return Err(err("max_parked_bytes", "must be at least 1024 bytes"));
    }
    Ok(ClientLimits {
        login_timeout,
        max_logging_in: at_least_one("max_clients_logging_in", m.max_clients_logging_in, MAX_LOGGING_IN)?,
        max_clients: at_least_one("max_client_connections", m.max_client_connections, MAX_CLIENTS)?,
        max_parked_bytes,
    })
}
