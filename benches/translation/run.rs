//! One measured pgbench run through the sidecar, unmoved or translated, and its throughput
//! read off pgbench's per-second progress lines.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, pg_bin, Proxy};

/// Clients and threads of each run.
pub const CLIENTS: u32 = 8;
pub const THREADS: u32 = 2;
/// When the translated variant's sessions are switched to green, in seconds into the run.
const SWITCH_AT: Duration = Duration::from_secs(1);
/// Progress lines up to this many seconds into the run are left out (login, the switch).
const SETTLE_SECS: f64 = 2.0;

/// pgbench's `-M` query mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Simple,
    Prepared,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Simple, Mode::Prepared];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Prepared => "prepared",
        }
    }
}

/// Where the sessions log in: green, where they are served (unmoved), or blue, from which
/// they are moved to green (translated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Unmoved,
    Translated,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Unmoved, Variant::Translated];

    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Unmoved => "unmoved",
            Variant::Translated => "translated",
        }
    }
}

/// Runs `pgbench -S` through `proxy` for `secs` measured seconds; returns the mean of its
/// progress lines after the first [`SETTLE_SECS`].
pub fn once(proxy: &Proxy, variant: Variant, mode: Mode, secs: u64) -> Result<f64, String> {
    let login = match variant {
        Variant::Unmoved => "green",
        Variant::Translated => "blue",
    };
    switch(proxy, login)?;
    let total = secs + SETTLE_SECS as u64;
    let mut child = Command::new(pg_bin().join("pgbench"))
        .args(["-n", "-S", "-M", mode.as_str(), "-P", "1"])
        .args(["-c", &CLIENTS.to_string(), "-j", &THREADS.to_string(), "-T", &total.to_string()])
        .arg(proxy.conninfo("postgres", "postgres"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start pgbench: {e}"))?;
    let mut stderr = child.stderr.take().expect("stderr");
    let progress = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let moved = match variant {
        Variant::Unmoved => Ok(()),
        Variant::Translated => {
            thread::sleep(SWITCH_AT);
            switch(proxy, "green").and_then(|moved| match moved {
                m if m == CLIENTS as u64 => translated(proxy),
                m => Err(format!("{m} of {CLIENTS} sessions moved")),
            })
        }
    };
    let out = child.wait_with_output().map_err(|e| format!("wait for pgbench: {e}"))?;
    let progress = progress.join().unwrap_or_default();
    moved?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("number of failed transactions: 0") {
        return Err(format!("pgbench failed ({}):\n{stdout}\n{progress}", out.status));
    }
    let rates: Vec<f64> =
        progress.lines().filter_map(progress_tps).filter(|(at, _)| *at > SETTLE_SECS).map(|r| r.1).collect();
    if rates.is_empty() {
        return Err(format!("no progress lines after {SETTLE_SECS} s:\n{progress}"));
    }
    Ok(rates.iter().sum::<f64>() / rates.len() as f64)
}

/// Switches `proxy` to `to`; returns how many sessions moved.
fn switch(proxy: &Proxy, to: &str) -> Result<u64, String> {
    let body = format!(r#"{{"to": "{to}", "drain_timeout_ms": 10000}}"#);
    let (status, text) = proxy.admin_post("/v1/switch", &body).map_err(|e| format!("switch to {to}: {e}"))?;
    let answer: Value = serde_json::from_str(&text).map_err(|e| format!("switch to {to}: {e}: {text}"))?;
    if status != 200 || answer["failed"].as_u64() != Some(0) {
        return Err(format!("switch to {to}: {status} {text}"));
    }
    Ok(answer["moved"].as_u64().unwrap_or(0))
}

/// Checks that every session is translated now.
fn translated(proxy: &Proxy) -> Result<(), String> {
    let (_, metrics) = proxy.admin_get("/metrics").map_err(|e| format!("metrics: {e}"))?;
    match support::metric_sum(&metrics, "pgflip_translated_sessions", "") {
        n if n == CLIENTS as f64 => Ok(()),
        n => Err(format!("{n} of {CLIENTS} sessions are translated after the switch")),
    }
}

/// `progress: 3.0 s, 31234.5 tps, lat 0.256 ms stddev 0.103, 0 failed`: (3.0, 31234.5).
fn progress_tps(line: &str) -> Option<(f64, f64)> {
    let mut parts = line.strip_prefix("progress: ")?.split(", ");
    let at = parts.next()?.strip_suffix(" s")?.parse().ok()?;
    let tps = parts.next()?.strip_suffix(" tps")?.parse().ok()?;
    Some((at, tps))
}
