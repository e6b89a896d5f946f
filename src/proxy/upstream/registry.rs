//! The named upstreams, which one is active, and the generation number.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::proxy::upstream::url::{SslMode, UpstreamUrl};
use crate::tls::{self, TlsConfigError};

/// One upstream server with its TLS configuration built once.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub url: UpstreamUrl,
    pub(crate) tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// Why an upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamConfigError {
    #[error("upstream \"{name}\": {source}")]
    Tls { name: String, source: TlsConfigError },
    #[error("upstream \"{name}\": {reason}")]
    ServerName { name: String, reason: String },
    #[error("unknown upstream \"{0}\"")]
    Unknown(String),
}

/// Checks an upstream name: letters, digits, `-` and `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(())
    } else {
        Err(format!("upstream name {name:?} must be letters, digits, '-' or '_'"))
    }
}

impl Upstream {
    /// Builds an upstream, loading its CA file when the URL asks for verify-full.
    pub fn new(name: &str, url: UpstreamUrl) -> Result<Upstream, UpstreamConfigError> {
        let tls_err = |source| UpstreamConfigError::Tls { name: name.to_owned(), source };
        let config = match (url.sslmode, &url.sslrootcert) {
            (SslMode::Disable, _) => None,
            (SslMode::Require, _) => Some(tls::require().map_err(tls_err)?),
            (SslMode::VerifyFull, Some(ca)) => Some(tls::verify_full(ca).map_err(tls_err)?),
            (SslMode::VerifyFull, None) => unreachable!("UpstreamUrl::parse requires sslrootcert for verify-full"),
        };
        let tls = match config {
            None => None,
            Some(config) => {
                let server_name = tls::server_name(&url.host)
                    .map_err(|reason| UpstreamConfigError::ServerName { name: name.to_owned(), reason })?;
                Some((config, server_name))
            }
        };
        Ok(Upstream { name: name.to_owned(), url, tls })
    }
}

/// Why a repoint was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RepointError {
    #[error("stale generation {given}: the sidecar is at generation {current}")]
    StaleGeneration { given: u64, current: u64 },
    #[error("unknown upstream \"{0}\"")]
    Unknown(String),
}

/// What the registry holds at one moment, for status reports.
#[derive(Debug, Clone)]
pub struct RegistrySnapshot {
    pub active: String,
    pub generation: u64,
    pub upstreams: Vec<Arc<Upstream>>,
}

#[derive(Debug)]
struct State {
    upstreams: BTreeMap<String, Arc<Upstream>>,
    active: Arc<Upstream>,
    generation: u64,
}

/// The named upstreams and the active one. Sessions read it when they connect.
#[derive(Debug)]
pub struct Registry {
    state: RwLock<State>,
}

impl Registry {
    /// A registry of `upstreams` with `active` serving, at generation `generation`.
    pub fn new(upstreams: Vec<Upstream>, active: &str, generation: u64) -> Result<Registry, UpstreamConfigError> {
        let upstreams: BTreeMap<String, Arc<Upstream>> =
            upstreams.into_iter().map(|u| (u.name.clone(), Arc::new(u))).collect();
        let active = upstreams.get(active).cloned().ok_or_else(|| UpstreamConfigError::Unknown(active.to_owned()))?;
        Ok(Registry { state: RwLock::new(State { upstreams, active, generation }) })
    }

    /// The upstream new sessions go to.
    pub fn active(&self) -> Arc<Upstream> {
        self.read().active.clone()
    }

    /// The active upstream and the generation, read together.
    pub fn active_with_generation(&self) -> (Arc<Upstream>, u64) {
        let state = self.read();
        (state.active.clone(), state.generation)
    }

    /// A consistent copy of the registry's contents.
    pub fn snapshot(&self) -> RegistrySnapshot {
        let state = self.read();
        RegistrySnapshot {
            active: state.active.name.clone(),
            generation: state.generation,
            upstreams: state.upstreams.values().cloned().collect(),
        }
    }

    /// Adds `upstream`, or replaces the one of that name (sessions already on the old
    /// one keep their connections). Returns true when the name is new. The generation
    /// does not change: only a repoint changes it.
    pub fn upsert(&self, upstream: Upstream) -> bool {
        let upstream = Arc::new(upstream);
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.active.name == upstream.name {
            state.active = upstream.clone();
        }
        state.upstreams.insert(upstream.name.clone(), upstream).is_none()
    }

    /// Makes `name` the active upstream and bumps the generation. With `expected`, the
    /// current generation must equal it (compare-and-swap). Returns the new generation.
    pub fn repoint(&self, name: &str, expected: Option<u64>) -> Result<(Arc<Upstream>, u64), RepointError> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if let Some(expected) = expected {
            if expected != state.generation {
                return Err(RepointError::StaleGeneration { given: expected, current: state.generation });
            }
        }
        let target = state.upstreams.get(name).cloned().ok_or_else(|| RepointError::Unknown(name.to_owned()))?;
        state.active = target.clone();
        state.generation += 1;
        Ok((target, state.generation))
    }

    /// Raises the generation to `generation` (a durable target read from the config file
    /// can be ahead of this sidecar's count).
    pub fn set_generation(&self, generation: u64) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.generation = state.generation.max(generation);
    }

    /// The upstream called `name`, if registered.
    pub fn get(&self, name: &str) -> Option<Arc<Upstream>> {
        self.read().upstreams.get(name).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written: every write
        // replaces whole fields.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}
