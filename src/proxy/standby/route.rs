//! Where the standby listener's sessions go: decided from the registry, the controller's
//! last report on the standby, what the sidecar saw when it connected, and the policy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::api::{StandbyFallback, StandbyRoute, StandbyState};

/// The controller's last report on one upstream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    pub state: StandbyState,
    /// Seconds behind the active upstream, when known.
    pub lag: Option<f64>,
    /// When it arrived.
    pub at: Instant,
}

/// A connection to an upstream failed: the standby is not tried again before `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub until: Instant,
    pub error: String,
}

/// The policy from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub fallback: StandbyFallback,
    pub max_lag: Option<Duration>,
}

/// What the route is decided from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub active: &'a str,
    /// Every registered upstream.
    pub upstreams: &'a [String],
    pub reports: &'a HashMap<String, Report>,
    pub unreachable: &'a HashMap<String, Unreachable>,
    pub policy: Policy,
    pub now: Instant,
}

/// Where the standby listener's sessions go, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The upstream that is not active, if there is one.
    pub standby: Option<String>,
    pub route: StandbyRoute,
    /// The upstream sessions go to; `None` when refusing.
    pub target: Option<String>,
    /// Why the route is not the standby.
    pub reason: Option<String>,
}

/// Decides the route.
///
/// The standby is the one upstream besides the active one (with several, the one the
/// controller last reported replicating). It serves while the controller's last report
/// says it is replicating and no connection to it has just failed; otherwise the
/// fallback policy applies. Beyond `max_lag` (the reported lag plus the report's age,
/// since a report that stops coming says nothing of the lag since), sessions go to the
/// active upstream whatever the fallback.
pub fn decide(inputs: &Inputs<'_>) -> Decision {
    let others: Vec<&String> = inputs.upstreams.iter().filter(|name| *name != inputs.active).collect();
    let standby = match others.as_slice() {
        [] => None,
        [only] => Some((*only).clone()),
        several => several
            .iter()
            .filter_map(|name| inputs.reports.get(*name).map(|report| (*name, report)))
            .filter(|(_, report)| report.state == StandbyState::Replicating)
            .max_by_key(|(_, report)| report.at)
            .map(|(name, _)| name.clone()),
    };
    let unavailable = |standby: Option<String>, reason: String| match inputs.policy.fallback {
        StandbyFallback::Active => Decision {
            standby,
            route: StandbyRoute::Active,
            target: Some(inputs.active.to_owned()),
            reason: Some(reason),
        },
        StandbyFallback::Refuse => {
            Decision { standby, route: StandbyRoute::Refuse, target: None, reason: Some(reason) }
        }
    };
    let Some(name) = standby else {
        let reason = if others.is_empty() {
            format!("no standby: \"{}\" is the only upstream", inputs.active)
        } else {
            format!("no standby: {} upstreams besides the active one and none reported replicating", others.len())
        };
        return unavailable(None, reason);
    };
    let report = match inputs.reports.get(&name) {
        None => return unavailable(Some(name.clone()), format!("no replication state reported for \"{name}\" yet")),
        Some(report) => report,
    };
    match report.state {
        StandbyState::Replicating => {}
        StandbyState::Fenced => return unavailable(Some(name.clone()), format!("standby \"{name}\" is fenced")),
        StandbyState::Retired => return unavailable(Some(name.clone()), format!("standby \"{name}\" is retired")),
    }
    if let Some(down) = inputs.unreachable.get(&name).filter(|down| down.until > inputs.now) {
        return unavailable(Some(name.clone()), format!("standby \"{name}\" is unreachable: {}", down.error));
    }
    if let Some(max) = inputs.policy.max_lag {
        let over = match report.lag {
            None => Some(format!("the lag of standby \"{name}\" is unknown")),
            Some(lag) => {
                let lag = lag + inputs.now.saturating_duration_since(report.at).as_secs_f64();
                (lag > max.as_secs_f64()).then(|| format!("standby \"{name}\" lags {lag:.1} s"))
            }
        };
        if let Some(over) = over {
            return Decision {
                standby: Some(name),
                route: StandbyRoute::Active,
                target: Some(inputs.active.to_owned()),
                reason: Some(format!("{over}, over max_standby_lag = {} s", max.as_secs_f64())),
            };
        }
    }
    Decision { standby: Some(name.clone()), route: StandbyRoute::Standby, target: Some(name), reason: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        upstreams: Vec<String>,
        reports: HashMap<String, Report>,
        unreachable: HashMap<String, Unreachable>,
        policy: Policy,
        now: Instant,
    }

    impl Case {
        fn new() -> Case {
            Case {
                upstreams: vec!["blue".into(), "green".into()],
                reports: HashMap::new(),
                unreachable: HashMap::new(),
                policy: Policy { fallback: StandbyFallback::Active, max_lag: None },
                now: Instant::now(),
            }
        }

        fn report(mut self, name: &str, state: StandbyState, lag: Option<f64>, age_s: u64) -> Case {
            let at = self.now - Duration::from_secs(age_s);
            self.reports.insert(name.into(), Report { state, lag, at });
            self
        }

        fn decide(&self, active: &str) -> Decision {
            decide(&Inputs {
                active,
                upstreams: &self.upstreams,
                reports: &self.reports,
                unreachable: &self.unreachable,
                policy: self.policy,
                now: self.now,
            })
        }
    }

    #[test]
    fn the_other_upstream_serves_once_reported_replicating() {
        let case = Case::new();
        let d = case.decide("blue");
        assert_eq!(
            (d.route, d.target.as_deref(), d.standby.as_deref()),
            (StandbyRoute::Active, Some("blue"), Some("green"))
        );
        assert!(d.reason.unwrap().contains("no replication state reported"));
        let case = case.report("green", StandbyState::Replicating, Some(0.5), 1);
        let d = case.decide("blue");
        assert_eq!((d.route, d.target.as_deref(), d.reason), (StandbyRoute::Standby, Some("green"), None));
        // After a flip the standby is blue, with no report of its own yet.
        assert_eq!(case.decide("green").route, StandbyRoute::Active);
    }

    #[test]
    fn fenced_retired_and_unreachable_follow_the_fallback() {
        for (fallback, route, target) in [
            (StandbyFallback::Active, StandbyRoute::Active, Some("blue")),
            (StandbyFallback::Refuse, StandbyRoute::Refuse, None),
        ] {
            let mut case = Case::new();
            case.policy.fallback = fallback;
            for state in [StandbyState::Fenced, StandbyState::Retired] {
                let d = case.clone_with(state).decide("blue");
                assert_eq!((d.route, d.target.as_deref()), (route, target), "{state:?}");
                assert!(d.reason.unwrap().contains(state.as_str()));
            }
            let mut case = case.report("green", StandbyState::Replicating, Some(0.0), 0);
            case.unreachable.insert(
                "green".into(),
                Unreachable { until: case.now + Duration::from_secs(1), error: "refused".into() },
            );
            let d = case.decide("blue");
            assert_eq!((d.route, d.target.as_deref()), (route, target));
            assert!(d.reason.unwrap().contains("unreachable: refused"));
            case.unreachable.get_mut("green").unwrap().until = case.now;
            assert_eq!(case.decide("blue").route, StandbyRoute::Standby, "tried again once the wait is over");
        }
    }

    #[test]
    fn lag_over_the_limit_goes_to_the_active_upstream_even_when_refusing() {
        let mut case = Case::new().report("green", StandbyState::Replicating, Some(2.0), 0);
        case.policy = Policy { fallback: StandbyFallback::Refuse, max_lag: Some(Duration::from_secs(5)) };
        assert_eq!(case.decide("blue").route, StandbyRoute::Standby);
        let case = case.report("green", StandbyState::Replicating, Some(2.0), 4);
        let d = case.decide("blue");
        assert_eq!((d.route, d.target.as_deref()), (StandbyRoute::Active, Some("blue")), "2 s reported 4 s ago");
        assert!(d.reason.unwrap().contains("over max_standby_lag = 5 s"));
        let case = case.report("green", StandbyState::Replicating, None, 0);
        assert!(case.decide("blue").reason.unwrap().contains("unknown"));
    }

    #[test]
    fn one_upstream_has_no_standby_and_several_take_the_last_reported() {
        let mut case = Case::new();
        case.upstreams = vec!["blue".into()];
        let d = case.decide("blue");
        assert_eq!((d.standby, d.route), (None, StandbyRoute::Active));
        case.upstreams = vec!["blue".into(), "green".into(), "grey".into()];
        let case = case.report("green", StandbyState::Replicating, Some(0.0), 3).report(
            "grey",
            StandbyState::Replicating,
            Some(0.0),
            1,
        );
        assert_eq!(case.decide("blue").target.as_deref(), Some("grey"));
    }

    impl Case {
        fn clone_with(&self, state: StandbyState) -> Case {
            let mut reports = self.reports.clone();
            reports.insert("green".into(), Report { state, lag: Some(0.0), at: self.now });
            Case {
                upstreams: self.upstreams.clone(),
                reports,
                unreachable: self.unreachable.clone(),
                policy: self.policy,
                now: self.now,
            }
        }
    }
}
