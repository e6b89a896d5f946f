//! The phases of `pgflip cutover` that bring green up to date with blue, in run order.
//! Their names are the ones the journal, the CLI and the logs use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One phase of the run, in the order the controller runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Checks blue and green can take part (wal_level, slots, primary keys, roles).
    Preflight,
    /// Creates the publication and the slot on blue and dumps blue at the slot's snapshot.
    Snapshot,
    /// Restores the dump into green.
    Restore,
    /// Runs the plan's migration command against green.
    Migrate,
    /// Runs the plan's smoke test command against green.
    Smoke,
    /// Subscribes green to blue and waits until its lag stays under the plan's thresholds.
    Catchup,
    /// Pauses the sidecars, fences blue, waits for the fence LSN on green, sets up the way
    /// back, and switches the sidecars to green.
    Cutover,
    /// Runs the plan's checks, the built-in table checksums and the sidecars' error rate
    /// through the validation window.
    Validate,
    /// The cutover in reverse: back to blue, losing nothing green took in.
    Rollback,
    /// Drops replication both ways and takes the final archive dump of blue.
    Promote,
    /// Runs the plan's retire command.
    Retire,
}

impl Phase {
    /// Every phase, in declaration order.
    pub const ALL: [Phase; 11] = [
        Phase::Preflight,
        Phase::Snapshot,
        Phase::Restore,
        Phase::Migrate,
        Phase::Smoke,
        Phase::Catchup,
        Phase::Cutover,
        Phase::Validate,
        Phase::Rollback,
        Phase::Promote,
        Phase::Retire,
    ];

    /// The phases `run` goes through, in order: up to the validation window. Rollback and
    /// promote (with retire) are commands of their own.
    pub const RUN: &'static [Phase] = Phase::ALL.split_at(8).0;

    /// The lowercase name used in the journal, on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Snapshot => "snapshot",
            Phase::Restore => "restore",
            Phase::Migrate => "migrate",
            Phase::Smoke => "smoke",
            Phase::Catchup => "catchup",
            Phase::Cutover => "cutover",
            Phase::Validate => "validate",
            Phase::Rollback => "rollback",
            Phase::Promote => "promote",
            Phase::Retire => "retire",
        }
    }

    /// The phase `run` goes on with after this one, `None` after the last.
    pub fn next(self) -> Option<Phase> {
        Phase::RUN.get(self.index() + 1).copied()
    }

    /// The phase's number, 1 to 11: the value of the `pgflip_cutover_phase` gauge.
    pub fn number(self) -> i64 {
        // At most 11, so the cast is lossless.
        self.index() as i64 + 1
    }

    /// The phase's index in [`Phase::ALL`] (the variants are declared in run order).
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A phase name that is not one of [`Phase::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phase {0:?}: expected one of {names}", names = phase_names())]
pub struct UnknownPhase(pub String);

fn phase_names() -> String {
    Phase::ALL.map(Phase::name).join(", ")
}

impl FromStr for Phase {
    type Err = UnknownPhase;

    fn from_str(s: &str) -> Result<Phase, UnknownPhase> {
        Phase::ALL.into_iter().find(|phase| phase.name() == s).ok_or_else(|| UnknownPhase(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, phase) in Phase::ALL.into_iter().enumerate() {
            assert_eq!(phase.index(), i);
            assert_eq!(phase.number(), i as i64 + 1);
        }
        assert!(Phase::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn next_walks_the_run_order() {
        assert_eq!(Phase::Preflight.next(), Some(Phase::Snapshot));
        assert_eq!(Phase::Smoke.next(), Some(Phase::Catchup));
        assert_eq!(Phase::Catchup.next(), Some(Phase::Cutover));
        assert_eq!(Phase::Validate.next(), None);
    }

    #[test]
    fn names_round_trip_through_from_str_display_and_serde() {
        for phase in Phase::ALL {
            assert_eq!(phase.name().parse::<Phase>(), Ok(phase));
            assert_eq!(phase.to_string(), phase.name());
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{}\"", phase.name()));
            assert_eq!(serde_json::from_str::<Phase>(&json).unwrap(), phase);
        }
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let err = "x".parse::<Phase>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown phase "x": expected one of preflight, snapshot, restore, migrate, smoke, catchup, cutover, validate, rollback, promote, retire"#
        );
        assert!("Snapshot".parse::<Phase>().is_err());
    }
}
