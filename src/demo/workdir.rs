//! The demo's temporary directory, deleted when dropped.

use std::path::{Path, PathBuf};

use super::error::DemoError;
use super::postgres::RunAs;

pub struct WorkDir(PathBuf);

impl WorkDir {
    /// A new directory under the system's temporary directory, usable by PostgreSQL.
    pub fn create(run_as: RunAs) -> Result<WorkDir, DemoError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
        let name = format!("pgflip-demo-{}-{}", std::process::id(), nanos.unwrap_or(0));
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).map_err(DemoError::io(format!("creating {}", path.display())))?;
        let dir = WorkDir(path);
        run_as.give(&dir.0)?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
