//! The validation window after a cutover: the plan's checks and the built-in table
//! checksums (retried under live writes until they pass or the window ends; only the
//! last result counts), and the sidecars' error rate over the window from their /metrics.
//! A failure rolls back by itself when `[validate] auto_rollback` is on.

use std::time::{Duration, Instant};

use serde_json::json;
use tracing::{info, warn};

use super::error::CutoverError;
use super::fleet::Fleet;
use super::phase::Phase;
use super::runner::Context;
use super::{pg, validate};

/// Client errors and transactions summed over every sidecar that answered.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    errors: f64,
    transactions: f64,
}

/// Runs the window; `Err` when validation failed (after rolling back, when configured).
pub async fn run(ctx: &mut Context) -> Result<(), CutoverError> {
    let section = ctx.plan.validate.clone();
    let blue = pg::connect(&ctx.plan.blue_config(), "blue").await?;
    let green = pg::connect(&ctx.plan.green_config(), "green").await?;
    let fleet = Fleet::discover(&ctx.plan.cutover).await?;
    let started = Instant::now();
    let end = started + section.window;
    let before = counts(&fleet).await;
    let mut tables = if section.table_checksums { validate::common_tables(&blue, &green).await? } else { Vec::new() };
    // Tables whose writes stay on green ([cutover] one_way_tables) differ from blue by design.
    let one_way: Vec<String> = ctx
        .journal
        .fact(Phase::Cutover, "one_way")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if !one_way.is_empty() {
        tables.retain(|t| !one_way.contains(&format!("{}.{}", t.schema, t.name)));
        ctx.progress.line(format_args!(
            "validation leaves out one-way tables (their writes stay on green): {}",
            one_way.join(", ")
        ));
    }
    info!(checks = section.checks.len(), tables = tables.len(), window_s = section.window.as_secs_f64(), "validating");
    let mut point_problem = None;
    let snapshots = if section.consistent_point {
        match validate::point::take(ctx, &fleet).await {
            Ok(snapshots) => {
                ctx.journal.set_fact(Phase::Validate, "point_pause_ms", json!(snapshots.pause.as_millis() as u64))?;
                Some(snapshots)
            }
            Err(e) => {
                // The checks still run, live, to show what they can; the validation fails.
                warn!(error = %e, "no consistent point for the validation");
                point_problem = Some(format!("no consistent point for the checks ({e})"));
                None
            }
        }
    } else {
        None
    };
    // On matching snapshots a check gives the same answer every time: one round.
    let deadline = if snapshots.is_some() { Instant::now() } else { end };
    let report = validate::run_checks(&blue, &green, &section, &tables, deadline, snapshots.as_ref()).await?;
    drop(snapshots);
    tokio::time::sleep_until(end.into()).await;
    let after = counts(&fleet).await;
    let transactions = (after.transactions - before.transactions).max(0.0);
    let errors = (after.errors - before.errors).max(0.0);
    let rate = if transactions > 0.0 { errors / transactions } else { 0.0 };
    ctx.progress.line(&report);
    ctx.progress.line(format_args!(
        "sidecars: {errors:.0} client errors in {transactions:.0} transactions over the window (rate {:.4}, limit {})",
        rate, section.max_error_rate
    ));
    ctx.journal.set_fact(Phase::Validate, "error_rate", json!(rate))?;
    ctx.journal.set_fact(Phase::Validate, "checks", json!(report.outcomes.len()))?;
    ctx.journal.set_fact(Phase::Validate, "transactions", json!(transactions as u64))?;
    ctx.journal.set_fact(
        Phase::Validate,
        "failed_checks",
        json!(report.failed().map(|c| c.name.clone()).collect::<Vec<_>>()),
    )?;
    let mut problems: Vec<String> = point_problem.into_iter().collect();
    problems.extend(report.failed().map(|c| format!("check {:?} failed", c.name)));
    if rate > section.max_error_rate {
        problems
            .push(format!("client error rate {rate:.4} is above [validate] max_error_rate {}", section.max_error_rate));
    }
    if problems.is_empty() {
        info!(elapsed_s = started.elapsed().as_secs_f64(), "validation passed");
        return Ok(());
    }
    let summary = problems.join("; ");
    if !section.auto_rollback {
        return Err(CutoverError::Refused(format!(
            "validation failed: {summary}. Green still serves; roll back with `pgflip cutover --plan PLAN rollback`"
        )));
    }
    warn!(problems = %summary, "validation failed: rolling back");
    super::runner::rollback_in(ctx).await?;
    Err(CutoverError::Refused(format!("validation failed: {summary}. Rolled back: blue serves again")))
}

/// Sums `pgflip_client_errors_total` and the count of `pgflip_transaction_seconds` over
/// every sidecar; one that does not answer is left out (and logged).
async fn counts(fleet: &Fleet) -> Counts {
    let mut total = Counts::default();
    for answer in fleet.metrics(Duration::from_secs(10)).await {
        match answer {
            Ok(text) => {
                total.errors += sum(&text, "pgflip_client_errors_total");
                total.transactions += sum(&text, "pgflip_transaction_seconds_count");
            }
            Err(e) => warn!(error = %e, "reading a sidecar's metrics failed"),
        }
    }
    total
}

/// The sum of every sample of `name` in a Prometheus text exposition.
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::sum;

    #[test]
    fn sums_every_labelled_sample_of_one_family() {
        let text = "# HELP pgflip_client_errors_total x\n# TYPE pgflip_client_errors_total counter\n\
                    pgflip_client_errors_total{class=\"23\"} 2\npgflip_client_errors_total{class=\"57\"} 3\n\
                    pgflip_client_errors_total_other 9\npgflip_transaction_seconds_count 40\n";
        assert_eq!(sum(text, "pgflip_client_errors_total"), 5.0);
        assert_eq!(sum(text, "pgflip_transaction_seconds_count"), 40.0);
        assert_eq!(sum(text, "missing"), 0.0);
    }
}
