//! The faults injected between switches, in turn, and the errors each may explain.

use crate::rogue;
use crate::support::{wait_until, Cluster};
use std::time::{Duration, Instant};

/// How long a stopped upstream stays stopped.
const STOPPED_FOR: Duration = Duration::from_secs(1);
/// Errors this long after a fault ended are still its doing (a client noticing its
/// connection is gone, a pool connecting again).
const AFTERMATH: Duration = Duration::from_secs(5);

/// A fault, in the order they take turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `pg_terminate_backend` on one load session's backend on the serving upstream.
    TerminateBackend,
    /// SIGSTOP to every process of the serving upstream, SIGCONT a second later.
    StopUpstream,
    /// A client that disconnects in the middle of a message (startup, query, or a Parse
    /// inside an open transaction, in turn).
    ClientGoneMidMessage,
    /// A client that asks for a large result and stops reading for a while, then either
    /// reads all of it or hangs up, in turn.
    SlowReader,
    /// `pg_ctl restart` of the upstream not serving; the next switch goes to it.
    RestartIdleUpstream,
    /// `pg_ctl restart` of the serving upstream: every session's backend ends.
    RestartServingUpstream,
}

pub const ROTATION: [Kind; 6] = [
    Kind::TerminateBackend,
    Kind::StopUpstream,
    Kind::ClientGoneMidMessage,
    Kind::SlowReader,
    Kind::RestartIdleUpstream,
    Kind::RestartServingUpstream,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::TerminateBackend => "backend terminated",
            Kind::StopUpstream => "serving upstream stopped 1 s",
            Kind::ClientGoneMidMessage => "client gone mid-message",
            Kind::SlowReader => "slow reader",
            Kind::RestartIdleUpstream => "idle upstream restarted",
            Kind::RestartServingUpstream => "serving upstream restarted",
        }
    }

    /// Whether a load client's error of `error_kind` is what this fault does to clients.
    /// Only faults that end server sessions explain errors: the others must go unnoticed.
    fn explains(self, error_kind: &str) -> bool {
        let session_ended = matches!(error_kind, "FATAL 57P01" | "connection closed" | "connection error");
        match self {
            Kind::TerminateBackend => session_ended,
            // While the server restarts, new sessions find it shutting down or starting
            // up (57P03) or not there at all, which pgflip reports as 08006 or 08001.
            Kind::RestartServingUpstream => {
                session_ended || matches!(error_kind, "FATAL 57P03" | "FATAL 08006" | "FATAL 08001")
            }
            _ => false,
        }
    }
}

/// One fault as injected.
#[derive(Debug)]
pub struct Fault {
    pub kind: Kind,
    /// Since the run's epoch.
    pub began: Duration,
    pub ended: Duration,
    /// What happened, or why the fault could not be injected.
    pub outcome: Result<String, String>,
}

impl Fault {
    /// Whether this fault explains an error of `kind` seen at `at`.
    pub fn explains(&self, kind: &str, at: Duration) -> bool {
        self.outcome.is_ok() && at >= self.began && at <= self.ended + AFTERMATH && self.kind.explains(kind)
    }
}

/// What a fault acts on.
pub struct Targets<'a> {
    pub serving: &'a Cluster,
    pub idle: &'a Cluster,
    /// The sidecar's client port.
    pub proxy_port: u16,
}

/// Injects the `turn`th fault (counting from 0) and waits for it to be over.
pub fn inject(turn: usize, targets: &Targets, epoch: Instant) -> Fault {
    let kind = ROTATION[turn % ROTATION.len()];
    // Which variant of a fault with several: each kind's own count of turns.
    let variant = turn / ROTATION.len();
    let began = epoch.elapsed();
    let outcome = match kind {
        Kind::TerminateBackend => terminate_one(targets.serving),
        Kind::StopUpstream => stop_for_a_moment(targets.serving),
        Kind::ClientGoneMidMessage => rogue::gone_mid_message(targets.proxy_port, variant),
        Kind::SlowReader => rogue::slow_reader(targets.proxy_port, variant),
        Kind::RestartIdleUpstream => restart(targets.idle),
        Kind::RestartServingUpstream => restart(targets.serving),
    };
    Fault { kind, began, ended: epoch.elapsed(), outcome }
}

/// How long the backend-killing fault looks for a load session's backend: after a restart
/// the sessions may still be connecting again.
const FIND_BACKEND_FOR: Duration = Duration::from_secs(5);

/// Kills one load session's backend. Only a backend in use is picked: the connections a
/// switch left behind are idle until pgflip closes them, and may be gone by the time
/// `pg_terminate_backend` runs.
fn terminate_one(cluster: &Cluster) -> Result<String, String> {
    let sql = format!(
        "SELECT pg_terminate_backend(pid)::text || ' ' || pid FROM pg_stat_activity \
         WHERE application_name = '{}' AND backend_type = 'client backend' AND state <> 'idle' \
         ORDER BY random() LIMIT 1",
        crate::load::APPLICATION
    );
    let mut last = String::new();
    let killed = wait_until(FIND_BACKEND_FOR, || match crate::common::caught(|| cluster.psql(&sql)) {
        Err(e) => Some(Err(e)),
        Ok(answer) => match answer.strip_prefix("true ") {
            Some(pid) => Some(Ok(format!("backend {pid}"))),
            // None in use right now, or it ended before the signal: look again.
            None => {
                last = answer;
                None
            }
        },
    });
    killed.unwrap_or_else(|| {
        Err(format!("no load session's backend in use on the serving upstream within {FIND_BACKEND_FOR:?} ({last:?})"))
    })
}

fn stop_for_a_moment(cluster: &Cluster) -> Result<String, String> {
    let pids: Vec<String> = cluster.server_pids().iter().map(u32::to_string).collect();
    if pids.is_empty() {
        return Err("the serving upstream has no postmaster.pid".into());
    }
    signal("-STOP", &pids)?;
    std::thread::sleep(STOPPED_FOR);
    signal("-CONT", &pids)?;
    Ok(format!("{} processes", pids.len()))
}

fn signal(which: &str, pids: &[String]) -> Result<(), String> {
    let status =
        std::process::Command::new("kill").arg(which).args(pids).status().map_err(|e| format!("kill {which}: {e}"))?;
    // A backend may have ended since the list was read; the others got the signal.
    if !status.success() {
        eprintln!("kill {which}: some of {pids:?} were gone");
    }
    Ok(())
}

fn restart(cluster: &Cluster) -> Result<String, String> {
    let started = Instant::now();
    crate::common::caught(|| cluster.restart())?;
    Ok(format!("back in {} ms", started.elapsed().as_millis()))
}
