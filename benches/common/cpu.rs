//! Where the machine's CPU time went during a measurement, from `/proc/stat`: on a shared
//! virtual machine, time stolen by the hypervisor slows everything measured, so a report
//! says how much there was.

/// The machine's CPU time counters at one moment (in clock ticks, all CPUs together).
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    busy: u64,
    idle: u64,
    steal: u64,
}

impl CpuTimes {
    /// Reads the counters; `None` where `/proc/stat` cannot be read (not Linux).
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> =
            stat.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let at = |i: usize| fields.get(i).copied().unwrap_or(0);
        Some(CpuTimes { busy: at(0) + at(1) + at(2) + at(5) + at(6), idle: at(3) + at(4), steal: at(7) })
    }

    /// `busy 71%, idle 27%, stolen by the hypervisor 2%` between `self` and a later sample.
    pub fn shares_until(&self, later: &CpuTimes) -> String {
        let busy = later.busy.saturating_sub(self.busy) as f64;
        let idle = later.idle.saturating_sub(self.idle) as f64;
        let steal = later.steal.saturating_sub(self.steal) as f64;
        let total = (busy + idle + steal).max(1.0);
        format!(
            "busy {:.0}%, idle {:.0}%, stolen by the hypervisor {:.0}%",
            100.0 * busy / total,
            100.0 * idle / total,
            100.0 * steal / total
        )
    }
}
