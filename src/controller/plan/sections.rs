//! The plan's tables other than `[blue]` and `[green]`, with their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::Written;

/// `[app]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSection {
    /// The roles the application logs in as, fenced at cutover (required, may be empty).
    pub roles: Vec<String>,
}

/// `[migrate]` or `[smoke]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandSection {
    /// A shell command run with `sh -c`; `None` skips the phase.
    pub command: Option<String>,
}

/// `[catchup]`: green has caught up once its lag stays under both thresholds for
/// `stable`; the phase fails after `timeout`. The file keys keep their names
/// (`max_lag_seconds`, `stable_seconds`, `timeout_seconds`) and take a number of seconds or a
/// duration with a unit (`"500ms"`, `"2m"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatchupSection {
    /// `max_lag_bytes`, default 1 MiB.
    pub max_lag_bytes: u64,
    /// `max_lag_seconds`, default 5 s, greater than 0.
    pub max_lag: Duration,
    /// `stable_seconds`, default 3 s.
    pub stable: Duration,
    /// `timeout_seconds`, default an hour, greater than 0.
    pub timeout: Duration,
}

impl Default for CatchupSection {
    fn default() -> CatchupSection {
        CatchupSection {
            max_lag_bytes: 1024 * 1024,
            max_lag: Duration::from_secs(5),
            stable: Duration::from_secs(3),
            timeout: Duration::from_secs(3600),
        }
    }
}

/// `[catchup]` as written.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct CatchupFile {
    pub max_lag_bytes: u64,
    pub max_lag_seconds: Written,
    pub stable_seconds: Written,
    pub timeout_seconds: Written,
}

impl Default for CatchupFile {
    fn default() -> CatchupFile {
        let section = CatchupSection::default();
        CatchupFile {
            max_lag_bytes: section.max_lag_bytes,
            max_lag_seconds: section.max_lag.into(),
            stable_seconds: section.stable.into(),
            timeout_seconds: section.timeout.into(),
        }
    }
}

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalSection {
    /// Default `pgflip-journal.json` next to the plan.
    pub path: PathBuf,
}

impl Default for JournalSection {
    fn default() -> JournalSection {
        JournalSection { path: PathBuf::from("pgflip-journal.json") }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Where to serve `/metrics`, e.g. `127.0.0.1:9187`; `None`: not served.
    pub listen: Option<SocketAddr>,
}

/// `[snapshot]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotSection {
    /// pg_dump's output directory, default `pgflip-dump` next to the plan.
    pub dump_dir: PathBuf,
    /// pg_dump's parallel jobs, default 2, at least 1.
    pub jobs: u32,
}

impl Default for SnapshotSection {
    fn default() -> SnapshotSection {
        SnapshotSection { dump_dir: PathBuf::from("pgflip-dump"), jobs: 2 }
    }
}

/// `[restore]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreSection {
    /// pg_restore's parallel jobs, default 2, at least 1.
    pub jobs: u32,
}

impl Default for RestoreSection {
    fn default() -> RestoreSection {
        RestoreSection { jobs: 2 }
    }
}

/// `[preflight]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreflightSection {
    /// `schema.table` names of tables without a primary key that may be given REPLICA IDENTITY FULL.
    pub allow_replica_identity_full: Vec<String>,
}

/// `[tools]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsSection {
    /// The directory of pg_dump, pg_restore, pg_dumpall and psql; `None`: search `PATH`.
    pub bin_dir: Option<PathBuf>,
}

/// `[security]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySection {
    /// Lets a URL with a password connect over TCP without TLS (`sslmode=disable`,
    /// `allow`, or `prefer` with a server that offers none). Off by default: for tests,
    /// demos and networks that are trusted.
    pub allow_plaintext_passwords: bool,
}

/// `[ddl]`: DDL the controller runs on a side that may be serving (REPLICA IDENTITY FULL,
/// publications) waits at most `lock_timeout` for its lock, and is tried `attempts` times,
/// with a growing pause between, before it gives up naming the sessions in the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DdlSection {
    /// `lock_timeout`, default 2 s, greater than 0.
    pub lock_timeout: Duration,
    /// `attempts`, default 5, at least 1.
    pub attempts: u32,
}

impl Default for DdlSection {
    fn default() -> DdlSection {
        DdlSection { lock_timeout: Duration::from_secs(2), attempts: 5 }
    }
}

/// `[ddl]` as written.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct DdlFile {
    pub lock_timeout: Written,
    pub attempts: u32,
}

impl Default for DdlFile {
    fn default() -> DdlFile {
        let section = DdlSection::default();
        DdlFile { lock_timeout: section.lock_timeout.into(), attempts: section.attempts }
    }
}
