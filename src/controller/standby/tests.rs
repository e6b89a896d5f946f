//! Unit tests of the standby: which side it is by the journal, the replay lag's meaning,
//! the report line, and which failures are worth a warning.

use std::time::Duration;

use serde_json::json;

use super::command::{line, parse_interval};
use super::{replay_seconds, Failures, LinkLag, Reported, Standby};
use crate::controller::error::CutoverError;
use crate::controller::journal::Journal;
use crate::controller::names::LEGACY;
use crate::controller::phase::Phase;

/// A journal in `dir` where `phases` ran to their end, in order.
fn journal(dir: &tempfile::TempDir, phases: &[Phase]) -> Journal {
    let mut journal = Journal::open(&dir.path().join("journal.json")).unwrap();
    for &phase in phases {
        journal.start(phase).unwrap();
        journal.finish(phase).unwrap();
    }
    journal
}

/// Records a flip in `phase` the way the flip does: step by step, then one more finished
/// flip with the step cleared, then the phase's end.
fn flip(journal: &mut Journal, phase: Phase) {
    journal.start(phase).unwrap();
    journal.set_fact(phase, "step", json!("switching")).unwrap();
    let flips = journal.fact(phase, "flips").and_then(|v| v.as_u64()).unwrap_or(0);
    journal.set_fact(phase, "flips", json!(flips + 1)).unwrap();
    journal.set_fact(phase, "step", json!(null)).unwrap();
    journal.finish(phase).unwrap();
}

const UP_TO_CATCHUP: [Phase; 6] =
    [Phase::Preflight, Phase::Snapshot, Phase::Restore, Phase::Migrate, Phase::Smoke, Phase::Catchup];

#[test]
fn before_any_catch_up_there_is_no_standby() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(&dir, &UP_TO_CATCHUP[..5]);
    let err = Standby::from_journal(&journal, &LEGACY).unwrap_err();
    assert!(matches!(err, CutoverError::Refused(_)), "{err}");
    assert!(err.to_string().contains("no catch-up has run yet"), "{err}");
}

#[test]
fn green_is_the_standby_from_the_catch_up_until_the_cutover() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(&dir, &UP_TO_CATCHUP[..5]);
    journal.start(Phase::Catchup).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Replicating(LEGACY.forward()));
    journal.finish(Phase::Catchup).unwrap();
    journal.start(Phase::Cutover).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Replicating(LEGACY.forward()));
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap().side(), Some("green"));
}

#[test]
fn blue_is_the_standby_after_the_cutover_and_green_again_after_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(&dir, &UP_TO_CATCHUP);
    journal.start(Phase::Cutover).unwrap();
    journal.set_fact(Phase::Cutover, "step", json!("paused")).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Flipping(Phase::Cutover));
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap().side(), None);
    // Finished, before the phase is marked done: the sidecars already serve green.
    journal.set_fact(Phase::Cutover, "flips", json!(1)).unwrap();
    journal.set_fact(Phase::Cutover, "step", json!(null)).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Replicating(LEGACY.reverse()));
    journal.finish(Phase::Cutover).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Replicating(LEGACY.reverse()));
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap().side(), Some("blue"));

    journal.start(Phase::Rollback).unwrap();
    journal.set_fact(Phase::Rollback, "step", json!("fenced")).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Flipping(Phase::Rollback));
    journal.set_fact(Phase::Rollback, "flips", json!(1)).unwrap();
    journal.set_fact(Phase::Rollback, "step", json!(null)).unwrap();
    assert_eq!(
        Standby::from_journal(&journal, &LEGACY).unwrap(),
        Standby::Replicating(LEGACY.forward()),
        "before the cutover reopens"
    );
    journal.finish(Phase::Rollback).unwrap();
    journal.reopen(Phase::Cutover).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Replicating(LEGACY.forward()));

    flip(&mut journal, Phase::Cutover);
    assert_eq!(
        Standby::from_journal(&journal, &LEGACY).unwrap(),
        Standby::Replicating(LEGACY.reverse()),
        "the second cutover"
    );
}

#[test]
fn an_undone_flip_leaves_the_standby_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(&dir, &UP_TO_CATCHUP);
    journal.start(Phase::Cutover).unwrap();
    journal.set_fact(Phase::Cutover, "step", json!("attached")).unwrap();
    journal.set_fact(Phase::Cutover, "step", json!(null)).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Replicating(LEGACY.forward()));
}

#[test]
fn blue_is_retired_after_promote() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(&dir, &UP_TO_CATCHUP);
    flip(&mut journal, Phase::Cutover);
    journal.start(Phase::Validate).unwrap();
    journal.finish(Phase::Validate).unwrap();
    journal.start(Phase::Promote).unwrap();
    assert_eq!(
        Standby::from_journal(&journal, &LEGACY).unwrap(),
        Standby::Replicating(LEGACY.reverse()),
        "promote not done yet"
    );
    journal.finish(Phase::Promote).unwrap();
    assert_eq!(Standby::from_journal(&journal, &LEGACY).unwrap(), Standby::Retired);
    assert_eq!(Standby::Retired.side(), Some("blue"));
}

#[test]
fn a_null_replay_lag_means_caught_up_and_no_walsender_means_unknown() {
    assert_eq!(replay_seconds(1, Some(0.25)), Some(0.25));
    assert_eq!(replay_seconds(1, None), Some(0.0));
    assert_eq!(replay_seconds(0, None), None);
    assert_eq!(replay_seconds(2, Some(-1.0)), Some(0.0));
}

#[test]
fn the_report_line_names_the_side_the_lag_and_the_sidecars() {
    let reported = Reported { took: 3, of: 3 };
    let lag = LinkLag { bytes: Some(12 * 1024), seconds: Some(0.42) };
    assert_eq!(
        line(LEGACY.forward(), Some(&lag), reported),
        "standby green: lag 0.4 s (12.0 KiB), reported to 3 of 3 sidecars"
    );
    let lag = LinkLag { bytes: Some(320), seconds: None };
    assert_eq!(
        line(LEGACY.reverse(), Some(&lag), Reported { took: 0, of: 2 }),
        "standby blue: lag unknown (320 B, not streaming), reported to 0 of 2 sidecars"
    );
    let lag = LinkLag { bytes: None, seconds: None };
    assert_eq!(
        line(LEGACY.reverse(), Some(&lag), reported),
        "standby blue: lag unknown (no slot pgflip_reverse, not streaming), reported to 3 of 3 sidecars"
    );
    assert_eq!(line(LEGACY.forward(), None, reported), "standby green: lag not measured, reported to 3 of 3 sidecars");
}

#[test]
fn a_failure_is_news_when_it_begins_or_changes() {
    let mut failures = Failures::default();
    assert!(failures.is_news("a", Some("404")));
    assert!(!failures.is_news("a", Some("404")), "the same failure again");
    assert!(failures.is_news("b", Some("404")), "another sidecar");
    assert!(failures.is_news("a", Some("connection refused")), "a different failure");
    assert!(!failures.is_news("a", None), "a success is never news");
    assert!(failures.is_news("a", Some("connection refused")), "failing again after a success");
}

#[test]
fn intervals_are_positive_durations() {
    assert_eq!(parse_interval("5"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_interval("0.25"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_interval("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
    for bad in ["0", "0ms", "-1", "x", "inf", "NaN", "1e30", "5 parsecs"] {
        assert!(parse_interval(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_abandoned_cutover_has_no_standby() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(&dir, &UP_TO_CATCHUP);
    journal.start_abandon().unwrap();
    let err = Standby::from_journal(&journal, &LEGACY).unwrap_err();
    assert!(err.to_string().contains("abandoned"), "{err}");
}
