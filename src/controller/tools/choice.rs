//! Which installation of PostgreSQL's client programs the controller runs when the plan
//! names none: a choice over what was found and the servers' major versions, with no I/O
//! ([`super::installations`] finds and probes them).
//!
//! pg_dump must be at least as new as blue (it refuses a newer server), and PostgreSQL
//! recommends the newer server's (green's) for an upgrade; pg_restore comes from the same
//! installation. A pg_dump newer than green is the last resort: its output is not
//! guaranteed to load into an older server.

use std::fmt;
use std::path::PathBuf;

use super::version::ProgramVersion;

/// One directory holding pg_dump and pg_restore, with what each says of its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub dir: PathBuf,
    pub pg_dump: ProgramVersion,
    pub pg_restore: ProgramVersion,
}

impl Installation {
    /// Its major version: pg_dump's, when pg_restore reports the same one.
    pub fn major(&self) -> Option<i32> {
        let dump = self.pg_dump.major()?;
        (self.pg_restore.major() == Some(dump)).then_some(dump)
    }
}

impl fmt::Display for Installation {
    /// `/usr/lib/postgresql/15/bin (15)`, or what was wrong with it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.dir.display();
        match (&self.pg_dump.found, &self.pg_restore.found) {
            (Err(why), _) => write!(f, "{dir} (pg_dump {why})"),
            (_, Err(why)) => write!(f, "{dir} (pg_restore {why})"),
            (Ok((dump, _)), Ok((restore, _))) if dump != restore => {
                write!(f, "{dir} (pg_dump {dump}, pg_restore {restore})")
            }
            (Ok((dump, _)), Ok(_)) => write!(f, "{dir} ({dump})"),
        }
    }
}

/// Why an installation was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It is green's major version, as PostgreSQL recommends.
    Greens,
    /// None is green's: the newest from blue's version up to green's.
    NewestBelowGreen,
    /// None is from blue's to green's: the oldest of those newer than green.
    ClosestAboveGreen,
    /// None is at least as new as blue: the newest found (or the first, when none reports
    /// a version pg_restore shares), for preflight to refuse naming it.
    NoneSuitable,
}

/// The installation chosen, by its index in what was found, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub index: usize,
    pub reason: Reason,
    pub blue: i32,
    pub green: i32,
}

impl fmt::Display for Choice {
    /// Why, for a person.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (blue, green) = (self.blue, self.green);
        match self.reason {
            Reason::Greens => write!(f, "green's version ({green}), as PostgreSQL recommends for an upgrade"),
            Reason::NewestBelowGreen => {
                write!(f, "none of green's version ({green}) was found: the newest from blue's ({blue}) up")
            }
            Reason::ClosestAboveGreen => write!(
                f,
                "none from blue's version ({blue}) to green's ({green}) was found: the oldest newer than green"
            ),
            Reason::NoneSuitable => write!(f, "none found is at least as new as blue ({blue})"),
        }
    }
}

/// Chooses among `found` (in order of preference when two have one major version: PATH's
/// first) for blue on `blue` and green on `green` (major versions); `None` when nothing was
/// found.
pub fn choose(found: &[Installation], blue: i32, green: i32) -> Option<Choice> {
    let versions: Vec<(usize, i32)> = found.iter().enumerate().filter_map(|(i, f)| Some((i, f.major()?))).collect();
    // The first of the highest (or lowest) major among those `keep` lets through.
    let best = |keep: &dyn Fn(i32) -> bool, newest: bool| {
        versions.iter().filter(|(_, major)| keep(*major)).fold(None, |best: Option<(usize, i32)>, &(i, major)| {
            match best {
                Some((_, m)) if (newest && major <= m) || (!newest && major >= m) => best,
                _ => Some((i, major)),
            }
        })
    };
    let (index, reason) = if let Some((i, _)) = best(&|m| m == green, true) {
        (i, Reason::Greens)
    } else if let Some((i, _)) = best(&|m| m >= blue && m < green, true) {
        (i, Reason::NewestBelowGreen)
    } else if let Some((i, _)) = best(&|m| m > green, false) {
        (i, Reason::ClosestAboveGreen)
    } else if let Some((i, _)) = best(&|_| true, true) {
        (i, Reason::NoneSuitable)
    } else if !found.is_empty() {
        (0, Reason::NoneSuitable)
    } else {
        return None;
    };
    Some(Choice { index, reason, blue, green })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An installation in `dir` whose pg_dump and pg_restore report `dump` and `restore`.
    fn at(dir: &str, dump: i32, restore: i32) -> Installation {
        let program = |name: &str, major: i32| ProgramVersion {
            path: PathBuf::from(dir).join(name),
            found: Ok((major, format!("{name} (PostgreSQL) {major}.2"))),
        };
        Installation {
            dir: PathBuf::from(dir),
            pg_dump: program("pg_dump", dump),
            pg_restore: program("pg_restore", restore),
        }
    }

    fn chosen(found: &[Installation], blue: i32, green: i32) -> Option<(&str, Reason)> {
        choose(found, blue, green).map(|c| (found[c.index].dir.to_str().unwrap(), c.reason))
    }

    #[test]
    fn greens_version_wins_wherever_it_is() {
        let found = [at("/usr/local/bin", 15, 15), at("/usr/lib/postgresql/18/bin", 18, 18), at("/pg17", 17, 17)];
        assert_eq!(chosen(&found, 13, 17), Some(("/pg17", Reason::Greens)));
        // Of two with green's version, the one found first (PATH comes first).
        let found = [at("/opt/a", 17, 17), at("/opt/b", 17, 17)];
        assert_eq!(chosen(&found, 15, 17), Some(("/opt/a", Reason::Greens)));
    }

    #[test]
    fn without_greens_the_newest_from_blues_up_then_the_closest_above_green() {
        let found = [at("/a", 13, 13), at("/b", 15, 15), at("/c", 14, 14), at("/d", 18, 18)];
        assert_eq!(chosen(&found, 13, 17), Some(("/b", Reason::NewestBelowGreen)));
        // The system's 15 dumps a 15 blue for a 17 green.
        assert_eq!(
            chosen(&[at("/usr/lib/postgresql/15/bin", 15, 15)], 15, 17).map(|c| c.1),
            Some(Reason::NewestBelowGreen)
        );
        let found = [at("/a", 12, 12), at("/e", 18, 18), at("/f", 19, 19)];
        assert_eq!(chosen(&found, 13, 17), Some(("/e", Reason::ClosestAboveGreen)));
    }

    #[test]
    fn an_installation_whose_programs_disagree_or_fail_is_not_chosen() {
        let mut broken = at("/broken", 17, 17);
        broken.pg_restore.found = Err("cannot be run: No such file or directory".into());
        let found = [at("/mixed", 17, 15), broken, at("/ok", 15, 15)];
        assert_eq!(chosen(&found, 15, 17), Some(("/ok", Reason::NewestBelowGreen)));
        assert_eq!(found[0].to_string(), "/mixed (pg_dump 17, pg_restore 15)");
        assert_eq!(found[1].to_string(), "/broken (pg_restore cannot be run: No such file or directory)");
        assert_eq!(found[2].to_string(), "/ok (15)");
    }

    #[test]
    fn with_nothing_suitable_the_choice_is_the_newest_found_for_preflight_to_refuse() {
        let found = [at("/a", 12, 12), at("/b", 14, 14), at("/c", 14, 14)];
        let choice = choose(&found, 15, 17).expect("a choice");
        assert_eq!((found[choice.index].dir.to_str(), choice.reason), (Some("/b"), Reason::NoneSuitable));
        assert_eq!(choice.to_string(), "none found is at least as new as blue (15)");
        // Only broken ones: the first, so that preflight names it.
        let found = [at("/x", 16, 15), at("/y", 17, 16)];
        assert_eq!(chosen(&found, 15, 17), Some(("/x", Reason::NoneSuitable)));
        assert_eq!(choose(&[], 15, 17), None);
    }
}
