//! The demo's cutover plan: the example plan of `deploy/examples/plan.toml` (its checks,
//! migrations and smoke test), pointed at the demo's clusters and sidecars.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::error::DemoError;
use super::files::{EXAMPLE_PLAN, PLAN_PATH};

/// What the demo's plan needs to know about this run.
pub struct PlanInputs<'a> {
    pub blue_port: u16,
    pub green_port: u16,
    pub sidecar_admin_urls: Vec<String>,
    pub bin_dir: &'a Path,
    pub window: std::time::Duration,
}

/// Writes the plan under `root` (where the seeds are) and returns its path.
pub fn write(root: &Path, inputs: &PlanInputs) -> Result<PathBuf, DemoError> {
    let mut plan: Table =
        EXAMPLE_PLAN.parse().expect("deploy/examples/plan.toml is valid TOML (a unit test parses it)");
    let url = |port: u16, database: &str| format!("postgres://postgres@127.0.0.1:{port}{database}?sslmode=disable");
    set(&mut plan, "blue", "url", Value::from(url(inputs.blue_port, "/ledger")));
    set(&mut plan, "green", "url", Value::from(url(inputs.green_port, "")));
    // The plan's commands run psql from PATH: put the found PostgreSQL first.
    let path_prefix = format!("export PATH='{}':\"$PATH\"; ", inputs.bin_dir.display());
    for section in ["migrate", "smoke"] {
        let command = plan[section]["command"].as_str().expect("the example plan has the command").to_owned();
        set(&mut plan, section, "command", Value::from(format!("{path_prefix}{command}")));
    }
    let sidecars = inputs.sidecar_admin_urls.iter().cloned().map(Value::from).collect::<Vec<_>>();
    set(&mut plan, "cutover", "sidecars", Value::Array(sidecars));
    set(&mut plan, "catchup", "stable_seconds", Value::from(1));
    set(&mut plan, "catchup", "timeout_seconds", Value::from(300));
    set(&mut plan, "validate", "window", Value::from(crate::duration::display(inputs.window).to_string()));
    set(&mut plan, "tools", "bin_dir", Value::from(inputs.bin_dir.display().to_string()));
    // Nothing else may hold a port the demo does not own.
    plan.remove("metrics");
    let path = root.join(PLAN_PATH);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(DemoError::io(format!("creating {}", dir.display())))?;
    }
    std::fs::write(&path, toml::to_string(&plan).expect("a TOML table serializes"))
        .map_err(DemoError::io(format!("writing {}", path.display())))?;
    Ok(path)
}

fn set(plan: &mut Table, section: &str, key: &str, value: Value) {
    let table = plan.entry(section).or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(table) = table {
        table.insert(key.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_plan_is_the_example_pointed_at_the_demo() {
        let dir = std::env::temp_dir().join(format!("pgflip-demo-plan-{}", std::process::id()));
        let inputs = PlanInputs {
            blue_port: 15432,
            green_port: 15433,
            sidecar_admin_urls: vec!["http://127.0.0.1:19187".into()],
            bin_dir: Path::new("/opt/pg/bin"),
            window: std::time::Duration::from_secs(7),
        };
        let path = write(&dir, &inputs).expect("write");
        let plan = crate::controller::plan::Plan::load(&path).expect("the demo plan loads");
        assert_eq!(plan.validate.checks.len(), 4, "the example's checks");
        assert_eq!(plan.validate.window.as_secs(), 7);
        assert_eq!(plan.cutover.sidecars, ["http://127.0.0.1:19187"]);
        assert!(plan.metrics.listen.is_none());
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("export PATH='/opt/pg/bin'"), "{text}");
        assert!(text.contains("127.0.0.1:15432/ledger"), "{text}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
