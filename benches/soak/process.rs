//! The sidecar process as the kernel sees it: resident memory and open file descriptors.

use std::time::Duration;

/// One look at the sidecar.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Since the run's epoch.
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: usize,
}

/// Reads `pid`'s resident set size and counts its open file descriptors; `None` when the
/// process is gone.
pub fn sample(pid: u32, at: Duration) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(Sample { at, rss_kib, fds })
}

/// Whether memory and file descriptors at the end are where they were at the start,
/// allowing for what a process may keep after its busiest moment: `slack_kib` of memory
/// and `slack_fds` descriptors (a client in the middle of reconnecting).
pub fn flat(start: &Sample, end: &Sample, slack_kib: u64, slack_fds: usize) -> bool {
    end.rss_kib <= start.rss_kib + slack_kib && end.fds <= start.fds + slack_fds
}
