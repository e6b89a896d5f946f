//! The plan's tables other than `[blue]` and `[green]`, with their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

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
/// `stable_seconds`; the phase fails after `timeout_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatchupSection {
    /// Default 1 MiB.
    pub max_lag_bytes: u64,
    /// Default 5, greater than 0.
    pub max_lag_seconds: f64,
    /// Default 3.
    pub stable_seconds: u64,
    /// Default 3600, greater than 0.
    pub timeout_seconds: u64,
}

impl Default for CatchupSection {
    fn default() -> CatchupSection {
        CatchupSection { max_lag_bytes: 1024 * 1024, max_lag_seconds: 5.0, stable_seconds: 3, timeout_seconds: 3600 }
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
