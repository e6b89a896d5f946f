//! The controller's standby reports against two real clusters and their sidecars, a writer
//! working through each: the catch-up and the flips report on their own;
//! `pgflip cutover standby-report` is refused before the catch-up, reports green's lag
//! after it and blue's after the cutover, follows a rollback while left running (and stops
//! cleanly on SIGTERM), and reports blue retired after promote. A third sidecar, with a
//! standby listener, shows the reports in its status.

mod flip_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use flip_support::{controller, text, wait_for_progress, writers, Fleet, ADMIN_TOKEN, APP, APP_PASSWORD, DB};
use support::{Proxy, ProxyBuilder};

/// The lag in seconds of the last `standby SIDE: lag N s` line of `output`.
fn lag_of(output: &str, side: &str) -> Option<f64> {
    let prefix = format!("standby {side}: lag ");
    output.lines().rev().find_map(|line| line.strip_prefix(&prefix)?.split(" s ").next()?.parse().ok())
}

/// Runs `standby-report --once` until it prints a lag for `side` (a walsender may take a
/// moment to connect after a flip); returns the lag and the line.
fn reported_lag(plan: &Path, side: &str) -> (f64, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = controller(plan, &["standby-report", "--once"]);
        let said = text(&out);
        assert!(out.status.success(), "standby-report --once failed:\n{said}");
        if let Some(lag) = lag_of(&said, side) {
            let line = said.lines().find(|l| l.starts_with(&format!("standby {side}: lag "))).unwrap_or_default();
            return (lag, line.to_owned());
        }
        assert!(Instant::now() < deadline, "no lag reported for {side}:\n{said}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One more sidecar in front of the fleet's clusters, with a standby listener.
fn standby_sidecar(fleet: &Fleet) -> Proxy {
    let url = |port: u16| format!("postgres://{APP}:{APP_PASSWORD}@127.0.0.1:{port}/{DB}");
    ProxyBuilder::default()
        .upstream("blue", &url(fleet.blue.port()))
        .upstream("green", &url(fleet.green.port()))
        .active("blue")
        .admin_token(ADMIN_TOKEN)
        .arg("--listen-standby")
        .arg(&format!("127.0.0.1:{}", support::free_port()))
        .spawn()
}

/// The standby listener's part of the sidecar's `GET /v1/status`.
fn standby_status(sidecar: &Proxy) -> Value {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (_, body) =
        support::http::request(sidecar.admin_port(), "GET", "/v1/status", &[("Authorization", auth.as_str())], "")
            .expect("status");
    let status: Value = serde_json::from_str(&body).expect("status JSON");
    status["standby"].clone()
}

/// A background controller, killed if the test ends before it stops.
struct Background(std::process::Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `done` holds for the text of `log`.
fn wait_for_log(log: &Path, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if done(&text) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn standby_reports_follow_the_standby_across_flips_until_blue_is_retired() {
    let fleet = Fleet::start(2);
    let sidecar = standby_sidecar(&fleet);
    let plan = fleet.plan(&[format!("http://127.0.0.1:{}", sidecar.admin_port())], "");

    let out = controller(&plan, &["standby-report", "--once"]);
    assert!(!out.status.success(), "nothing replicates before the catch-up:\n{}", text(&out));
    assert!(text(&out).contains("no catch-up has run yet"), "{}", text(&out));

    let out = controller(&plan, &["run", "--until", "catchup"]);
    assert!(out.status.success(), "{}", text(&out));
    let standby = standby_status(&sidecar);
    assert_eq!(standby["reported_state"], "replicating", "the catch-up reports green: {standby}");
    let writers = writers(&fleet);
    wait_for_progress(&writers, 2);
    let (lag, line) = reported_lag(&plan, "green");
    assert!((0.0..60.0).contains(&lag), "{line}");
    assert!(line.ends_with("of 3 sidecars"), "{line}");
    let standby = standby_status(&sidecar);
    assert_eq!(
        (&standby["standby"], &standby["reported_state"]),
        (&"green".into(), &"replicating".into()),
        "{standby}"
    );
    assert!(standby["lag_seconds"].is_number(), "{standby}");

    let out = controller(&plan, &["run", "--until", "cutover"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["green", "green"]);
    let standby = standby_status(&sidecar);
    assert_eq!(
        (&standby["standby"], &standby["reported_state"]),
        (&"blue".into(), &"replicating".into()),
        "the cutover reports blue: {standby}"
    );
    let (lag, line) = reported_lag(&plan, "blue");
    assert!((0.0..60.0).contains(&lag), "{line}");

    // A reporter left running follows the journal across a rollback.
    let mut reporter =
        Background(flip_support::spawn_controller(&plan, &["standby-report", "--interval", "0.3"], "reporter.log"));
    let log = plan.with_file_name("reporter.log");
    wait_for_log(&log, "the running reporter never reported blue", |text| lag_of(text, "blue").is_some());
    let out = controller(&plan, &["rollback"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    wait_for_log(&log, "the running reporter never reported green after the rollback", |text| {
        text.split_once("standby blue: lag").is_some_and(|(_, after)| lag_of(after, "green").is_some())
    });
    assert!(support::send_signal(reporter.0.id(), "TERM"));
    let status = reporter.0.wait().expect("reporter");
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success() && said.contains("standby-report: stopped"), "SIGTERM stops it cleanly:\n{said}");

    let out = controller(&plan, &["run", "--until", "cutover"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for_progress(&writers, 2);
    for (i, writer) in writers.into_iter().enumerate() {
        let (_, errors) = writer.stop();
        assert!(errors.is_empty(), "writer {i} saw errors: {errors:?}");
    }
    let out = controller(&plan, &["promote"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = controller(&plan, &["standby-report"]);
    assert!(out.status.success(), "after promote it reports once and exits:\n{}", text(&out));
    assert!(text(&out).contains("standby blue: retired, reported to 3 of 3 sidecars"), "{}", text(&out));
    assert_eq!(standby_status(&sidecar)["reported_state"], "retired");
}
