//! The controller's Prometheus metrics and the `/metrics` endpoint (`[metrics] listen`).

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Gauge, IntGauge, Registry, TextEncoder};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// The gauges the controller keeps (names are a contract).
#[derive(Clone)]
pub struct CutoverMetrics {
    registry: Registry,
    pub lag_bytes: IntGauge,
    pub lag_seconds: Gauge,
    pub phase: IntGauge,
    pub write_pause_seconds: Gauge,
}

impl CutoverMetrics {
    pub fn new() -> CutoverMetrics {
        let registry = Registry::new();
        let lag_bytes =
            IntGauge::new("pgflip_replication_lag_bytes", "WAL bytes blue has written that green has not confirmed")
                .expect("valid metric");
        let lag_seconds =
            Gauge::new("pgflip_replication_lag_seconds", "Age on green of the last heartbeat written on blue")
                .expect("valid metric");
        let phase = IntGauge::new(
            "pgflip_cutover_phase",
            "Phase running (1 preflight, 2 snapshot, 3 restore, 4 migrate, 5 smoke, 6 catchup, 7 cutover, \
             8 validate, 9 rollback, 10 promote, 11 retire; 0 none)",
        )
        .expect("valid metric");
        let write_pause_seconds = Gauge::new(
            "pgflip_write_pause_seconds",
            "How long the last flip (cutover or rollback) held the application's writes",
        )
        .expect("valid metric");
        for metric in [
            Box::new(lag_bytes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(lag_seconds.clone()),
            Box::new(phase.clone()),
            Box::new(write_pause_seconds.clone()),
        ] {
            registry.register(metric).expect("registered once");
        }
        CutoverMetrics { registry, lag_bytes, lag_seconds, phase, write_pause_seconds }
    }

    fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }

    /// Serves `GET /metrics` on `addr` until the process ends.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = TcpListener::bind(addr).await?;
        info!(addr = %listener.local_addr()?, "controller metrics listening");
        let metrics = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let metrics = metrics.clone();
                        async move {
                            let response = if request.uri().path() == "/metrics" {
                                Response::builder()
                                    .header("content-type", "text/plain; version=0.0.4")
                                    .body(Full::new(Bytes::from(metrics.render())))
                            } else {
                                Response::builder().status(404).body(Full::new(Bytes::from_static(b"not found\n")))
                            };
                            Ok::<_, Infallible>(response.expect("valid response"))
                        }
                    });
                    if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await {
                        warn!(error = %e, "metrics connection failed");
                    }
                });
            }
        });
        Ok(())
    }
}

impl Default for CutoverMetrics {
    fn default() -> Self {
        Self::new()
    }
}
