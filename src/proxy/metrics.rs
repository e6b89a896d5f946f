//! The sidecar's Prometheus metrics. Names and labels are a contract (DESIGN 2.7).
//!
//! Families are registered on a registry passed in, never on a global one, and the label
//! values used on the hot path are resolved once here.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::proxy::session::SessionState;

/// Every metric family of the sidecar.
#[derive(Debug, Clone)]
pub struct Metrics {
    sessions: Vec<IntGauge>,
    server_connections: IntGaugeVec,
    active_upstream: IntGaugeVec,
    pub generation: IntGauge,
    pub pause_seconds: Histogram,
    pub switches: IntCounterVec,
    pub session_migrations: IntCounterVec,
    /// Sessions served by a side other than their home, their OIDs translated.
    pub translated_sessions: IntGauge,
    client_errors: IntCounterVec,
    upstream_errors: IntCounterVec,
    pub bytes_client_to_server: IntCounter,
    pub bytes_server_to_client: IntCounter,
    pub transaction_seconds: Histogram,
    /// Replication lag of the standby as the controller last reported it (NaN: unknown).
    pub standby_lag_seconds: Gauge,
    /// 1 for the upstream the standby listener's new sessions go to.
    pub standby_upstream: IntGaugeVec,
    /// Clients held back or turned away by a limit, by limit.
    client_limits: Vec<IntCounter>,
}

/// A limit on clients, as `pgflip_client_limits_total{limit}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientLimit {
    /// A client did not log in within `client_login_timeout`.
    LoginTimeout,
    /// The oldest connection still logging in was dropped for a new one (`max_clients_logging_in`).
    LoggingIn,
    /// A client was refused with 53300 (`max_client_connections`).
    Clients,
    /// A parked session's client stopped being read (`max_parked_bytes`).
    ParkedBytes,
    /// A message longer than allowed was refused (`max_message_size`, or the startup packet's cap).
    MessageSize,
}

impl ClientLimit {
    pub const ALL: [ClientLimit; 5] = [
        ClientLimit::LoginTimeout,
        ClientLimit::LoggingIn,
        ClientLimit::Clients,
        ClientLimit::ParkedBytes,
        ClientLimit::MessageSize,
    ];

    /// The `limit` label value.
    pub fn label(self) -> &'static str {
        match self {
            ClientLimit::LoginTimeout => "login_timeout",
            ClientLimit::LoggingIn => "logging_in",
            ClientLimit::Clients => "client_connections",
            ClientLimit::ParkedBytes => "parked_bytes",
            ClientLimit::MessageSize => "message_size",
        }
    }
}

impl Metrics {
    /// Registers every family on `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let sessions_vec =
            IntGaugeVec::new(Opts::new("pgflip_client_sessions", "Client sessions by state"), &["state"])?;
        let sessions = SessionState::ALL.iter().map(|s| sessions_vec.with_label_values(&[s.label()])).collect();
        let server_connections = IntGaugeVec::new(
            Opts::new("pgflip_server_connections", "Open server connections per upstream"),
            &["upstream"],
        )?;
        let active_upstream = IntGaugeVec::new(
            Opts::new("pgflip_active_upstream", "1 for the upstream new sessions go to, 0 for the others"),
            &["upstream"],
        )?;
        let generation =
            IntGauge::new("pgflip_generation", "Generation of the upstream registry; grows on every repoint")?;
        let pause_seconds = Histogram::with_opts(
            HistogramOpts::new("pgflip_pause_seconds", "How long clients were held by a pause")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        let switches = IntCounterVec::new(
            Opts::new("pgflip_switches_total", "Switches of the active upstream by result"),
            &["result"],
        )?;
        let session_migrations = IntCounterVec::new(
            Opts::new("pgflip_session_migrations_total", "Sessions moved to another server by result"),
            &["result"],
        )?;
        let translated_sessions = IntGauge::new(
            "pgflip_translated_sessions",
            "Sessions served by an upstream other than the one they logged in to, their type OIDs translated",
        )?;
        let client_errors = IntCounterVec::new(
            Opts::new("pgflip_client_errors_total", "ErrorResponses sent to clients by SQLSTATE class"),
            &["sqlstate_class"],
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new("pgflip_upstream_errors_total", "Failures talking to upstreams by upstream and kind"),
            &["upstream", "kind"],
        )?;
        let bytes =
            IntCounterVec::new(Opts::new("pgflip_bytes_total", "Bytes forwarded by direction"), &["direction"])?;
        let transaction_seconds = Histogram::with_opts(
            HistogramOpts::new("pgflip_transaction_seconds", "Time from a transaction's first request to its end")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
        )?;
        let standby_lag_seconds = Gauge::new(
            "pgflip_standby_lag_seconds",
            "Replication lag of the standby in seconds, as the controller last reported it (NaN when unknown)",
        )?;
        standby_lag_seconds.set(f64::NAN);
        let standby_upstream = IntGaugeVec::new(
            Opts::new(
                "pgflip_standby_upstream",
                "1 for the upstream the standby listener's new sessions go to, 0 for the others",
            ),
            &["upstream"],
        )?;
        let client_limits_vec = IntCounterVec::new(
            Opts::new("pgflip_client_limits_total", "Times a limit on clients was hit, by limit"),
            &["limit"],
        )?;
        let client_limits =
            ClientLimit::ALL.iter().map(|l| client_limits_vec.with_label_values(&[l.label()])).collect();
        registry.register(Box::new(client_limits_vec))?;
        registry.register(Box::new(sessions_vec))?;
        registry.register(Box::new(standby_lag_seconds.clone()))?;
        registry.register(Box::new(standby_upstream.clone()))?;
        registry.register(Box::new(server_connections.clone()))?;
        registry.register(Box::new(active_upstream.clone()))?;
        registry.register(Box::new(generation.clone()))?;
        registry.register(Box::new(pause_seconds.clone()))?;
        registry.register(Box::new(switches.clone()))?;
        registry.register(Box::new(session_migrations.clone()))?;
        registry.register(Box::new(translated_sessions.clone()))?;
        registry.register(Box::new(client_errors.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(transaction_seconds.clone()))?;
        Ok(Metrics {
            sessions,
            server_connections,
            active_upstream,
            generation,
            pause_seconds,
            switches,
            session_migrations,
            translated_sessions,
            client_errors,
            upstream_errors,
            bytes_client_to_server: bytes.with_label_values(&["client_to_server"]),
            bytes_server_to_client: bytes.with_label_values(&["server_to_client"]),
            transaction_seconds,
            standby_lag_seconds,
            standby_upstream,
            client_limits,
        })
    }

    /// Counts one hit of `limit`.
    pub fn client_limit(&self, limit: ClientLimit) {
        self.client_limits[limit as usize].inc();
    }

    /// The gauge of sessions in `state`.
    pub fn sessions(&self, state: SessionState) -> &IntGauge {
        &self.sessions[state as usize]
    }

    /// The gauge of server connections to `upstream`.
    pub fn server_connections(&self, upstream: &str) -> IntGauge {
        self.server_connections.with_label_values(&[upstream])
    }

    /// Counts an ErrorResponse sent to a client, by the class (first two characters) of its SQLSTATE.
    pub fn client_error(&self, sqlstate: &str) {
        let class = sqlstate.get(..2).unwrap_or("??");
        self.client_errors.with_label_values(&[class]).inc();
    }

    /// Counts a failure talking to `upstream`.
    pub fn upstream_error(&self, upstream: &str, kind: &str) {
        self.upstream_errors.with_label_values(&[upstream, kind]).inc();
    }

    /// Marks `active` as the active upstream among `all`, at `generation`.
    pub fn set_active(&self, all: impl IntoIterator<Item = impl AsRef<str>>, active: &str, generation: u64) {
        for name in all {
            let name = name.as_ref();
            self.active_upstream.with_label_values(&[name]).set(i64::from(name == active));
        }
        self.generation.set(generation as i64);
    }
}
