//! `pgflip cutover standby-report`: every interval, reads the journal to find the standby,
//! measures the link that feeds it and reports the lag to every sidecar, following the
//! flips another `pgflip cutover` makes meanwhile; after promote it reports blue retired
//! once and stops.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio_postgres::Client;
use tracing::warn;

use crate::api::{StandbyReport, StandbyState};
use crate::controller::catchup::human_bytes;
use crate::controller::error::CutoverError;
use crate::controller::fleet::Fleet;
use crate::controller::journal::Journal;
use crate::controller::links::Link;
use crate::controller::names::LinkNames;
use crate::controller::pg;
use crate::controller::plan::Plan;

use super::{measure_link, Failures, LinkLag, Reported, Standby};

/// Runs rounds every `every` (one round when `None`) until `shutdown` resolves or blue is
/// retired. Each round prints one line to stderr.
pub async fn standby_report(
    plan_path: &Path,
    every: Option<Duration>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CutoverError> {
    let plan = Plan::load(plan_path)?;
    if plan.cutover.sidecars.is_empty() && plan.cutover.sidecars_dns.is_none() {
        return Err(CutoverError::Refused(
            "[cutover] sidecars and sidecars_dns name no sidecar: there is nobody to report the standby to".into(),
        ));
    }
    let mut reporting = Reporting { plan, publisher: None, failures: Failures::default() };
    tokio::pin!(shutdown);
    loop {
        let retired = tokio::select! {
            _ = &mut shutdown => break,
            retired = reporting.round() => retired?,
        };
        let Some(every) = every.filter(|_| !retired) else { return Ok(()) };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    println!("standby-report: stopped");
    Ok(())
}

/// What the rounds keep from one to the next.
struct Reporting {
    plan: Plan,
    /// The connection to the side that publishes the link measured last.
    publisher: Option<(&'static str, Client)>,
    failures: Failures,
}

impl Reporting {
    /// One report; `Ok(true)` once blue is retired: there is nothing more to report.
    async fn round(&mut self) -> Result<bool, CutoverError> {
        let journal = Journal::open(&self.plan.journal.path)?;
        let names = LinkNames::resolve(&self.plan, &journal);
        let link = match Standby::from_journal(&journal, &names)? {
            Standby::Flipping(phase) => {
                println!("standby: the {phase} is under way; nothing reported until it is finished or undone");
                return Ok(false);
            }
            Standby::Retired => {
                let reported = self.send("blue", StandbyState::Retired, None).await;
                println!("standby blue: retired, {reported}");
                return Ok(true);
            }
            Standby::Replicating(link) => link,
        };
        let lag = match self.measure(link).await {
            Ok(lag) => Some(lag),
            Err(e) => {
                warn!(link = link.name, error = %e, "measuring the standby's lag failed; reporting it as unknown");
                None
            }
        };
        let reported = self.send(link.to, StandbyState::Replicating, lag.and_then(|l| l.seconds)).await;
        println!("{}", line(link, lag.as_ref(), reported));
        Ok(false)
    }

    /// Measures `link` on its publisher, connecting when the publisher changed or the last
    /// connection was lost; a failed connection is dropped, so the next round connects again.
    async fn measure(&mut self, link: Link<'_>) -> Result<LinkLag, CutoverError> {
        let reusable = self.publisher.as_ref().is_some_and(|(side, client)| *side == link.from && !client.is_closed());
        if !reusable {
            self.publisher = None;
            let config = if link.from == "blue" { self.plan.blue_config() } else { self.plan.green_config() };
            self.publisher = Some((link.from, pg::connect(&config, link.from).await?));
        }
        let (_, client) = self.publisher.as_ref().expect("connected above");
        let measured = measure_link(client, link).await;
        if measured.is_err() {
            self.publisher = None;
        }
        measured
    }

    /// Reports `side` to the sidecars found now (they may come and go between rounds).
    async fn send(&mut self, side: &str, state: StandbyState, lag_seconds: Option<f64>) -> Reported {
        let fleet = match Fleet::discover(&self.plan.cutover).await {
            Ok(fleet) => fleet,
            Err(e) => {
                warn!(error = %e, "cannot find the sidecars to report the standby to");
                return Reported { took: 0, of: 0 };
            }
        };
        let report = StandbyReport { upstream: self.plan.cutover.upstream_name(side).to_owned(), state, lag_seconds };
        self.failures.report(&fleet, &report).await
    }
}

/// `standby green: lag 0.4 s (12.0 KiB), reported to 3 of 3 sidecars`; `lag` is `None` when
/// it could not be measured.
pub(super) fn line(link: Link, lag: Option<&LinkLag>, reported: Reported) -> String {
    let lag = match lag {
        None => "lag not measured".to_owned(),
        Some(lag) => {
            let bytes = match lag.bytes {
                Some(bytes) => human_bytes(bytes),
                None => format!("no slot {}", link.name),
            };
            match lag.seconds {
                Some(seconds) => format!("lag {seconds:.1} s ({bytes})"),
                None => format!("lag unknown ({bytes}, not streaming)"),
            }
        }
    };
    format!("standby {}: {lag}, {reported}", link.to)
}

/// `--interval`: a positive duration, in seconds or with a unit (`500ms`, `10s`, `1m`).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    match crate::duration::parse_flag(text)? {
        interval if interval.is_zero() => Err(format!("{text:?} is not longer than 0")),
        interval => Ok(interval),
    }
}
