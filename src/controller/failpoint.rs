//! Crash points for tests of the journal's recovery: with `PGFLIP_FAILPOINT=NAME` in its
//! environment, the controller exits at once (status 86, no cleanup, as if killed) when
//! it reaches the point NAME. Unset, nothing happens.
//!
//! Points, in a flip's order: `after-fence` (the old side fenced, no fence LSN yet),
//! `after-fence-lsn` (the new side confirmed it), `after-detach` (the link into the new
//! side detached, the way back not attached), `before-switch` (the flip's steps are done,
//! no sidecar switched yet) and `after-first-switch` (exactly one sidecar switched).

/// The variable that names the point.
pub const VARIABLE: &str = "PGFLIP_FAILPOINT";

/// True when the environment names `point`.
pub fn armed(point: &str) -> bool {
    std::env::var(VARIABLE).is_ok_and(|value| value == point)
}

/// Exits the process when the environment names `point`.
pub fn hit(point: &str) {
    if armed(point) {
        eprintln!("pgflip: {VARIABLE}={point}: exiting here");
        std::process::exit(86);
    }
}
