//! The switches: `POST /v1/switch` alternately to green and blue at a fixed cadence, each
//! call timed from the outside and its answer kept.

use crate::support::Proxy;
use pgflip::api::SwitchResponse;
use std::time::{Duration, Instant};

/// One switch call as the bench saw it.
pub struct SwitchCall {
    pub to: &'static str,
    /// When the request was sent and when its answer arrived, since the run's epoch.
    pub sent: Duration,
    pub answered: Duration,
    /// HTTP status, 0 when the request itself failed.
    pub status: u16,
    /// The parsed answer of a 200, or what went wrong.
    pub outcome: Result<SwitchResponse, String>,
}

impl SwitchCall {
    /// Wall time of the call, from request sent to answer read.
    pub fn duration(&self) -> Duration {
        self.answered.saturating_sub(self.sent)
    }

    /// When clients began to be held: `held_ms` before the answer (the proxy resumes
    /// just before it answers), never earlier than the request. Without `held_ms`, the
    /// whole call counts.
    pub fn pause_began(&self) -> Duration {
        match &self.outcome {
            Ok(SwitchResponse { held_ms: Some(held), .. }) => {
                self.answered.saturating_sub(Duration::from_millis(*held)).max(self.sent)
            }
            _ => self.sent,
        }
    }

    /// Why this switch counts as failed, if it does: not a 200, or a session that failed
    /// to move or was still unmoved when the switch answered.
    pub fn problem(&self) -> Option<String> {
        match &self.outcome {
            Err(reason) => Some(reason.clone()),
            Ok(answer) if answer.failed > 0 || answer.unmoved > 0 => Some(format!(
                "{} sessions failed to move and {} were still unmoved (moved {})",
                answer.failed, answer.unmoved, answer.moved
            )),
            Ok(_) => None,
        }
    }
}

/// The upstream switch `index` (from 0) moves to: green first, then alternately.
pub fn target(index: usize) -> &'static str {
    if index % 2 == 0 {
        "green"
    } else {
        "blue"
    }
}

/// Runs `count` switches, one starting every `interval` (later when a call overruns).
pub fn run(proxy: &Proxy, count: usize, interval: Duration, epoch: Instant) -> Vec<SwitchCall> {
    let first = Instant::now();
    let mut calls = Vec::with_capacity(count);
    for index in 0..count {
        let due = first + interval * index as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        calls.push(call(proxy, target(index), epoch));
    }
    calls
}

/// One `POST /v1/switch` to `to`, timed from the outside.
pub fn call(proxy: &Proxy, to: &'static str, epoch: Instant) -> SwitchCall {
    let body = format!(r#"{{"to": "{to}"}}"#);
    let sent = epoch.elapsed();
    let answer = proxy.admin_post("/v1/switch", &body);
    let answered = epoch.elapsed();
    let (status, outcome) = match answer {
        Ok((200, text)) => (
            200,
            serde_json::from_str::<SwitchResponse>(&text)
                .map_err(|e| format!("the answer {:?} is not a switch answer: {e}", text.trim())),
        ),
        Ok((status, text)) => (status, Err(format!("HTTP {status}: {}", text.trim()))),
        Err(e) => (0, Err(format!("POST /v1/switch failed: {e}"))),
    };
    SwitchCall { to, sent, answered, status, outcome }
}
