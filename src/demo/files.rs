//! The files the demo works with, built into the binary so that it runs from anywhere:
//! the seeds, migrations and smoke harness of `seeds/`, and the example plan of
//! `deploy/examples/plan.toml`, written out under the demo's directory at the same
//! relative places (the plan's commands name `../../seeds/...`).

use std::path::{Path, PathBuf};

use super::error::DemoError;

const FILES: &[(&str, &str)] = &[
    ("seeds/schema.sql", include_str!("../../seeds/schema.sql")),
    ("seeds/generate_ledger.sql", include_str!("../../seeds/generate_ledger.sql")),
    ("seeds/seed_small.sql", include_str!("../../seeds/seed_small.sql")),
    ("seeds/seed_spike.sql", include_str!("../../seeds/seed_spike.sql")),
    ("seeds/validate.sql", include_str!("../../seeds/validate.sql")),
    ("seeds/migration_smoke.sh", include_str!("../../seeds/migration_smoke.sh")),
    (
        "seeds/migrations/001_add_region_to_journals.sql",
        include_str!("../../seeds/migrations/001_add_region_to_journals.sql"),
    ),
    (
        "seeds/migrations/002_create_bas_lodgements.sql",
        include_str!("../../seeds/migrations/002_create_bas_lodgements.sql"),
    ),
    ("seeds/migrations/003_backfill_region.sql", include_str!("../../seeds/migrations/003_backfill_region.sql")),
];

/// The example plan, which the demo's plan is made from.
pub const EXAMPLE_PLAN: &str = include_str!("../../deploy/examples/plan.toml");
/// Where the plan goes, under the demo's directory.
pub const PLAN_PATH: &str = "deploy/examples/plan.toml";

/// Writes the seeds under `root`; returns the `seeds` directory.
pub fn write_seeds(root: &Path) -> Result<PathBuf, DemoError> {
    for (relative, contents) in FILES {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(DemoError::io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, contents).map_err(DemoError::io(format!("writing {}", path.display())))?;
    }
    Ok(root.join("seeds"))
}
