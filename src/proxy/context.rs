//! What every session shares: upstreams, credentials, auth, TLS, cancel keys, metrics,
//! limits, and the shutdown signal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::proxy::auth::AuthFile;
use crate::proxy::cancel::CancelMap;
use crate::proxy::metrics::Metrics;
use crate::proxy::switch::{Gate, SessionTable};
use crate::proxy::upstream::{Login, Registry, SecretScope, Secrets, Upstream};

/// Per-session limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest protocol message accepted from either side.
    pub max_message: usize,
    /// Deadline for connecting and logging in to an upstream.
    pub connect_timeout: Duration,
    /// Client bytes read ahead while a session is held behind the closed gate.
    pub max_parked_bytes: usize,
}

/// State shared by the listener, the sessions and the admin server.
pub struct ProxyContext {
    pub registry: Registry,
    pub secrets: Secrets,
    /// Where the secrets file's passwords may be sent (`secrets_follow_readdress`).
    pub secret_scope: SecretScope,
    pub auth: Option<AuthFile>,
    pub tls_acceptor: Option<TlsAcceptor>,
    pub cancels: Arc<CancelMap>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Custom setting names every session's capture reads (`track_setting`).
    pub track_settings: Vec<String>,
    /// Whether the admin API shows the text of the sessions' queries (`admin_show_queries`).
    pub show_queries: bool,
    /// The upstream a coming switch moves to, and the round number of the request: sessions
    /// open their connection to it while their traffic still flows.
    pub prewarm: std::sync::Mutex<Option<(Arc<Upstream>, u64)>>,
    /// Pre-warm rounds started so far (a switch starting shows here first).
    pub prewarm_rounds: Arc<std::sync::atomic::AtomicU64>,
    /// Connections a switch's pre-warm opens at once: a few at a time load the servers
    /// less than all at once, so the queries still running meanwhile slow down less.
    pub prewarm_slots: Arc<tokio::sync::Semaphore>,
    /// The outcome of the last switch call.
    pub last_switch: std::sync::Mutex<Option<crate::api::SwitchReport>>,
    /// Closed while traffic is paused.
    pub gate: Arc<Gate>,
    /// Every live session.
    pub sessions: Arc<SessionTable>,
    /// The upstreams' user catalogs, for moved sessions' OID translation.
    pub catalogs: crate::proxy::catalogs::Catalogs,
    /// Server connections' baselines, shared between the connections whose are equal.
    pub baselines: Arc<crate::proxy::session::Baselines>,
    /// The standby listener, when configured.
    pub standby: Option<crate::proxy::standby::Standby>,
    /// Cancelled when the shutdown grace period is over: sessions close with 57P01.
    pub terminate: CancellationToken,
    shutting_down: AtomicBool,
}

/// See [`ProxyContext::prewarm_slots`].
const PREWARM_SLOTS: usize = 4;

impl ProxyContext {
    /// Shared state for a proxy about to serve.
    pub fn new(
        registry: Registry,
        secrets: Secrets,
        auth: Option<AuthFile>,
        tls_acceptor: Option<TlsAcceptor>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> ProxyContext {
        ProxyContext {
            registry,
            secrets,
            secret_scope: SecretScope::default(),
            auth,
            tls_acceptor,
            cancels: Arc::default(),
            metrics,
            limits,
            track_settings: Vec::new(),
            show_queries: false,
            last_switch: std::sync::Mutex::new(None),
            prewarm: std::sync::Mutex::new(None),
            prewarm_rounds: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            prewarm_slots: Arc::new(tokio::sync::Semaphore::new(PREWARM_SLOTS)),
            gate: Arc::default(),
            sessions: Arc::default(),
            catalogs: Default::default(),
            baselines: Arc::default(),
            standby: None,
            terminate: CancellationToken::new(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The login a client user gets on `upstream`: the secrets file's password for that
    /// user if it names one and the upstream still points where it was configured to (see
    /// [`SecretScope`]); else the URL's user and password if the URL has a user;
    /// else the client's user with no password.
    pub fn login_for(&self, upstream: &Upstream, client_user: &str) -> Login {
        let secret = self.secrets.password(&upstream.name, client_user).filter(|_| self.secret_scope.allows(upstream));
        if let Some(password) = secret {
            return Login { user: client_user.to_owned(), password: Some(password.to_owned()) };
        }
        match &upstream.url.user {
            Some(user) => Login { user: user.clone(), password: upstream.url.password.clone() },
            None => Login { user: client_user.to_owned(), password: upstream.url.password.clone() },
        }
    }

    /// The pending pre-warm request, if any.
    pub fn prewarm_target(&self) -> Option<(Arc<Upstream>, u64)> {
        self.prewarm.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Marks the proxy as shutting down: `/readyz` fails from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for ProxyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyContext")
            .field("registry", &self.registry)
            .field("client_tls", &self.tls_acceptor.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
