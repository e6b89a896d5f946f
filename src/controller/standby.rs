//! The standby: the side writes do not go to, fed by one replication link (green by the
//! forward link before the cutover, blue by the reverse link after it). The controller
//! measures how far it trails and reports it to every sidecar (`PUT /v1/standby`), whose
//! standby listener sends read-only sessions there while the lag allows.
//!
//! Reports are best effort: a sidecar that misses one keeps its last report, so a failed
//! report is a warning and never fails a phase.
//!
//! - [`Standby::from_journal`]: which side is the standby now.
//! - [`measure_link`]: a link's lag, in bytes and seconds.
//! - [`report`], [`report_fed_by`]: one report to the fleet; [`Reporter`]: reports from a
//!   loop, in the background, at most once a second.
//! - [`command`]: `pgflip cutover standby-report`.

pub mod command;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tracing::warn;

use crate::api::{StandbyReport, StandbyState};

use super::error::CutoverError;
use super::fleet::{Fleet, SidecarError};
use super::journal::Journal;
use super::links::Link;
use super::names::LinkNames;
use super::phase::Phase;
use super::plan::CutoverSection;

/// Deadline of one sidecar's answer to a report.
const REPORT_DEADLINE: Duration = Duration::from_secs(5);
/// The shortest time between two reports of a [`Reporter`].
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Which side is the standby, as the journal tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standby<'a> {
    /// The link's subscriber (`link.to`) is the standby, fed by the link.
    Replicating(Link<'a>),
    /// Blue, after promote: gone for good.
    Retired,
    /// A flip (cutover or rollback) is under way or died half way: which side serves is
    /// not settled until it is finished or undone.
    Flipping(Phase),
}

impl<'a> Standby<'a> {
    /// Reads the journal: after promote blue is retired; while green serves blue is fed by
    /// the reverse link; otherwise (before the cutover, or after a rollback) green is fed by
    /// the forward link. Refused before any catch-up: nothing replicates into green yet.
    pub fn from_journal(journal: &Journal, names: &'a LinkNames) -> Result<Standby<'a>, CutoverError> {
        if journal.completed(Phase::Promote) {
            return Ok(Standby::Retired);
        }
        if journal.abandon().is_some() {
            return Err(CutoverError::Refused(
                "this plan's cutover was abandoned: nothing replicates, there is no standby to report".into(),
            ));
        }
        for phase in [Phase::Cutover, Phase::Rollback] {
            if journal.fact(phase, "step").is_some_and(|step| !step.is_null()) {
                return Ok(Standby::Flipping(phase));
            }
        }
        if journal.phase(Phase::Catchup).is_none() {
            return Err(CutoverError::Refused(format!(
                "no catch-up has run yet (journal {}): nothing replicates into green, so there is no standby to \
                 report; run `pgflip cutover --plan PLAN run --until catchup` first",
                journal.path().display()
            )));
        }
        Ok(Standby::Replicating(if green_serves(journal) { names.reverse() } else { names.forward() }))
    }

    /// The standby side (`blue` or `green`), when settled.
    pub fn side(self) -> Option<&'static str> {
        match self {
            Standby::Replicating(link) => Some(link.to),
            Standby::Retired => Some("blue"),
            Standby::Flipping(_) => None,
        }
    }
}

/// Whether the last finished flip went to green: more cutovers than rollbacks finished.
/// A flip counts (fact `flips`) the moment it clears its step, before its phase is marked
/// done, so a report made in between already names the right side.
pub fn green_serves(journal: &Journal) -> bool {
    let flips = |phase| journal.fact(phase, "flips").and_then(|v| v.as_u64()).unwrap_or(0);
    flips(Phase::Cutover) > flips(Phase::Rollback)
}

/// How far a link's subscriber trails its publisher.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkLag {
    /// The publisher's WAL position past the slot's confirmed flush; `None` without the slot.
    pub bytes: Option<i64>,
    /// The walsender's replay lag; 0 once it has caught up, `None` when no walsender streams
    /// the link (its subscriber is not connected).
    pub seconds: Option<f64>,
}

/// Measures `link` on its publisher. The slot and the walsender both bear the link's name
/// (a subscription's walsender takes the subscription's name as its `application_name`).
pub async fn measure_link(publisher: &Client, link: Link<'_>) -> Result<LinkLag, CutoverError> {
    let sql = "SELECT \
         (SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint \
            FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1), \
         (SELECT count(*) FROM pg_catalog.pg_stat_replication r WHERE r.application_name = $2), \
         (SELECT EXTRACT(EPOCH FROM max(r.replay_lag))::float8 \
            FROM pg_catalog.pg_stat_replication r WHERE r.application_name = $2)";
    let row = publisher
        .query_one(sql, &[&link.name, &link.name])
        .await
        .map_err(CutoverError::sql(format!("measuring the lag of replication {} -> {}", link.from, link.to)))?;
    let bytes: Option<i64> = row.get(0);
    Ok(LinkLag { bytes: bytes.map(|b| b.max(0)), seconds: replay_seconds(row.get(1), row.get(2)) })
}

/// A walsender's replay lag in seconds: PostgreSQL shows NULL once the subscriber has
/// replayed everything (caught up: 0); no walsender at all means the lag is unknown.
fn replay_seconds(walsenders: i64, replay_lag: Option<f64>) -> Option<f64> {
    if walsenders == 0 {
        None
    } else {
        Some(replay_lag.unwrap_or(0.0).max(0.0))
    }
}

/// How many sidecars took a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    pub took: usize,
    pub of: usize,
}

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reported to {} of {} sidecars", self.took, self.of)
    }
}

/// The sidecars whose last report failed, with why: a failure is logged when it begins or
/// changes, not at every report.
#[derive(Debug, Default)]
pub struct Failures {
    last: HashMap<String, String>,
}

impl Failures {
    /// Whether `outcome` (the failure's message, or `None` when the sidecar took the
    /// report) is worth a warning: a failure that is new or different from the last one.
    fn is_news(&mut self, sidecar: &str, outcome: Option<&str>) -> bool {
        match outcome {
            None => {
                self.last.remove(sidecar);
                false
            }
            Some(message) if self.last.get(sidecar).is_some_and(|last| last == message) => false,
            Some(message) => {
                self.last.insert(sidecar.to_owned(), message.to_owned());
                true
            }
        }
    }

    /// Sends `report` to every sidecar of `fleet`, warning about failures that are news.
    pub async fn report(&mut self, fleet: &Fleet, report: &StandbyReport) -> Reported {
        let answers = fleet.report_standby(report, REPORT_DEADLINE).await;
        let mut took = 0;
        for (sidecar, answer) in fleet.sidecars.iter().zip(&answers) {
            let error = answer.as_ref().err().map(|e: &SidecarError| e.message.as_str());
            took += usize::from(error.is_none());
            if self.is_news(&sidecar.to_string(), error) {
                warn!(
                    sidecar = %sidecar,
                    upstream = %report.upstream,
                    state = report.state.as_str(),
                    error = error.unwrap_or_default(),
                    "reporting the standby failed; the sidecar keeps its last report"
                );
            }
        }
        Reported { took, of: answers.len() }
    }
}

/// Sends one report on `upstream` to every sidecar, warning about each that did not take it.
pub async fn report(fleet: &Fleet, upstream: &str, state: StandbyState, lag_seconds: Option<f64>) -> Reported {
    let report = StandbyReport { upstream: upstream.to_owned(), state, lag_seconds };
    Failures::default().report(fleet, &report).await
}

/// Reports `upstream`, the side `link` feeds, as replicating with the link's lag measured on
/// `publisher`. Right after a flip that side holds everything but the writes since the
/// resume, so a lag that cannot be measured yet is reported as 0.
pub async fn report_fed_by(fleet: &Fleet, upstream: &str, publisher: &Client, link: Link<'_>) -> Reported {
    let seconds = match measure_link(publisher, link).await {
        Ok(lag) => lag.seconds.unwrap_or(0.0),
        Err(e) => {
            warn!(link = link.name, error = %e, "measuring the standby's lag failed; reporting it as caught up");
            0.0
        }
    };
    report(fleet, upstream, StandbyState::Replicating, Some(seconds)).await
}

/// The plan's sidecars to report to; `None` (after a warning) when they cannot be found or
/// there are none: reports are best effort.
pub async fn fleet(section: &CutoverSection) -> Option<Fleet> {
    match Fleet::discover(section).await {
        Ok(fleet) if fleet.sidecars.is_empty() => None,
        Ok(fleet) => Some(fleet),
        Err(e) => {
            warn!(error = %e, "cannot find the sidecars to report the standby to");
            None
        }
    }
}

/// Reports one upstream from a loop that must not wait on the sidecars (the catch-up):
/// each report runs in the background, at most one at a time and one a second; an offer
/// made meanwhile is dropped.
pub struct Reporter {
    fleet: Option<Fleet>,
    upstream: String,
    last: Option<Instant>,
    running: Option<JoinHandle<Failures>>,
    failures: Failures,
}

impl Reporter {
    /// A reporter on `upstream` to the plan's sidecars (none found: offers do nothing).
    pub async fn start(section: &CutoverSection, upstream: &str) -> Reporter {
        Reporter {
            fleet: fleet(section).await,
            upstream: upstream.to_owned(),
            last: None,
            running: None,
            failures: Failures::default(),
        }
    }

    /// Reports `state` and `lag_seconds` unless the last report is under a second old or
    /// still on its way.
    pub async fn offer(&mut self, state: StandbyState, lag_seconds: Option<f64>) {
        let Some(fleet) = &self.fleet else { return };
        if let Some(running) = self.running.take() {
            if !running.is_finished() {
                self.running = Some(running);
                return;
            }
            self.failures = running.await.unwrap_or_default();
        }
        if self.last.is_some_and(|last| last.elapsed() < REPORT_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let (fleet, mut failures) = (fleet.clone(), std::mem::take(&mut self.failures));
        let report = StandbyReport { upstream: self.upstream.clone(), state, lag_seconds };
        self.running = Some(tokio::spawn(async move {
            failures.report(&fleet, &report).await;
            failures
        }));
    }
}

impl Drop for Reporter {
    /// A report still on its way is dropped, so that it cannot land after a later one
    /// (the flip's) sent from elsewhere.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}
