//! The mutating admin routes: `POST /v1/pause`, `POST /v1/resume`, `POST /v1/switch`,
//! `PUT /v1/upstreams/{name}` and `PUT /v1/standby`, with their JSON bodies, the generation check, and one audit
//! event per call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use tracing::info;

use super::{error, json, upstream_status, AdminState, Body};
use crate::api::{
    ErrorBody, OnTimeout, OnUnmovable, PauseRequest, PauseResponse, PutUpstreamRequest, PutUpstreamResponse,
    ResumeRequest, ResumeResponse, SwitchReport, SwitchRequest, SwitchResponse, SwitchTimings,
};
use crate::proxy::switch::{self, PauseOptions, SwitchError, SwitchOptions};
use crate::proxy::upstream::{check_name, Upstream, UpstreamUrl};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Longest lease or drain a request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Runs a mutating route and logs its audit event.
pub async fn handle(state: &AdminState, peer: SocketAddr, path: &str, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let resp = match path {
        "/v1/pause" => match read_json::<PauseRequest>(req).await {
            Ok(body) => pause(state, body).await,
            Err(resp) => resp,
        },
        "/v1/switch" => match read_json::<SwitchRequest>(req).await {
            Ok(body) => switch(state, body, started).await,
            Err(resp) => resp,
        },
        "/v1/resume" => match read_json::<ResumeRequest>(req).await {
            Ok(body) => resume(state, body),
            Err(resp) => resp,
        },
        "/v1/standby" => match read_json::<Option<crate::api::StandbyReport>>(req).await {
            Ok(Some(body)) => super::standby::put(state, body),
            Ok(None) => error(
                StatusCode::BAD_REQUEST,
                r#"the body must be {"upstream": NAME, "state": "replicating"|"fenced"|"retired", "lag_seconds": N}"#
                    .into(),
            ),
            Err(resp) => resp,
        },
        _ => {
            let name = path.trim_start_matches("/v1/upstreams/").to_owned();
            match read_json::<PutUpstreamRequest>(req).await {
                Ok(body) => put_upstream(state, &name, body),
                Err(resp) => resp,
            }
        }
    };
    info!(
        target: "pgflip::audit",
        peer = %peer,
        route = path,
        status = resp.status().as_u16(),
        generation = state.ctx.registry.snapshot().generation,
        duration_ms = started.elapsed().as_millis() as u64,
        "admin call"
    );
    resp
}

async fn pause(state: &AdminState, body: PauseRequest) -> Response<Body> {
    let ctx = &state.ctx;
    if let Some(resp) = stale_generation(state, body.generation) {
        return resp;
    }
    let mut options = match pause_options(body.drain_timeout_ms, body.lease_ms, body.on_timeout, body.on_unmovable) {
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
    let pause = match pause_options(body.drain_timeout_ms, body.lease_ms, body.on_timeout, body.on_unmovable) {
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

fn put_upstream(state: &AdminState, name: &str, body: PutUpstreamRequest) -> Response<Body> {
    if let Some(resp) = stale_generation(state, body.generation) {
        return resp;
    }
    if let Err(e) = check_name(name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let url = match UpstreamUrl::parse(&body.url) {
        Ok(url) => url,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("url {e}")),
    };
    let upstream = match Upstream::new(name, url) {
        Ok(upstream) => upstream,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let ctx = &state.ctx;
    let created = ctx.registry.upsert(upstream);
    let snapshot = ctx.registry.snapshot();
    ctx.metrics.set_active(snapshot.upstreams.iter().map(|u| &u.name), &snapshot.active, snapshot.generation);
    let Some(stored) = snapshot.upstreams.iter().find(|u| u.name == name) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("upstream {name:?} vanished after being stored"));
    };
    info!(upstream = name, address = %stored.url.address(), created, "upstream registered");
    json(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        &PutUpstreamResponse {
            upstream: upstream_status(stored, &snapshot.active),
            created,
            generation: snapshot.generation,
        },
    )
}

fn pause_options(
    drain_timeout_ms: Option<u64>,
    lease_ms: Option<u64>,
    on_timeout: Option<OnTimeout>,
    on_unmovable: Option<OnUnmovable>,
) -> Result<PauseOptions, String> {
    let drain = Duration::from_millis(drain_timeout_ms.unwrap_or(DEFAULT_DRAIN.as_millis() as u64));
    let lease = Duration::from_millis(lease_ms.unwrap_or(DEFAULT_LEASE.as_millis() as u64));
    if drain > MAX_WAIT || lease > MAX_WAIT || lease.is_zero() {
        return Err("drain_timeout_ms and lease_ms must be at most 3600000, and lease_ms above 0".into());
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
fn stale_generation(state: &AdminState, given: Option<u64>) -> Option<Response<Body>> {
    let current = state.ctx.registry.snapshot().generation;
    match given {
        Some(given) if given != current => Some(json(
            StatusCode::CONFLICT,
            &ErrorBody { error: format!("stale generation {given}: the sidecar is at generation {current}") },
        )),
        _ => None,
    }
}

/// Reads a JSON body; an empty body is `{}`. 400 with the parser's message otherwise.
async fn read_json<T: DeserializeOwned + Default>(req: Request<Incoming>) -> Result<T, Response<Body>> {
    let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Err(error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))),
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
