//! The run journal: which phases started and finished, and the facts they recorded (slot,
//! snapshot name, dump path, LSNs), kept in a JSON file so that a new run resumes after the
//! last finished phase.
//!
//! Every change is saved at once and atomically (temporary file, fsync, rename, fsync of
//! the directory): after a crash the file holds either the old or the new record, never a
//! mix. The file operations block; each write is a few kilobytes.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::controller::phase::Phase;

/// The journal format this build reads and writes.
pub const JOURNAL_VERSION: u64 = 1;

/// A failure to read or write the journal, naming its file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read journal {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "journal {} is not a pgflip journal: {source}; repair it, or move it away to start the run over",
        path.display()
    )]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("journal {} has version {found}, this pgflip reads version {JOURNAL_VERSION}", path.display())]
    Version { path: PathBuf, found: u64 },
    #[error("cannot write journal {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("phase {phase} cannot finish: it was never started (journal {})", path.display())]
    NotStarted { path: PathBuf, phase: Phase },
}

/// The journal file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Always [`JOURNAL_VERSION`].
    pub version: u64,
    /// The phases that have started at least once, in run order.
    pub phases: BTreeMap<Phase, PhaseRecord>,
}

impl Default for Record {
    fn default() -> Record {
        Record { version: JOURNAL_VERSION, phases: BTreeMap::new() }
    }
}

/// What the journal knows about one phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// When the last attempt started, RFC 3339 UTC.
    pub started_at: Option<String>,
    /// When the phase finished, RFC 3339 UTC; `None` while it runs or after it failed.
    pub ended_at: Option<String>,
    /// How long the finished attempt took.
    pub duration_ms: Option<u64>,
    /// How many times the phase was started.
    pub attempts: u32,
    /// Facts later phases or later runs need (slot name, snapshot LSN, dump path...).
    #[serde(default)]
    pub facts: Map<String, Value>,
}

/// The journal of one run, bound to its file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    record: Record,
    /// When each phase started in this process, to measure `duration_ms` on a monotonic clock.
    started: HashMap<Phase, Instant>,
}

impl Journal {
    /// Reads the journal at `path`; a missing file is an empty journal (a new run).
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let record = match fs::read(path) {
            Ok(bytes) => parse(path, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Record::default(),
            Err(source) => return Err(JournalError::Read { path: path.to_owned(), source }),
        };
        Ok(Journal { path: path.to_owned(), record, started: HashMap::new() })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything the journal holds, for `pgflip status`.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// What is known about `phase`, if it ever started.
    pub fn phase(&self, phase: Phase) -> Option<&PhaseRecord> {
        self.record.phases.get(&phase)
    }

    /// Whether `phase` finished (its last attempt has an end time).
    pub fn completed(&self, phase: Phase) -> bool {
        self.phase(phase).is_some_and(|p| p.ended_at.is_some())
    }

    /// The first phase, in run order, that has not finished; `None` when all have.
    pub fn next_phase(&self) -> Option<Phase> {
        Phase::RUN.iter().copied().find(|&phase| !self.completed(phase))
    }

    /// Records a new attempt at `phase` and saves. Facts of earlier attempts are kept.
    pub fn start(&mut self, phase: Phase) -> Result<(), JournalError> {
        let entry = self.record.phases.entry(phase).or_default();
        entry.started_at = Some(rfc3339(SystemTime::now()));
        entry.ended_at = None;
        entry.duration_ms = None;
        entry.attempts += 1;
        self.started.insert(phase, Instant::now());
        self.save()
    }

    /// Records that `phase` finished and saves. `duration_ms` is left empty if the phase was
    /// started by another process.
    pub fn finish(&mut self, phase: Phase) -> Result<(), JournalError> {
        let Some(entry) = self.record.phases.get_mut(&phase) else {
            return Err(JournalError::NotStarted { path: self.path.clone(), phase });
        };
        entry.ended_at = Some(rfc3339(SystemTime::now()));
        entry.duration_ms =
            self.started.remove(&phase).map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX));
        self.save()
    }

    /// Marks `phase` as not finished (a rollback reopens the cutover and the validation) and
    /// saves; its facts and attempts are kept.
    pub fn reopen(&mut self, phase: Phase) -> Result<(), JournalError> {
        if let Some(entry) = self.record.phases.get_mut(&phase) {
            entry.ended_at = None;
            entry.duration_ms = None;
        }
        self.save()
    }

    /// Sets the fact `key` of `phase` and saves.
    pub fn set_fact(&mut self, phase: Phase, key: &str, value: Value) -> Result<(), JournalError> {
        self.record.phases.entry(phase).or_default().facts.insert(key.to_owned(), value);
        self.save()
    }

    /// The fact `key` of `phase`, if recorded.
    pub fn fact(&self, phase: Phase, key: &str) -> Option<&Value> {
        self.phase(phase)?.facts.get(key)
    }

    /// Writes the record to `<path>.tmp`, fsyncs it, renames it over `path`, fsyncs the directory.
    fn save(&self) -> Result<(), JournalError> {
        let write_err = |source| JournalError::Write { path: self.path.clone(), source };
        let mut bytes = serde_json::to_vec_pretty(&self.record).map_err(|e| write_err(e.into()))?;
        bytes.push(b'\n');
        let tmp = tmp_path(&self.path);
        let mut file = File::create(&tmp).map_err(write_err)?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(write_err)?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(write_err)?;
        sync_dir(&self.path).map_err(write_err)
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Record, JournalError> {
    /// Read first, so that a journal of another version is reported as such, not as corrupt.
    #[derive(Deserialize)]
    struct Versioned {
        version: u64,
    }
    let corrupt = |source| JournalError::Corrupt { path: path.to_owned(), source };
    let Versioned { version } = serde_json::from_slice(bytes).map_err(corrupt)?;
    if version != JOURNAL_VERSION {
        return Err(JournalError::Version { path: path.to_owned(), found: version });
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

/// `<path>.tmp`, in the same directory so that the rename is atomic.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes the rename durable: the directory entry is only on disk once the directory is synced.
#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened and synced on this platform; the rename is all there is.
#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Formats `time` as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:34:56.789Z`.
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
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
}
