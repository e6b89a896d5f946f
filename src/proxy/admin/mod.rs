//! The admin HTTP server (HTTP/1.1, JSON).
//!
//! Routes:
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 once the listener is up and an upstream is configured; 503 while
//!   shutting down (readiness; a pause does not make the sidecar unready).
//! - `GET /metrics`: Prometheus text format.
//! - `GET /v1/status`: active upstream, generation, upstreams, sessions, pause ([`crate::api::Status`]).
//! - `POST /v1/pause`: close the gate and wait for sessions to park ([`crate::api::PauseRequest`]).
//! - `POST /v1/resume`: open the gate ([`crate::api::ResumeRequest`]).
//! - `POST /v1/switch`: move every session to another upstream ([`crate::api::SwitchRequest`]).
//! - `PUT /v1/upstreams/{name}`: add or replace an upstream ([`crate::api::PutUpstreamRequest`]).
//! - `PUT /v1/standby`: the controller's report on the standby ([`crate::api::StandbyReport`]).
//!
//! With `admin_tls_cert` and `admin_tls_key` configured, the API speaks HTTPS only.
//! `/v1/*` needs `Authorization: Bearer <token>`: the token of `admin_token_file`, or the
//! one the sidecar made at start ([`crate::admin_token`]); `/healthz`, `/readyz` and
//! `/metrics` are open. Errors are JSON `{"error": "..."}` with a fitting status code. Every
//! mutating call runs to its end in a task of its own, whatever becomes of its connection,
//! and is logged as one audit event (target `pgflip::audit`). The listener's limits are in
//! [`limits`].

mod control;
mod limits;
mod standby;
mod upstreams;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{Encoder, TextEncoder};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::api::{ErrorBody, Status, UpstreamStatus};
use crate::proxy::config::AdminConfig;
use crate::proxy::context::ProxyContext;
use crate::proxy::switch::GateState;
use crate::proxy::upstream::{SslMode, Upstream};

pub use limits::AdminMetrics;
use limits::{Rejection, Slot};

/// What the admin server reads.
#[derive(Debug)]
pub struct AdminState {
    pub ctx: Arc<ProxyContext>,
    pub registry: prometheus::Registry,
    /// Bearer token for `/v1/*`: configured, or made at start.
    pub token: String,
    /// Limits and policies: allowed upstream hosts, the longest lease, timeouts, the connection cap.
    pub config: AdminConfig,
    pub metrics: AdminMetrics,
}

type Body = Full<Bytes>;

/// Longest wait for a client's TLS handshake on an HTTPS admin API.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves admin requests on `listener` until `stop` is cancelled, over HTTPS when `tls` is given.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, tls: Option<TlsAcceptor>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(state.config.max_connections));
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let slot = Slot::take(&slots);
        tokio::spawn(serve_connection(state.clone(), tcp, peer, tls.clone(), slot));
    }
}

/// Serves one connection: in full while it holds a slot, else health and readiness only,
/// once, within [`limits::HEALTH_ONLY_LIFETIME`].
async fn serve_connection(
    state: Arc<AdminState>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    slot: Slot,
) {
    let health_only = slot.is_health_only();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    if health_only {
        builder.keep_alive(false);
        builder.header_read_timeout(state.config.header_timeout.min(limits::HEALTH_ONLY_HEADER_TIMEOUT));
    } else {
        builder.header_read_timeout(state.config.header_timeout);
    }
    let service_state = state.clone();
    let service = service_fn(move |req| {
        let state = service_state.clone();
        async move { Ok::<_, Infallible>(route(&state, peer, req, health_only).await) }
    });
    let served = async {
        match tls {
            None => Some(builder.serve_connection(TokioIo::new(tcp), service).await),
            Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some(builder.serve_connection(TokioIo::new(stream), service).await),
                Ok(Err(e)) => {
                    debug!(admin.peer = %peer, error = %e, "admin TLS handshake failed");
                    None
                }
                Err(_) => {
                    debug!(admin.peer = %peer, "admin TLS handshake timed out");
                    None
                }
            },
        }
    };
    let served = if health_only {
        match tokio::time::timeout(limits::HEALTH_ONLY_LIFETIME, served).await {
            Ok(served) => served,
            Err(_) => {
                state.metrics.rejected(Rejection::HeaderTimeout);
                return debug!(admin.peer = %peer, "admin connection beyond the cap closed at the end of its life");
            }
        }
    } else {
        served.await
    };
    if let Some(Err(e)) = served {
        if e.is_timeout() {
            state.metrics.rejected(Rejection::HeaderTimeout);
        }
        debug!(admin.peer = %peer, error = %e, "admin connection ended with an error");
    }
    drop(slot);
}

async fn route(state: &Arc<AdminState>, peer: SocketAddr, req: Request<Incoming>, health_only: bool) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if health_only && !limits::is_health_route(&path) {
        state.metrics.rejected(Rejection::Connections);
        let message = format!(
            "the admin API serves {} connections at once (admin_max_connections) and all are taken; \
             on more, only /healthz and /readyz are answered: retry shortly",
            state.config.max_connections
        );
        return error(StatusCode::SERVICE_UNAVAILABLE, message);
    }
    let mutating = match path.as_str() {
        "/v1/pause" | "/v1/resume" | "/v1/switch" => Some(Method::POST),
        "/v1/standby" => Some(Method::PUT),
        p if p.starts_with("/v1/upstreams/") => Some(Method::PUT),
        _ => None,
    };
    if let Some(allowed) = mutating {
        if method != allowed {
            let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, format!("{path} accepts {allowed}"));
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_str(allowed.as_str()).expect("a method name is a valid header"));
            return resp;
        }
        if let Some(refusal) = refuse_unauthorized(state, &req) {
            return refusal;
        }
        return control::handle(state, peer, &path, req).await;
    }
    let path = path.as_str();
    match path {
        "/healthz" | "/readyz" | "/metrics" | "/v1/status" if method != Method::GET && method != Method::HEAD => {
            let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, format!("{path} accepts GET"));
            resp.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            resp
        }
        "/healthz" => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/readyz" => readyz(state),
        "/metrics" => metrics(state),
        "/v1/status" => match refuse_unauthorized(state, &req) {
            None => json(StatusCode::OK, &status(&state.ctx)),
            Some(refusal) => refusal,
        },
        _ => error(StatusCode::NOT_FOUND, format!("no route {path}")),
    }
}

fn readyz(state: &AdminState) -> Response<Body> {
    if state.ctx.is_shutting_down() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    }
    json(StatusCode::OK, &serde_json::json!({"status": "ready", "active": state.ctx.registry.active().name}))
}

fn metrics(state: &AdminState) -> Response<Body> {
    let mut out = Vec::with_capacity(8192);
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&state.registry.gather(), &mut out) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}"));
    }
    let mut resp = Response::new(Full::new(Bytes::from(out)));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

/// Builds the status report.
pub fn status(ctx: &ProxyContext) -> Status {
    let snapshot = ctx.registry.snapshot();
    Status {
        upstreams: snapshot.upstreams.iter().map(|u| upstream_status(u, &snapshot.active)).collect(),
        active: snapshot.active,
        generation: snapshot.generation,
        sessions: ctx.cancels.len() as u64,
        sessions_by_state: sessions_by_state(ctx),
        paused: ctx.gate.is_closed(),
        lease_ms_left: match ctx.gate.state() {
            GateState::Closed { lease_until, .. } => {
                Some(lease_until.saturating_duration_since(std::time::Instant::now()).as_millis() as u64)
            }
            GateState::Open => None,
        },
        last_switch: ctx.last_switch.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        shutting_down: ctx.is_shutting_down(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        standby: ctx.standby.as_ref().map(|standby| standby.status(&ctx.registry, &ctx.sessions)),
    }
}

/// One upstream as the API reports it.
pub(crate) fn upstream_status(upstream: &Upstream, active: &str) -> UpstreamStatus {
    UpstreamStatus {
        name: upstream.name.clone(),
        address: upstream.url.address(),
        sslmode: match upstream.url.sslmode {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
        .to_owned(),
        active: upstream.name == active,
    }
}

fn sessions_by_state(ctx: &ProxyContext) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for session in ctx.sessions.all() {
        *counts.entry(session.state().label().to_owned()).or_insert(0) += 1;
    }
    counts
}

/// The response refusing `req` when it lacks the admin token.
fn refuse_unauthorized(state: &AdminState, req: &Request<Incoming>) -> Option<Response<Body>> {
    let given = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let refusal = match given {
        Some(given) if crate::proxy::auth::constant_time_eq(given.trim().as_bytes(), state.token.as_bytes()) => {
            return None
        }
        Some(_) => error(StatusCode::FORBIDDEN, "wrong admin token".into()),
        None => error(StatusCode::UNAUTHORIZED, "missing Authorization: Bearer <admin token>".into()),
    };
    state.metrics.rejected(Rejection::Token);
    Some(refusal)
}

pub(crate) fn json<T: Serialize>(code: StatusCode, body: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(crate) fn error(code: StatusCode, message: String) -> Response<Body> {
    json(code, &ErrorBody { error: message })
}
