//! Faults a running cluster can be put through: a restart, and the list of its processes
//! (for SIGSTOP and SIGCONT).

use super::{run_ok, server_command, Cluster};

impl Cluster {
    /// Restarts the server (`pg_ctl restart -m fast`): every session ends, and the server
    /// takes connections again on the same port once this returns. Panics when it fails.
    pub fn restart(&self) {
        run_ok(
            server_command(&self.bin, "pg_ctl", self.dir.path())
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-m", "fast", "-w", "-t", "60", "restart"]),
            "pg_ctl restart",
        );
    }

    /// The postmaster's pid and those of its children (backends and auxiliary processes),
    /// as the kernel lists them now; empty when the server is not running.
    pub fn server_pids(&self) -> Vec<u32> {
        let pidfile = self.dir.path().join("data").join("postmaster.pid");
        let Some(postmaster) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|text| text.lines().next().and_then(|line| line.trim().parse::<u32>().ok()))
        else {
            return Vec::new();
        };
        let children =
            std::fs::read_to_string(format!("/proc/{postmaster}/task/{postmaster}/children")).unwrap_or_default();
        std::iter::once(postmaster).chain(children.split_whitespace().filter_map(|pid| pid.parse().ok())).collect()
    }
}
