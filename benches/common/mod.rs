//! What the end-to-end benchmarks share: settings from the environment, the check that
//! `cargo test --benches` skips them, and the machine lines of their reports.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, ExitCode};

use crate::support::pg_bin;

/// A positive whole number from env `name`, or `default` when unset.
pub fn positive_var(name: &str, default: u64) -> Result<u64, String> {
    let Ok(text) = std::env::var(name) else { return Ok(default) };
    match text.trim().parse::<u64>() {
        Ok(value) if value >= 1 => Ok(value),
        _ => Err(format!("{name}={text:?}: expected a whole number, at least 1")),
    }
}

/// True when the binary runs as a benchmark. `cargo test --benches` runs bench binaries
/// without `--bench`: there is nothing to measure then, and this says so.
pub fn measuring(name: &str) -> bool {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    if !measuring {
        println!("{name}: skipped; run it with `cargo bench --bench {name}`");
    }
    measuring
}

/// The exit code for a run's outcome: `Ok(false)` means measured, with failures to report.
pub fn exit(name: &str, outcome: Result<bool, String>) -> ExitCode {
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("{name} bench failed: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the machine (CPUs, memory, kernel) and the PostgreSQL version.
pub fn print_machine() {
    let proc_text = |path: &str| std::fs::read_to_string(path).unwrap_or_default().trim().to_string();
    let cpuinfo = proc_text("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or("unknown", |(_, model)| model.trim());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = proc_text("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("unknown".to_string(), |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0));
    println!("machine:    {cpus} CPUs ({model}), {mem_gib} RAM");
    println!("kernel:     {} {}", proc_text("/proc/sys/kernel/ostype"), proc_text("/proc/sys/kernel/osrelease"));
    println!("PostgreSQL: {}", version(&pg_bin().join("postgres")));
}

/// What `program --version` prints.
pub fn version(program: &std::path::Path) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// Runs `f`, turning a panic of the shared test support into an error message. The
/// message is reported by the caller, so the panic hook stays quiet meanwhile.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())
    })
}
