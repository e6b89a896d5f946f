//! The demo's temporary directory, deleted when dropped; when the demo fails, all but
//! its logs (`logs/`: the demo's own, the sidecars' and the clusters') is deleted.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use super::error::DemoError;
use super::postgres::RunAs;

pub struct WorkDir {
    path: PathBuf,
    keep_logs: Cell<bool>,
}

/// The logs' directory, under the work directory.
const LOGS: &str = "logs";

impl WorkDir {
    /// A new directory under the system's temporary directory, usable by PostgreSQL, with
    /// its `logs/` directory (the clusters write their server logs there).
    pub fn create(run_as: RunAs) -> Result<WorkDir, DemoError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
        let name = format!("pgflip-demo-{}-{}", std::process::id(), nanos.unwrap_or(0));
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).map_err(DemoError::io(format!("creating {}", path.display())))?;
        let dir = WorkDir { path, keep_logs: Cell::new(false) };
        run_as.give(&dir.path)?;
        std::fs::create_dir(dir.logs()).map_err(DemoError::io(format!("creating {}", dir.logs().display())))?;
        run_as.give(&dir.logs())?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the demo's logs go.
    pub fn logs(&self) -> PathBuf {
        self.path.join(LOGS)
    }

    /// The demo's own log.
    pub fn log_path(&self) -> PathBuf {
        self.logs().join("demo.log")
    }

    /// Keeps `logs/` when the directory is dropped.
    pub fn keep_logs(&self) {
        self.keep_logs.set(true);
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep_logs.get() {
            let _ = std::fs::remove_dir_all(&self.path);
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.path) else { return };
        for entry in entries.flatten() {
            if entry.file_name() == LOGS {
                continue;
            }
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}
