//! The controller's phases as the demo runs them: one at a time, in this process, each
//! timed and told as one line; the flips with the write pause the controller measured and
//! the longest wait any client saw.

use std::path::Path;
use std::time::Instant;

use super::error::DemoError;
use super::postgres::LocalCluster;
use super::report::{Flip, PhaseTime};
use super::workload::Workload;
use super::{story, DemoArgs};
use crate::controller::journal::Journal;
use crate::controller::plan::Plan;
use crate::controller::{self, Phase, Progress};

/// The controller's progress lines go to the log: the demo tells its own story.
const PROGRESS: Progress = Progress::Log;

pub struct Runbook<'a> {
    pub plan: &'a Path,
    pub phases: Vec<PhaseTime>,
    pub flips: Vec<Flip>,
    /// The fleet pauses of the validations' consistent points, in ms.
    pub validation_pauses_ms: Vec<u64>,
    pub args: &'a DemoArgs,
    pub green: &'a LocalCluster,
    pub load: &'a Workload,
}

impl Runbook<'_> {
    pub async fn run_all(&mut self) -> Result<(), DemoError> {
        self.forward().await?;
        if self.args.rollback {
            self.flip("rollback", "blue").await?;
            self.forward().await?;
        }
        self.step("promote", Phase::Promote).await
    }

    /// Runs the phases of `pgflip cutover run` that are not done yet, validation included.
    async fn forward(&mut self) -> Result<(), DemoError> {
        for &phase in Phase::RUN {
            match phase {
                Phase::Cutover => self.flip("cutover", "green").await?,
                Phase::Validate => {
                    self.before_validate().await?;
                    let validated = self.step("validate", Phase::Validate).await;
                    if let Some(pause) = self.fact(Phase::Validate, "point_pause_ms") {
                        self.validation_pauses_ms.push(pause);
                    }
                    validated?;
                }
                _ if self.flips.is_empty() => self.step(phase.name(), phase).await?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs one phase and tells how it went.
    async fn step(&mut self, name: &str, phase: Phase) -> Result<(), DemoError> {
        let started = Instant::now();
        let result = match phase {
            Phase::Promote => controller::promote(self.plan, PROGRESS).await,
            _ => controller::run(self.plan, Some(phase), PROGRESS).await,
        };
        self.finished(name, started, phase, result)
    }

    /// A flip (cutover or rollback), told with the write pause the controller measured and
    /// the longest wait of any client meanwhile.
    async fn flip(&mut self, name: &str, to: &str) -> Result<(), DemoError> {
        let started = Instant::now();
        let from = self.load.epoch.elapsed();
        let (phase, result) = match to {
            "green" => (Phase::Cutover, controller::run(self.plan, Some(Phase::Cutover), PROGRESS).await),
            _ => (Phase::Rollback, controller::rollback(self.plan, PROGRESS).await),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.phases.push(PhaseTime { name: name.to_owned(), seconds });
        let result = result.map_err(|source| DemoError::Cutover { phase: name.to_owned(), source });
        if let Err(e) = &result {
            story::line(name, Some(seconds), &format!("FAILED: {e}"));
            return result;
        }
        let window = (from, self.load.epoch.elapsed());
        let write_pause_ms = self.fact(phase, "write_pause_ms").unwrap_or(0);
        let max_stall_ms = self.load.longest_wait(window).await;
        story::line(
            name,
            Some(seconds),
            &format!(
                "the application now talks to {to}: write pause {write_pause_ms} ms, longest client wait {max_stall_ms:.0} ms"
            ),
        );
        self.flips.push(Flip { to: to.to_owned(), write_pause_ms, max_stall_ms });
        Ok(())
    }

    fn finished(
        &mut self,
        name: &str,
        started: Instant,
        phase: Phase,
        result: Result<(), controller::CutoverError>,
    ) -> Result<(), DemoError> {
        let seconds = started.elapsed().as_secs_f64();
        self.phases.push(PhaseTime { name: name.to_owned(), seconds });
        match result {
            Ok(()) => {
                let detail = self.journal().map_or_else(|| "done".to_owned(), |j| story::phase_detail(&j, phase));
                story::line(name, Some(seconds), &detail);
                Ok(())
            }
            Err(source) => {
                story::line(name, Some(seconds), &format!("FAILED: {source}"));
                Err(DemoError::Cutover { phase: name.to_owned(), source })
            }
        }
    }

    fn journal(&self) -> Option<Journal> {
        let plan = Plan::load(self.plan).ok()?;
        Journal::open(&plan.journal.path).ok()
    }

    /// A number the controller recorded in its journal for `phase`.
    fn fact(&self, phase: Phase, key: &str) -> Option<u64> {
        self.journal()?.fact(phase, key).and_then(|value| value.as_u64())
    }

    async fn before_validate(&mut self) -> Result<(), DemoError> {
        let Some(command) = &self.args.before_validate else { return Ok(()) };
        story::line("before", None, &format!("--before-validate: {command}"));
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.green.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", "ledger")
            .status()
            .await
            .map_err(DemoError::io("running --before-validate"))?;
        if !status.success() {
            return Err(DemoError::Command {
                what: "--before-validate".into(),
                status: status.to_string(),
                output: String::new(),
            });
        }
        Ok(())
    }
}
