//! The admin listener's limits: how long a client may take to send a request's headers
//! (`admin_header_timeout`, which also ends idle keep-alive connections) and its body
//! (`admin_body_timeout`), and how many connections are served in full at once
//! (`admin_max_connections`).
//!
//! A connection beyond the cap is still accepted, so that a liveness or readiness probe
//! gets through while slow or idle clients hold every slot: it is answered on `/healthz`
//! and `/readyz` only, for one request, with a short header deadline and a short life.
//! Every refusal counts in `pgflip_admin_rejected_total{reason}`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why the admin API refused a request or dropped a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A request other than `/healthz` and `/readyz` on a connection beyond the cap.
    Connections,
    /// The request's headers did not arrive within `admin_header_timeout`.
    HeaderTimeout,
    /// The request's body did not arrive within `admin_body_timeout`.
    BodyTimeout,
    /// A missing or wrong admin token.
    Token,
    /// `PUT /v1/upstreams/{name}` to a host outside `allowed_upstream_hosts`.
    UpstreamHost,
    /// A lease or drain timeout above `max_pause_lease`.
    Lease,
}

impl Rejection {
    const ALL: [Rejection; 6] = [
        Rejection::Connections,
        Rejection::HeaderTimeout,
        Rejection::BodyTimeout,
        Rejection::Token,
        Rejection::UpstreamHost,
        Rejection::Lease,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Connections => "connections",
            Rejection::HeaderTimeout => "header_timeout",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::Token => "token",
            Rejection::UpstreamHost => "upstream_host",
            Rejection::Lease => "lease",
        }
    }
}

/// The admin API's own metric family.
#[derive(Debug, Clone)]
pub struct AdminMetrics {
    rejected: IntCounterVec,
}

impl AdminMetrics {
    /// Registers `pgflip_admin_rejected_total` on `registry`, every reason at 0.
    pub fn register(registry: &Registry) -> Result<AdminMetrics, prometheus::Error> {
        let rejected = IntCounterVec::new(
            Opts::new("pgflip_admin_rejected_total", "Admin API requests refused and connections dropped, by reason"),
            &["reason"],
        )?;
        for reason in Rejection::ALL {
            rejected.with_label_values(&[reason.label()]);
        }
        registry.register(Box::new(rejected.clone()))?;
        Ok(AdminMetrics { rejected })
    }

    /// Counts one refusal.
    pub fn rejected(&self, reason: Rejection) {
        self.rejected.with_label_values(&[reason.label()]).inc();
    }
}

/// How a connection is served.
#[derive(Debug)]
pub enum Slot {
    /// In full, holding one of the `admin_max_connections` slots until it closes.
    Full { _permit: OwnedSemaphorePermit },
    /// Beyond the cap: health and readiness only.
    HealthOnly,
}

impl Slot {
    /// A free slot, or [`Slot::HealthOnly`] when all are taken.
    pub fn take(slots: &Arc<Semaphore>) -> Slot {
        match slots.clone().try_acquire_owned() {
            Ok(permit) => Slot::Full { _permit: permit },
            Err(_) => Slot::HealthOnly,
        }
    }

    pub fn is_health_only(&self) -> bool {
        matches!(self, Slot::HealthOnly)
    }
}

/// The header deadline of a connection beyond the cap (or `admin_header_timeout` if shorter).
pub const HEALTH_ONLY_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a connection beyond the cap stays open.
pub const HEALTH_ONLY_LIFETIME: Duration = Duration::from_secs(5);

/// True for the routes a connection beyond the cap is answered on.
pub fn is_health_route(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}
