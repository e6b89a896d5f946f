//! `PUT /v1/standby`: the controller's report on the standby (replicating, fenced or
//! retired, and its lag), which the standby listener's route follows.

use hyper::StatusCode;
use tracing::info;

use super::{error, json, AdminState, Body};
use crate::api::StandbyReport;

/// Records a report; answers the standby listener's status after it.
pub fn put(state: &AdminState, report: StandbyReport) -> hyper::Response<Body> {
    let ctx = &state.ctx;
    let Some(standby) = &ctx.standby else {
        // The controller reports to every sidecar; one without the listener has no use for it.
        return json(
            StatusCode::OK,
            &serde_json::json!({"ignored": true, "reason": "no standby listener is configured (listen_standby)"}),
        );
    };
    if let Err(e) = standby.report(&report, &ctx.registry, &ctx.metrics) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    info!(
        upstream = %report.upstream,
        state = report.state.as_str(),
        lag_seconds = report.lag_seconds,
        "standby reported"
    );
    json(StatusCode::OK, &standby.status(&ctx.registry, &ctx.sessions))
}
