//! The mutating admin routes: `POST /v1/pause`, `POST /v1/resume`, `POST /v1/switch`,
//! `PUT /v1/upstreams/{name}` and `PUT /v1/standby`, with their JSON bodies, the generation
//! check, and one audit event per call.
//!
//! Once its body is read, a call runs in a task of its own that the handler awaits: hyper
//! drops the handler when the caller goes away (a timed-out `pgflip ctl`, Ctrl-C), and a
//! pause or switch dropped half-way would leave the gate closed until its lease ends and
//! the switch's pre-warm never withdrawn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use tracing::info;

use super::limits::Rejection;
use super::{error, json, AdminState, Body};
use crate::api::{
    ErrorBody, OnTimeout, OnUnmovable, PauseRequest, PauseResponse, PutUpstreamRequest, ResumeRequest, ResumeResponse,
    StandbyReport, SwitchReport, SwitchRequest, SwitchResponse, SwitchTimings,
};
use crate::proxy::switch::{self, PauseOptions, SwitchError, SwitchOptions};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
/// The lease of a pause that names none (or `max_pause_lease`, when shorter).
const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A mutating call with its body read.
enum Call {
    Pause(PauseRequest),
    Switch(SwitchRequest),
    Resume(ResumeRequest),
    Standby(StandbyReport),
    PutUpstream { name: String, body: PutUpstreamRequest },
}

/// Runs a mutating route and logs its audit event.
pub async fn handle(state: &Arc<AdminState>, peer: SocketAddr, path: &str, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let call = match read_call(state, path, req).await {
        Ok(call) => call,
        Err(resp) => {
            audit(state, peer, path, &resp, started);
            return resp;
        }
    };
    let task_state = state.clone();
    let task_path = path.to_owned();
    let task = tokio::spawn(async move {
        let resp = call.run(&task_state, started).await;
        audit(&task_state, peer, &task_path, &resp, started);
        resp
    });
    task.await.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("the admin call failed: {e}")))
}

/// The call `path` names, with its body.
async fn read_call(state: &AdminState, path: &str, req: Request<Incoming>) -> Result<Call, Response<Body>> {
    Ok(match path {
        "/v1/pause" => Call::Pause(read_json(state, req).await?),
        "/v1/switch" => Call::Switch(read_json(state, req).await?),
        "/v1/resume" => Call::Resume(read_json(state, req).await?),
        "/v1/standby" => match read_json::<Option<StandbyReport>>(state, req).await? {
            Some(report) => Call::Standby(report),
            None => return Err(error(
                StatusCode::BAD_REQUEST,
                r#"the body must be {"upstream": NAME, "state": "replicating"|"fenced"|"retired", "lag_seconds": N}"#
                    .into(),
            )),
        },
        _ => {
            let name = path.trim_start_matches("/v1/upstreams/").to_owned();
            Call::PutUpstream { name, body: read_json(state, req).await? }
        }
    })
}

impl Call {
    async fn run(self, state: &Arc<AdminState>, started: Instant) -> Response<Body> {
        match self {
            Call::Pause(body) => pause(state, body).await,
            Call::Switch(body) => switch(state, body, started).await,
            Call::Resume(body) => resume(state, body),
            Call::Standby(report) => super::standby::put(state, report),
            Call::PutUpstream { name, body } => super::upstreams::put(state, &name, body),
        }
    }
}

fn audit(state: &AdminState, peer: SocketAddr, path: &str, resp: &Response<Body>, started: Instant) {
    info!(
        target: "pgflip::audit",
        peer = %peer,
        route = path,
        status = resp.status().as_u16(),
        generation = state.ctx.registry.snapshot().generation,
        duration_ms = started.elapsed().as_millis() as u64,
        "admin call"
    );
}

async fn pause(state: &AdminState, body: PauseRequest) -> Response<Body> {
    let ctx = &state.ctx;
    if let Some(resp) = stale_generation(state, body.generation) {
        return resp;
    }
    let mut options =
        match pause_options(state, body.drain_timeout_ms, body.lease_ms, body.on_timeout, body.on_unmovable) {
            Ok(options) => options,
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        };
    match (&body.to, body.to_lacks) {
        (Some(to), lacks) => match ctx.registry.get(to) {
            Some(upstream) => (options.to, options.to_lacks) = (Some(upstream), lacks.map(std::sync::Arc::new)),
            None => return error(StatusCode::NOT_FOUND, format!("unknown upstream \"{to}\"")),
        },
        (None, Some(_)) => {
            return error(StatusCode::BAD_REQUEST, "to_lacks needs to: the upstream it describes".into())
        }
        (None, None) => {}
    }
    let generation = ctx.registry.snapshot().generation;
    match switch::pause(ctx, options).await {
        Ok(paused) => json(
            StatusCode::OK,
            &PauseResponse {
                paused: true,
                error: None,
                parked: paused.parked,
                waited_ms: paused.waited.as_millis() as u64,
                lease_ms: paused.lease_until.saturating_duration_since(Instant::now()).as_millis() as u64,
                generation,
                blockers: Vec::new(),
                terminated: paused.terminated,
            },
        ),
        Err(failure) => json(
            StatusCode::CONFLICT,
            &PauseResponse {
                paused: false,
                error: Some(failure.reason),
                parked: 0,
                waited_ms: failure.waited.as_millis() as u64,
                lease_ms: 0,
                generation,
                blockers: failure.blockers,
                terminated: Vec::new(),
            },
        ),
    }
}

async fn switch(state: &AdminState, body: SwitchRequest, started: Instant) -> Response<Body> {
    let pause = match pause_options(state, body.drain_timeout_ms, body.lease_ms, body.on_timeout, body.on_unmovable) {
        Ok(pause) => pause,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let options = SwitchOptions {
        to: body.to.clone(),
        generation: body.generation,
        pause,
        move_timeout: state.ctx.limits.connect_timeout + Duration::from_secs(5),
    };
    let outcome = switch::switch(&state.ctx, options).await;
    let finished_at_unix_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let generation = state.ctx.registry.snapshot().generation;
    let report = match &outcome {
        Ok(done) => SwitchReport {
            result: if done.failed == 0 && done.unmoved == 0 { "ok" } else { "partial" }.to_owned(),
            to: body.to.clone(),
            generation: done.generation,
            moved: done.moved,
            failed: done.failed,
            held_ms: done.held.map(|d| d.as_millis() as u64),
            duration_ms: started.elapsed().as_millis() as u64,
            timings: timings_of(done),
            error: None,
            finished_at_unix_ms,
        },
        Err(e) => SwitchReport {
            result: "refused".to_owned(),
            to: body.to.clone(),
            generation,
            moved: 0,
            failed: 0,
            held_ms: None,
            duration_ms: started.elapsed().as_millis() as u64,
            timings: SwitchTimings::default(),
            error: Some(e.to_string()),
            finished_at_unix_ms,
        },
    };
    *state.ctx.last_switch.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    match outcome {
        Ok(done) => json(
            StatusCode::OK,
            &SwitchResponse {
                from: done.from.clone(),
                to: body.to,
                generation: done.generation,
                moved: done.moved,
                failed: done.failed,
                unmoved: done.unmoved,
                held_ms: done.held.map(|d| d.as_millis() as u64),
                duration_ms: started.elapsed().as_millis() as u64,
                timings: timings_of(&done),
            },
        ),
        Err(e) => {
            state.ctx.metrics.switches.with_label_values(&["refused"]).inc();
            let code = match &e {
                SwitchError::Unknown(_) => StatusCode::NOT_FOUND,
                SwitchError::Unreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                SwitchError::Repoint(_) | SwitchError::Pause(_) => StatusCode::CONFLICT,
            };
            match e {
                SwitchError::Pause(failure) => {
                    json(code, &serde_json::json!({"error": failure.reason, "blockers": failure.blockers}))
                }
                other => error(code, other.to_string()),
            }
        }
    }
}

fn resume(state: &AdminState, body: ResumeRequest) -> Response<Body> {
    if let Some(resp) = stale_generation(state, body.generation) {
        return resp;
    }
    let held = switch::resume(&state.ctx);
    json(
        StatusCode::OK,
        &ResumeResponse {
            resumed: held.is_some(),
            held_ms: held.map(|d| d.as_millis() as u64),
            generation: state.ctx.registry.snapshot().generation,
        },
    )
}

/// The pause a request asks for; the reason (naming `max_pause_lease` when it asks for
/// more) for a 400 otherwise.
fn pause_options(
    state: &AdminState,
    drain_timeout_ms: Option<u64>,
    lease_ms: Option<u64>,
    on_timeout: Option<OnTimeout>,
    on_unmovable: Option<OnUnmovable>,
) -> Result<PauseOptions, String> {
    let max = state.config.max_pause_lease;
    let drain = drain_timeout_ms.map_or(DEFAULT_DRAIN.min(max), Duration::from_millis);
    let lease = lease_ms.map_or(DEFAULT_LEASE.min(max), Duration::from_millis);
    if lease.is_zero() {
        return Err("lease_ms must be above 0".into());
    }
    for (key, asked) in [("lease_ms", lease), ("drain_timeout_ms", drain)] {
        if asked > max {
            state.metrics.rejected(Rejection::Lease);
            let message = format!(
                "{key} {} is above the sidecar's max_pause_lease ({}, {} ms): ask for less, or raise \
                 max_pause_lease in the sidecar's config",
                asked.as_millis(),
                crate::duration::display(max),
                max.as_millis()
            );
            return Err(message);
        }
    }
    Ok(PauseOptions {
        drain_timeout: drain,
        lease,
        on_timeout: on_timeout.unwrap_or_default(),
        on_unmovable: on_unmovable.unwrap_or_default(),
        to: None,
        to_lacks: None,
    })
}

/// 409 when the request names a generation other than the current one.
pub(super) fn stale_generation(state: &AdminState, given: Option<u64>) -> Option<Response<Body>> {
    let current = state.ctx.registry.snapshot().generation;
    match given {
        Some(given) if given != current => Some(json(
            StatusCode::CONFLICT,
            &ErrorBody { error: format!("stale generation {given}: the sidecar is at generation {current}") },
        )),
        _ => None,
    }
}

/// Reads a JSON body; an empty body is `{}`. 400 with the parser's message otherwise, 408
/// when it does not arrive within `admin_body_timeout`.
async fn read_json<T: DeserializeOwned + Default>(
    state: &AdminState,
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let timeout = state.config.body_timeout;
    let bytes = match tokio::time::timeout(timeout, Limited::new(req.into_body(), MAX_BODY).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => return Err(error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))),
        Err(_) => {
            state.metrics.rejected(Rejection::BodyTimeout);
            let message = format!(
                "the request body did not arrive within admin_body_timeout ({})",
                crate::duration::display(timeout)
            );
            return Err(error(StatusCode::REQUEST_TIMEOUT, message));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn timings_of(done: &switch::Switched) -> SwitchTimings {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    SwitchTimings {
        prewarm_ms: done.timings.prewarm.map(ms),
        drain_ms: done.timings.drain.map(ms),
        move_ms: ms(done.timings.moving),
    }
}
