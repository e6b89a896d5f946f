//! The standby listener: read-only sessions on the upstream that is not active, with the
//! controller's reports on it and the fallback when it cannot serve.
//!
//! Sessions ask [`Standby::decide`] where they belong whenever they wake; the decision is
//! also published (re-computed every [`REFRESH`] and on every change) so that they wake
//! when it changes, and mirrored in the metrics.

mod route;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

use crate::api::{StandbyReport, StandbyStatus};
use crate::proxy::config::StandbyConfig;
use crate::proxy::metrics::Metrics;
use crate::proxy::switch::SessionTable;
use crate::proxy::upstream::Registry;

pub use route::Decision;
use route::{Inputs, Policy, Report, Unreachable};

/// How often the decision is re-computed without any event (the lag grows with the age of
/// the last report).
pub const REFRESH: Duration = Duration::from_millis(500);
/// How long an upstream that refused a connection is not tried again by new sessions.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Which listener a session came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The main listener: the active upstream.
    Main,
    /// The standby listener: read-only, on the standby.
    Standby,
}

/// Why a standby report was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReportError {
    #[error("unknown upstream \"{0}\"")]
    Unknown(String),
    #[error("lag_seconds must be a number of seconds at least 0, not {0}")]
    Lag(f64),
}

#[derive(Debug, Default)]
struct Known {
    reports: HashMap<String, Report>,
    unreachable: HashMap<String, Unreachable>,
}

/// The standby listener's shared state.
#[derive(Debug)]
pub struct Standby {
    pub config: StandbyConfig,
    known: Mutex<Known>,
    published: watch::Sender<Option<Decision>>,
}

impl Standby {
    pub fn new(config: StandbyConfig) -> Standby {
        Standby { config, known: Mutex::default(), published: watch::Sender::new(None) }
    }

    fn policy(&self) -> Policy {
        Policy { fallback: self.config.fallback, max_lag: self.config.max_lag }
    }

    /// Where the standby listener's sessions go now.
    pub fn decide(&self, registry: &Registry) -> Decision {
        self.decide_with(registry, None)
    }

    /// Where they would go with `active` active (for a switch about to happen).
    pub fn decide_with(&self, registry: &Registry, active: Option<&str>) -> Decision {
        let snapshot = registry.snapshot();
        let names: Vec<String> = snapshot.upstreams.iter().map(|u| u.name.clone()).collect();
        let known = self.lock();
        route::decide(&Inputs {
            active: active.unwrap_or(&snapshot.active),
            upstreams: &names,
            reports: &known.reports,
            unreachable: &known.unreachable,
            policy: self.policy(),
            now: Instant::now(),
        })
    }

    /// Records the controller's report.
    pub fn report(&self, report: &StandbyReport, registry: &Registry, metrics: &Metrics) -> Result<(), ReportError> {
        if registry.get(&report.upstream).is_none() {
            return Err(ReportError::Unknown(report.upstream.clone()));
        }
        if let Some(lag) = report.lag_seconds.filter(|lag| !lag.is_finite() || *lag < 0.0) {
            return Err(ReportError::Lag(lag));
        }
        let entry = Report { state: report.state, lag: report.lag_seconds, at: Instant::now() };
        self.lock().reports.insert(report.upstream.clone(), entry);
        self.refresh(registry, metrics);
        Ok(())
    }

    /// Records that connecting to `upstream` failed: new sessions do not try it for a while.
    pub fn mark_unreachable(&self, upstream: &str, error: &str, registry: &Registry, metrics: &Metrics) {
        let entry = Unreachable { until: Instant::now() + RETRY_AFTER, error: error.to_owned() };
        self.lock().unreachable.insert(upstream.to_owned(), entry);
        self.refresh(registry, metrics);
    }

    /// Re-computes the decision; publishes it (waking standby sessions) and updates the
    /// metrics when it changed.
    pub fn refresh(&self, registry: &Registry, metrics: &Metrics) {
        let decision = self.decide(registry);
        let lag = decision.standby.as_ref().and_then(|name| self.lock().reports.get(name).and_then(|r| r.lag));
        metrics.standby_lag_seconds.set(lag.unwrap_or(f64::NAN));
        let changed = self.published.send_if_modified(|published| {
            if published.as_ref() == Some(&decision) {
                return false;
            }
            *published = Some(decision.clone());
            true
        });
        if changed {
            for upstream in registry.snapshot().upstreams {
                let serving = decision.target.as_deref() == Some(upstream.name.as_str());
                metrics.standby_upstream.with_label_values(&[&upstream.name]).set(i64::from(serving));
            }
            info!(
                standby = decision.standby.as_deref().unwrap_or("none"),
                route = ?decision.route,
                serving_from = decision.target.as_deref().unwrap_or("nowhere"),
                reason = decision.reason.as_deref().unwrap_or(""),
                "standby listener route"
            );
        }
    }

    /// A receiver that changes whenever the decision does.
    pub fn subscribe(&self) -> watch::Receiver<Option<Decision>> {
        self.published.subscribe()
    }

    /// The standby listener as `/v1/status` reports it.
    pub fn status(&self, registry: &Registry, sessions: &SessionTable) -> StandbyStatus {
        let sessions = sessions.all().iter().filter(|s| s.listener == Listener::Standby).count() as u64;
        let decision = self.decide(registry);
        let report = decision.standby.as_ref().and_then(|name| self.lock().reports.get(name).copied());
        StandbyStatus {
            listen: self.config.listen.to_string(),
            fallback: self.config.fallback,
            max_lag_seconds: self.config.max_lag.map(|d| d.as_secs_f64()),
            standby: decision.standby,
            route: decision.route,
            serving_from: decision.target,
            reason: decision.reason,
            reported_state: report.map(|r| r.state),
            lag_seconds: report.and_then(|r| r.lag),
            report_age_seconds: report.map(|r| r.at.elapsed().as_secs_f64()),
            sessions,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}
