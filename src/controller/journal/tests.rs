//! Unit tests of the journal: round trips, resumption, atomic saves, errors naming the file.

use std::time::Duration;

use serde_json::json;

use super::*;

fn journal_in(dir: &tempfile::TempDir) -> (PathBuf, Journal) {
    let path = dir.path().join("pgflip-journal.json");
    let journal = Journal::open(&path).unwrap();
    (path, journal)
}

#[test]
fn missing_file_is_an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (path, journal) = journal_in(&dir);
    assert_eq!(journal.record(), &Record::default());
    assert_eq!(journal.next_phase(), Some(Phase::Preflight));
    assert!(!path.exists(), "opening alone writes nothing");
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut journal) = journal_in(&dir);
    journal.start(Phase::Preflight).unwrap();
    journal.finish(Phase::Preflight).unwrap();
    journal.start(Phase::Snapshot).unwrap();
    journal.set_fact(Phase::Snapshot, "slot", json!("pgflip")).unwrap();

    let reopened = Journal::open(&path).unwrap();
    assert_eq!(reopened.record(), journal.record());
    let preflight = reopened.phase(Phase::Preflight).unwrap();
    assert_eq!(preflight.attempts, 1);
    assert!(preflight.started_at.is_some() && preflight.ended_at.is_some() && preflight.duration_ms.is_some());
    assert_eq!(reopened.fact(Phase::Snapshot, "slot"), Some(&json!("pgflip")));
    assert_eq!(reopened.fact(Phase::Snapshot, "lsn"), None);

    let file: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(file["version"], json!(1));
    assert_eq!(file["phases"]["snapshot"]["facts"]["slot"], json!("pgflip"));
}

#[test]
fn resume_starts_at_the_first_unfinished_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut journal) = journal_in(&dir);
    for phase in [Phase::Preflight, Phase::Snapshot] {
        journal.start(phase).unwrap();
        journal.finish(phase).unwrap();
    }
    journal.start(Phase::Restore).unwrap();

    let reopened = Journal::open(&path).unwrap();
    assert!(reopened.completed(Phase::Snapshot));
    assert!(!reopened.completed(Phase::Restore));
    assert_eq!(reopened.next_phase(), Some(Phase::Restore));
}

#[test]
fn next_phase_is_none_once_all_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut journal) = journal_in(&dir);
    for phase in Phase::ALL {
        journal.start(phase).unwrap();
        journal.finish(phase).unwrap();
    }
    assert_eq!(journal.next_phase(), None);
}

#[test]
fn facts_survive_a_restart_of_the_phase() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut journal) = journal_in(&dir);
    journal.start(Phase::Snapshot).unwrap();
    journal.set_fact(Phase::Snapshot, "snapshot_lsn", json!("0/16B3748")).unwrap();
    drop(journal);

    let mut journal = Journal::open(&path).unwrap();
    journal.start(Phase::Snapshot).unwrap();
    let snapshot = journal.phase(Phase::Snapshot).unwrap();
    assert_eq!(snapshot.attempts, 2);
    assert_eq!(snapshot.ended_at, None);
    assert_eq!(journal.fact(Phase::Snapshot, "snapshot_lsn"), Some(&json!("0/16B3748")));
}

#[test]
fn finish_of_a_phase_started_elsewhere_has_no_duration() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut journal) = journal_in(&dir);
    journal.start(Phase::Restore).unwrap();
    let mut journal = Journal::open(&path).unwrap();
    journal.finish(Phase::Restore).unwrap();
    assert!(journal.completed(Phase::Restore));
    assert_eq!(journal.phase(Phase::Restore).unwrap().duration_ms, None);
}

#[test]
fn finish_without_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut journal) = journal_in(&dir);
    let err = journal.finish(Phase::Smoke).unwrap_err();
    assert!(matches!(err, JournalError::NotStarted { phase: Phase::Smoke, .. }), "{err}");
}

#[test]
fn save_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut journal) = journal_in(&dir);
    journal.start(Phase::Preflight).unwrap();
    journal.set_fact(Phase::Preflight, "tables", json!(12)).unwrap();
    assert!(path.exists());
    assert!(!tmp_path(&path).exists());
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["pgflip-journal.json"]);
}

#[test]
fn corrupt_file_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgflip-journal.json");
    fs::write(&path, "{\"version\": 1, \"phases\": ").unwrap();
    let err = Journal::open(&path).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }));
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");

    fs::write(&path, r#"{"version": 1, "phases": {"cutover": {}}}"#).unwrap();
    assert!(matches!(Journal::open(&path).unwrap_err(), JournalError::Corrupt { .. }));
}

#[test]
fn other_version_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgflip-journal.json");
    fs::write(&path, r#"{"version": 2, "phases": []}"#).unwrap();
    let err = Journal::open(&path).unwrap_err();
    assert!(matches!(err, JournalError::Version { found: 2, .. }), "{err}");
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn unreadable_path_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = Journal::open(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::Read { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn rfc3339_formats_utc_dates() {
    let at = |secs, millis| rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis));
    assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
    assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    assert_eq!(at(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
    assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
}

#[test]
fn names_servers_and_an_abandon_round_trip() {
    use crate::controller::names::{LinkNames, LEGACY};
    let dir = tempfile::tempdir().unwrap();
    let (path, mut journal) = journal_in(&dir);
    journal.record_links(&LinkNames::derive("shop")).unwrap();
    journal.record_links(&LEGACY).unwrap();
    let server = Server { system_identifier: "7580432270395826803".into(), database: "shop".into() };
    journal.record_server("blue", server.clone()).unwrap();
    journal.start_abandon().unwrap();

    let mut reopened = Journal::open(&path).unwrap();
    assert_eq!(reopened.links(), Some(&LinkNames::derive("shop")), "the first names are kept");
    assert_eq!(reopened.server("blue"), Some(&server));
    assert_eq!(reopened.server("green"), None);
    assert!(reopened.abandon().is_some_and(|a| a.finished_at.is_none()));
    reopened.finish_abandon().unwrap();
    assert!(Journal::open(&path).unwrap().abandon().is_some_and(|a| a.finished_at.is_some()));
}

#[test]
fn a_journal_without_names_servers_or_abandon_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgflip-journal.json");
    fs::write(&path, r#"{"version": 1, "phases": {"snapshot": {"attempts": 1, "facts": {"slot": "pgflip"}}}}"#)
        .unwrap();
    let journal = Journal::open(&path).unwrap();
    assert_eq!((journal.links(), journal.server("blue"), journal.abandon()), (None, None, None));
    assert!(journal.phase(Phase::Snapshot).is_some());
}
