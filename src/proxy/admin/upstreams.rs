//! `PUT /v1/upstreams/{name}`: add an upstream or give one another address, only to a host
//! `allowed_upstream_hosts` allows (403 otherwise). The secrets file's passwords do not
//! follow an upstream to an address it was not configured with, unless
//! `secrets_follow_readdress` says so (see [`crate::proxy::upstream::SecretScope`]).

use hyper::{Response, StatusCode};
use tracing::{info, warn};

use super::control::stale_generation;
use super::limits::Rejection;
use super::{error, json, upstream_status, AdminState, Body};
use crate::api::{PutUpstreamRequest, PutUpstreamResponse};
use crate::proxy::upstream::{check_name, Upstream, UpstreamUrl};

/// Adds or replaces the upstream `name`.
pub fn put(state: &AdminState, name: &str, body: PutUpstreamRequest) -> Response<Body> {
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
    // Before anything is read for it (a CA file): a refused host costs nothing.
    let allowed = &state.config.allowed_upstream_hosts;
    if !allowed.allows(&url.host) {
        state.metrics.rejected(Rejection::UpstreamHost);
        warn!(upstream = name, host = %url.host, "upstream refused: host not in allowed_upstream_hosts");
        let message = format!(
            "host {:?} is not in the sidecar's allowed_upstream_hosts ({allowed}): add it to allowed_upstream_hosts \
             in the sidecar's config to point upstreams at it",
            url.host
        );
        return error(StatusCode::FORBIDDEN, message);
    }
    let upstream = match Upstream::new(name, url) {
        Ok(upstream) => upstream,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let ctx = &state.ctx;
    // Logins to it then use the URL's credentials only.
    let secrets_withheld = !ctx.secret_scope.allows(&upstream);
    let created = ctx.registry.upsert(upstream);
    let snapshot = ctx.registry.snapshot();
    ctx.metrics.set_active(snapshot.upstreams.iter().map(|u| &u.name), &snapshot.active, snapshot.generation);
    let Some(stored) = snapshot.upstreams.iter().find(|u| u.name == name) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("upstream {name:?} vanished after being stored"));
    };
    info!(
        upstream = name,
        address = %stored.url.address(),
        created,
        secrets_withheld,
        "upstream registered"
    );
    json(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        &PutUpstreamResponse {
            upstream: upstream_status(stored, &snapshot.active),
            created,
            generation: snapshot.generation,
        },
    )
}
