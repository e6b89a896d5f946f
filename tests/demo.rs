//! `pgflip demo` end to end: real clusters, sidecars and clients, and a report that is
//! measured, not asserted: a journal deleted on green after the flip is reported lost, a
//! corrupted BAS total fails the validation; a dashboard reader on the standby listener
//! follows every flip without an error. What it prints: a short story by default (no log
//! line), the logs on stderr with --verbose, and a kept log file when it fails. With
//! `--green-pg-bin`, green runs PostgreSQL 18 from npm: the upgrade is told and reported;
//! versions it cannot run are refused, before anything starts or by preflight.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

use serde_json::Value;
use support::pgversions;

/// One demo at a time: each runs two clusters, two sidecars and a load on its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs the demo with a short window and a small load, at the default verbosity (no
/// RUST_LOG); returns its output and report.
fn demo(dir: &Path, extra: &[&str]) -> (Output, Value) {
    demo_on(&support::pg_bin(), dir, extra)
}

/// [`demo`] with `--pg-bin pg_bin`.
fn demo_on(pg_bin: &Path, dir: &Path, extra: &[&str]) -> (Output, Value) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let report = dir.join("report.json");
    let path = format!("{}:{}", support::pg_bin().display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new(env!("CARGO_BIN_EXE_pgflip"))
        .args(["demo", "--window", "3s", "--writers", "3", "--readers", "1", "--pg-bin"])
        .arg(pg_bin)
        .arg("--report")
        .arg(&report)
        .args(extra)
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .output()
        .expect("run pgflip demo");
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, serde_json::from_str(&text).expect("the report is JSON"))
}

fn describe(output: &Output, report: &Value) -> String {
    format!(
        "exit {:?}\nreport {report:#}\nstdout:\n{}\nstderr (tail):\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr).lines().rev().take(30).collect::<Vec<_>>().join("\n")
    )
}

#[test]
fn the_demo_flips_back_and_forth_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (output, report) = demo(dir.path(), &["--rollback"]);
    let why = describe(&output, &report);
    assert!(output.status.success(), "{why}");
    assert_eq!(report["ok"], true, "{why}");
    assert!(report["committed_writes"].as_u64().unwrap() > 100, "{why}");
    assert_eq!(report["lost_writes"], 0, "{why}");
    assert_eq!(report["client_errors"], 0, "{why}");
    assert_eq!(report["final_active"], "green", "{why}");
    let flips: Vec<&str> = report["flips"].as_array().unwrap().iter().map(|f| f["to"].as_str().unwrap()).collect();
    assert_eq!(flips, ["green", "blue", "green"], "{why}");
    assert!(report["flips"].as_array().unwrap().iter().all(|f| f["write_pause_ms"].as_u64().unwrap() > 0), "{why}");
    // The dashboard reader on the standby listener: the serving database until the
    // catch-up reports green, then always the other one, and the serving one after promote.
    assert!(report["standby_reads"].as_u64().unwrap() > 0, "{why}");
    let served: Vec<&str> =
        report["standby_served_by"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(served, ["blue", "green", "blue", "green", "blue", "green"], "{why}");
    let points = report["validation_pauses_ms"].as_array().expect("validation pauses");
    assert_eq!(points.len(), 2, "one consistent point per validation: {why}");
    let phases: Vec<&str> = report["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for phase in ["seed", "snapshot", "restore", "migrate", "smoke", "catchup", "cutover", "validate", "rollback"] {
        assert!(phases.contains(&phase), "{phase} in {phases:?}");
    }
    assert_eq!(phases.last(), Some(&"promote"));
    let out = String::from_utf8_lossy(&output.stdout);
    let workdir =
        out.split("working in ").nth(1).and_then(|rest| rest.lines().next()).expect("the demo names its directory");
    assert!(!Path::new(workdir).exists(), "{workdir} is deleted at the end");

    // The story, and nothing else: no log line on either stream at the default verbosity.
    let err = String::from_utf8_lossy(&output.stderr);
    for level in [" INFO ", " DEBUG ", " TRACE ", " WARN "] {
        assert!(!out.contains(level) && !err.contains(level), "a{level}line: {why}");
    }
    assert!(out.lines().count() < 60, "{} lines: {why}", out.lines().count());
    for step in ["[clusters]", "[seed]", "[preflight]", "[snapshot]", "[restore]", "[migrate]", "[smoke]", "[catchup]"]
    {
        assert_eq!(out.matches(step).count(), 1, "{step} once: {why}");
    }
    for (step, times) in [("[cutover]", 2), ("[rollback]", 1), ("[validate]", 2), ("[promote]", 1)] {
        assert_eq!(out.matches(step).count(), times, "{step} {times} times: {why}");
    }
    assert_eq!(out.matches("write pause").count(), 6, "each flip, in its line and the summary: {why}");
    assert!(out.contains("longest client wait"), "{why}");
    assert!(out.contains("checks on one consistent point"), "{why}");
    assert!(out.contains("== pgflip demo (small seed): OK =="), "{why}");
    assert!(!out.contains("log (kept)"), "{why}");
}

#[test]
fn a_journal_deleted_on_green_after_the_flip_is_reported_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let delete = "psql -X -v ON_ERROR_STOP=1 -q -c \"BEGIN; \
        CREATE TEMP TABLE gone AS SELECT id FROM public.journals WHERE description LIKE 'pgflip demo:%' ORDER BY id DESC LIMIT 1; \
        DELETE FROM public.ledger_lines WHERE journal_id IN (SELECT id FROM gone); \
        DELETE FROM public.journals WHERE id IN (SELECT id FROM gone); COMMIT\"";
    let (output, report) = demo(dir.path(), &["--verbose", "--before-validate", delete]);
    let why = describe(&output, &report);
    assert_eq!(output.status.code(), Some(1), "{why}");
    assert_eq!(report["ok"], false, "{why}");
    assert_eq!(report["lost_writes"], 1, "{why}");
    assert_eq!(report["lost_keys"].as_array().map(Vec::len), Some(1), "{why}");
    assert_eq!(report["client_errors"], 0, "{why}");
    assert_eq!(report["failure"], Value::Null, "the validation itself passes: {why}");
    // --verbose: the controller's logs on stderr, the story still on stdout.
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(" INFO ") && err.contains("phase started"), "{why}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains(" INFO "), "{why}");
    kept_log(&report, &why);
}

/// The log a failed demo keeps: named in its report and summary, with the controller's
/// logs in it; removed here with what is left of the demo's directory.
fn kept_log(report: &Value, why: &str) {
    let log = Path::new(report["log"].as_str().expect("a failed demo names its log"));
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{}: {e}: {why}", log.display()));
    assert!(text.contains(" INFO ") && text.contains("pgflip::controller"), "{why}");
    let logs = log.parent().expect("logs/");
    for kept in ["sidecar-0.log", "blue.log", "green.log"] {
        assert!(logs.join(kept).is_file(), "{kept} kept: {why}");
    }
    let workdir = logs.parent().expect("the demo's directory");
    let left: Vec<_> = std::fs::read_dir(workdir).expect("read").flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, ["logs"], "only the logs are kept: {why}");
    std::fs::remove_dir_all(workdir).expect("clean up");
}

#[test]
fn a_corrupted_bas_total_on_green_fails_the_validation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let corrupt = "psql -X -v ON_ERROR_STOP=1 -q -c \"UPDATE public.periods_sync_totals \
        SET g1_total_sales_cents = g1_total_sales_cents + 1 \
        WHERE period_id = (SELECT id FROM public.bas_periods ORDER BY period_start DESC, id LIMIT 1)\"";
    let (output, report) = demo(dir.path(), &["--before-validate", corrupt]);
    let why = describe(&output, &report);
    assert_eq!(output.status.code(), Some(1), "{why}");
    assert_eq!(report["ok"], false, "{why}");
    let failure = report["failure"].as_str().unwrap_or_default();
    assert!(failure.contains("validate"), "{why}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("[validate]") && stdout.contains("FAILED"), "{why}");
    assert!(stdout.contains("recent periods_sync_totals"), "the failed check is named: {why}");
    assert!(stdout.contains(&format!("log (kept):       {}", report["log"].as_str().unwrap_or("?"))), "{why}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains(" INFO "), "no log lines by default: {why}");
    assert_eq!(report["final_active"], "blue", "the validation rolled back: {why}");
    assert_eq!(report["lost_writes"], 0, "{why}");
    assert_eq!(report["client_errors"], 0, "{why}");
    kept_log(&report, &why);
}

/// The major version in a report's `blue_version` or `green_version` (`18.4` is 18).
fn major(version: &Value) -> u32 {
    let text = version.as_str().unwrap_or_default();
    text.split('.').next().and_then(|major| major.parse().ok()).unwrap_or_else(|| panic!("a version: {version}"))
}

#[test]
fn green_on_postgresql_18_is_a_major_version_upgrade_that_loses_nothing() {
    let green_bin = match pgversions::server_bin(18) {
        Ok(bin) => bin,
        Err(message) => return eprintln!("skipped: {message}"),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let green = green_bin.to_str().expect("a UTF-8 path");
    let (output, report) = demo(dir.path(), &["--green-pg-bin", green]);
    let why = describe(&output, &report);
    assert!(output.status.success(), "{why}");
    assert_eq!(report["ok"], true, "{why}");
    assert_eq!(major(&report["green_version"]), 18, "{why}");
    assert!(major(&report["blue_version"]) <= 18, "{why}");
    assert!(report["committed_writes"].as_u64().unwrap() > 100, "{why}");
    assert_eq!(report["lost_writes"], 0, "{why}");
    assert_eq!(report["client_errors"], 0, "{why}");
    assert_eq!(report["final_active"], "green", "{why}");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains(&format!("green's server from {green}")), "{why}");
    let versions = format!("blue PostgreSQL {}, green PostgreSQL {}", report["blue_version"], report["green_version"]);
    let versions = versions.replace('"', "");
    assert_eq!(out.matches(&versions).count(), 2, "told in [clusters] and the summary: {why}");
}

#[test]
fn versions_the_demo_cannot_run_are_refused_clearly() {
    let bin14 = match pgversions::server_bin(14) {
        Ok(bin) => bin,
        Err(message) => return eprintln!("skipped: {message}"),
    };
    // Before anything starts: green older than blue, and a directory without a server.
    let refused = |green: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_pgflip"))
            .args(["demo", "--pg-bin"])
            .arg(support::pg_bin())
            .arg("--green-pg-bin")
            .arg(green)
            .output()
            .expect("run pgflip demo");
        assert_eq!(output.status.code(), Some(1));
        assert!(output.stdout.is_empty(), "nothing started: {}", String::from_utf8_lossy(&output.stdout));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let err = refused(&bin14);
    let expected = format!("--green-pg-bin {}: green would run PostgreSQL 14.", bin14.display());
    assert!(err.contains(&expected) && err.contains("older than blue's"), "{err}");
    let empty = support::temp_dir("pgflip-demo-empty-");
    let err = refused(empty.path());
    assert!(err.contains(&format!("--green-pg-bin {}: initdb is not there", empty.path().display())), "{err}");

    // Blue and green on 14 (the system's client programs beside its server's): the demo runs,
    // and preflight's refusal of green older than 15 is its story and its report.
    let pg14 = support::temp_dir("pgflip-demo-pg14-");
    std::fs::set_permissions(pg14.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let system = support::pg_bin();
    let programs = [(&bin14, "initdb"), (&bin14, "pg_ctl"), (&bin14, "postgres")]
        .into_iter()
        .chain(["psql", "pg_dump", "pg_restore"].map(|program| (&system, program)));
    for (dir, program) in programs {
        std::os::unix::fs::symlink(dir.join(program), pg14.path().join(program)).expect("symlink");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (output, report) = demo_on(pg14.path(), dir.path(), &[]);
    let why = describe(&output, &report);
    assert_eq!(output.status.code(), Some(1), "{why}");
    assert_eq!(report["ok"], false, "{why}");
    assert_eq!(major(&report["green_version"]), 14, "{why}");
    let blocker = "green runs PostgreSQL 14.";
    assert!(report["failure"].as_str().is_some_and(|f| f.contains("preflight") && f.contains(blocker)), "{why}");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("[preflight]") && out.contains("FAILED") && out.contains(blocker), "{why}");
    assert_eq!(report["client_errors"], 0, "{why}");
    kept_log(&report, &why);
}
