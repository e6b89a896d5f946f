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

use crate::controller::names::LinkNames;
use crate::controller::phase::Phase;

mod bound;
pub use bound::{Abandon, Server};

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
    /// The replication objects' names, recorded at the snapshot ([`bound`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<LinkNames>,
    /// The servers of `blue` and `green`, recorded at first contact.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, Server>,
    /// `pgflip cutover abandon`, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandon: Option<Abandon>,
}

impl Default for Record {
    fn default() -> Record {
        Record {
            version: JOURNAL_VERSION,
            phases: BTreeMap::new(),
            links: None,
            servers: BTreeMap::new(),
            abandon: None,
        }
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
mod tests;
