//! The standby listener's keys: `listen_standby`, `standby_fallback`, `max_standby_lag`.

use std::net::SocketAddr;
use std::time::Duration;

use super::{err, socket_addr, ConfigError};
use crate::api::StandbyFallback;

/// The standby listener's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StandbyConfig {
    pub listen: SocketAddr,
    pub fallback: StandbyFallback,
    /// Lag beyond which standby sessions are served from the active upstream.
    pub max_lag: Option<Duration>,
}

/// The standby listener's settings; its other keys need `listen_standby`.
pub(super) fn standby_config(
    m: &super::Merged,
    listen: SocketAddr,
    admin_listen: SocketAddr,
) -> Result<Option<StandbyConfig>, ConfigError> {
    let fallback = match m.standby_fallback.as_deref() {
        None | Some("active") => StandbyFallback::Active,
        Some("refuse") => StandbyFallback::Refuse,
        Some(other) => return Err(err("standby_fallback", format!("{other:?} is neither \"active\" nor \"refuse\""))),
    };
    let max_lag = match m.max_standby_lag {
        None => None,
        Some(lag) if !lag.is_zero() => Some(super::at_most_a_day("max_standby_lag", lag)?),
        Some(_) => return Err(err("max_standby_lag", "must be longer than 0")),
    };
    let Some(text) = m.listen_standby.as_deref() else {
        if m.standby_fallback.is_some() {
            return Err(err("standby_fallback", "needs listen_standby"));
        }
        if max_lag.is_some() {
            return Err(err("max_standby_lag", "needs listen_standby"));
        }
        return Ok(None);
    };
    let addr = socket_addr("listen_standby", text)?;
    for (key, other) in [("listen", listen), ("admin_listen", admin_listen)] {
        if addr == other {
            return Err(err("listen_standby", format!("{addr} is also the {key} address")));
        }
    }
    Ok(Some(StandbyConfig { listen: addr, fallback, max_lag }))
}
