//! The demo's story on stdout: a line per step with its duration and what came of it,
//! read from the controller's journal. The detail goes to the log file.

use serde_json::Value;

use crate::controller::catchup::human_bytes;
use crate::controller::journal::Journal;
use crate::controller::Phase;

/// Prints `[name]   1.2 s  detail`; `seconds` is left blank for a step that is not timed.
pub fn line(name: &str, seconds: Option<f64>, detail: &str) {
    println!("{}", format_line(name, seconds, detail));
}

fn format_line(name: &str, seconds: Option<f64>, detail: &str) -> String {
    let took = seconds.map_or(String::new(), |s| format!("{s:.1} s"));
    format!("{:<12} {took:>7}  {detail}", format!("[{name}]"))
}

/// What a finished phase of the controller came to, from the facts it journaled.
pub fn phase_detail(journal: &Journal, phase: Phase) -> String {
    let fact = |key: &str| journal.fact(phase, key).cloned().unwrap_or(Value::Null);
    match phase {
        Phase::Preflight => {
            let warnings: Vec<String> = strings(&fact("warnings"));
            match warnings.len() {
                0 => "passed: no blockers, no warnings".into(),
                n => format!("passed: no blockers, {n} warning{} ({})", plural(n), warnings.join(", ")),
            }
        }
        Phase::Snapshot => format!(
            "slot {} at {}; blue dumped at its exported snapshot in {} ms",
            fact("slot").as_str().unwrap_or("?"),
            fact("consistent_lsn").as_str().unwrap_or("?"),
            fact("dump_ms")
        ),
        Phase::Restore => {
            let roles = strings(&fact("roles_created"));
            let roles = if roles.is_empty() { String::new() } else { format!("; roles created: {}", roles.join(", ")) };
            format!("green restored from the dump in {} ms{roles}", fact("restore_ms"))
        }
        Phase::Migrate if fact("skipped") == Value::Bool(true) => "no migration in the plan".into(),
        Phase::Migrate => "green migrated (seeds/migrations)".into(),
        Phase::Smoke if fact("skipped") == Value::Bool(true) => "no smoke test in the plan".into(),
        Phase::Smoke => "the smoke test passed on green (seeds/migration_smoke.sh)".into(),
        Phase::Catchup => format!(
            "green caught up by logical replication: lag {}, {:.1} s",
            human_bytes(fact("lag_bytes").as_i64().unwrap_or_default()),
            fact("lag_seconds").as_f64().unwrap_or_default()
        ),
        Phase::Validate => {
            let point = match fact("point_pause_ms").as_u64() {
                Some(ms) => format!(" on one consistent point (the fleet paused {ms} ms)"),
                None => String::new(),
            };
            format!(
                "passed: {} checks{point}; error rate {:.4} over {} transactions",
                fact("checks"),
                fact("error_rate").as_f64().unwrap_or_default(),
                fact("transactions")
            )
        }
        Phase::Promote => match fact("archive").as_str() {
            Some(_) => "green is the database now; blue archived and retired".into(),
            None => "green is the database now; blue retired".into(),
        },
        Phase::Cutover | Phase::Rollback | Phase::Retire => "done".into(),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_align_name_duration_and_detail() {
        assert_eq!(format_line("seed", Some(0.54), "blue loaded"), "[seed]         0.5 s  blue loaded");
        assert_eq!(format_line("app", None, "4 writers"), "[app]                 4 writers");
        assert_eq!(format_line("catchup", Some(123.0), "x"), "[catchup]    123.0 s  x");
    }
}
