//! The names of one plan's replication objects. Publications and subscriptions live in a
//! database, but slots are per cluster: two plans for two databases of one cluster must not
//! share a name. The forward link (blue -> green: publication, slot, including the
//! snapshot's slot, and subscription) is `pgflip_<base>_fwd`, the reverse link
//! `pgflip_<base>_rev`, where the base is `[cutover] name`, by default the database's name,
//! made a valid slot name (`[a-z0-9_]`, at most 63 characters in all). A base that had to be
//! changed to fit gets a short hash of the original, so `Ledger` and `ledger` still differ.
//!
//! The journal records the names at the snapshot. A journal that has a snapshot but no names
//! was written before names were derived: it keeps the old fixed names, `pgflip` and
//! `pgflip_reverse`, whose objects exist under those names.

use std::borrow::Cow;
use std::fmt::Write;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::journal::Journal;
use super::links::Link;
use super::phase::Phase;
use super::plan::Plan;

/// The longest slot name PostgreSQL takes (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;
const PREFIX: &str = "pgflip_";
const FORWARD_SUFFIX: &str = "_fwd";
const REVERSE_SUFFIX: &str = "_rev";
/// `_` and eight hex digits.
const HASH_LEN: usize = 9;

/// The two links' names: each names the link's publication, slot and subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkNames {
    pub forward: Cow<'static, str>,
    pub reverse: Cow<'static, str>,
}

/// The names of journals written before names were derived from the plan.
pub const LEGACY: LinkNames = LinkNames { forward: Cow::Borrowed("pgflip"), reverse: Cow::Borrowed("pgflip_reverse") };

impl LinkNames {
    /// The names for `base` (`[cutover] name` or the database's name).
    pub fn derive(base: &str) -> LinkNames {
        let base = slot_base(base);
        LinkNames {
            forward: Cow::Owned(format!("{PREFIX}{base}{FORWARD_SUFFIX}")),
            reverse: Cow::Owned(format!("{PREFIX}{base}{REVERSE_SUFFIX}")),
        }
    }

    /// The names a command works with: the journal's when it recorded them, the old fixed
    /// names when its snapshot ran before names were recorded, the plan's otherwise.
    pub fn resolve(plan: &Plan, journal: &Journal) -> LinkNames {
        match journal.links() {
            Some(names) => names.clone(),
            None if journal.phase(Phase::Snapshot).is_some() => LEGACY,
            None => LinkNames::derive(plan.cutover.name.as_deref().unwrap_or(plan.database())),
        }
    }

    /// Blue -> green.
    pub fn forward(&self) -> Link<'_> {
        Link { from: "blue", to: "green", name: &self.forward }
    }

    /// Green -> blue.
    pub fn reverse(&self) -> Link<'_> {
        Link { from: "green", to: "blue", name: &self.reverse }
    }

    /// Whether `name` is one of these links' names.
    pub fn owns(&self, name: &str) -> bool {
        name == self.forward || name == self.reverse
    }

    /// The advisory lock key of a controller working with these names (`pg_try_advisory_lock`).
    pub fn lock_key(&self) -> i64 {
        let digest = Sha256::digest(format!("pgflip controller {}", self.forward).as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(bytes)
    }
}

/// `name` as the middle of a slot name: lowercase, `[a-z0-9_]`, short enough for the prefix
/// and a suffix; when it had to change, eight hex digits of its hash are added.
fn slot_base(name: &str) -> String {
    let room = MAX_NAME - PREFIX.len() - FORWARD_SUFFIX.len().max(REVERSE_SUFFIX.len());
    let cleaned: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    if cleaned == name && !name.is_empty() && name.len() <= room {
        return cleaned;
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut hash = String::with_capacity(HASH_LEN);
    hash.push('_');
    for byte in &digest[..4] {
        let _ = write!(hash, "{byte:02x}");
    }
    let kept: String = cleaned.chars().take(room - HASH_LEN).collect();
    format!("{kept}{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        name.len() <= MAX_NAME && name.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
    }

    #[test]
    fn a_plain_database_name_is_kept() {
        let names = LinkNames::derive("ledger");
        assert_eq!((&*names.forward, &*names.reverse), ("pgflip_ledger_fwd", "pgflip_ledger_rev"));
    }

    #[test]
    fn other_names_are_made_valid_and_stay_apart() {
        let long = "x".repeat(200);
        for name in ["Ledger", "my-db", "日本", "", long.as_str(), "ledger_fwd"] {
            let names = LinkNames::derive(name);
            assert!(valid(&names.forward) && valid(&names.reverse), "{names:?}");
        }
        assert_ne!(LinkNames::derive("Ledger"), LinkNames::derive("ledger"));
        assert_ne!(LinkNames::derive("my-db"), LinkNames::derive("my_db"));
        assert_ne!(LinkNames::derive(&long), LinkNames::derive(&"x".repeat(201)));
        // One plan's reverse name is never another plan's forward name.
        assert_ne!(LinkNames::derive("a_fwd").reverse, LinkNames::derive("a").forward);
        assert!(!LinkNames::derive("x").owns("pgflip") && LEGACY.owns("pgflip_reverse"));
    }

    #[test]
    fn the_journal_s_names_win_and_a_snapshot_without_them_had_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let plan = "[blue]\nurl = \"postgres://a@b/Shop\"\n[green]\nurl = \"postgres://a@g\"\n[app]\nroles = []\n";
        let plan = Plan::parse(plan, dir.path()).unwrap();
        let mut journal = Journal::open(&dir.path().join("journal.json")).unwrap();
        assert_eq!(LinkNames::resolve(&plan, &journal), LinkNames::derive("Shop"));
        journal.start(Phase::Snapshot).unwrap();
        assert_eq!(LinkNames::resolve(&plan, &journal), LEGACY);
        journal.record_links(&LinkNames::derive("other")).unwrap();
        assert_eq!(LinkNames::resolve(&plan, &journal), LinkNames::derive("other"));
    }

    #[test]
    fn lock_keys_differ_by_name() {
        assert_ne!(LinkNames::derive("a").lock_key(), LinkNames::derive("b").lock_key());
        assert_eq!(LinkNames::derive("a").lock_key(), LinkNames::derive("a").lock_key());
    }
}
