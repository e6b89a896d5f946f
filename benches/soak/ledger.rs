//! The check of every commit: what the clients were told against what both clusters hold.

use crate::load::ClientLog;
use crate::support::Cluster;
use std::collections::HashSet;

/// What the clusters hold against what the clients were told.
#[derive(Debug, Default)]
pub struct LedgerCheck {
    /// Ledger rows on blue and on green.
    pub rows: [usize; 2],
    /// Commits acknowledged to a client and found on neither cluster.
    pub lost: Vec<(usize, i64)>,
    /// Rows on a cluster that no client was told about and none was left in doubt about.
    pub unexpected: Vec<(usize, i64)>,
    /// Rows on both clusters at once: a transaction run twice.
    pub twice: Vec<(usize, i64)>,
    /// Commits left in doubt, and how many of them did commit.
    pub in_doubt: usize,
    pub in_doubt_committed: usize,
    /// Clusters whose balances do not sum to their ledger's row count: a torn transaction.
    pub torn: Vec<String>,
    /// Rows the rogue clients' abandoned transactions wrote that stayed.
    pub abandoned_rows: usize,
    /// Backends of rogue clients still there after the run.
    pub rogue_backends: usize,
}

impl LedgerCheck {
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.unexpected.is_empty()
            && self.twice.is_empty()
            && self.torn.is_empty()
            && self.abandoned_rows == 0
            && self.rogue_backends == 0
    }
}

fn ledger(cluster: &Cluster) -> Result<HashSet<(usize, i64)>, String> {
    let text = crate::common::caught(|| cluster.psql("SELECT client, seq FROM soak_ledger"))?;
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (client, seq) = line.split_once('|').ok_or_else(|| format!("a ledger line {line:?}"))?;
            Ok((
                client.parse().map_err(|e| format!("{line:?}: {e}"))?,
                seq.parse().map_err(|e| format!("{line:?}: {e}"))?,
            ))
        })
        .collect()
}

/// Reads both clusters and compares them with the clients' logs.
pub fn check(blue: &Cluster, green: &Cluster, logs: &[ClientLog]) -> Result<LedgerCheck, String> {
    let sides = [ledger(blue)?, ledger(green)?];
    let mut result = LedgerCheck { rows: [sides[0].len(), sides[1].len()], ..LedgerCheck::default() };
    let held: HashSet<(usize, i64)> = sides[0].union(&sides[1]).copied().collect();
    result.twice = sides[0].intersection(&sides[1]).copied().collect();
    let mut told = HashSet::new();
    for (client, log) in logs.iter().enumerate() {
        for &seq in &log.acked {
            told.insert((client, seq));
            if !held.contains(&(client, seq)) {
                result.lost.push((client, seq));
            }
        }
        for &seq in &log.in_doubt {
            told.insert((client, seq));
            result.in_doubt += 1;
            result.in_doubt_committed += usize::from(held.contains(&(client, seq)));
        }
    }
    result.unexpected = held.difference(&told).copied().collect();
    for (name, cluster) in [("blue", blue), ("green", green)] {
        let sums = crate::common::caught(|| {
            cluster.psql(
                "SELECT (SELECT coalesce(sum(balance), 0) FROM soak_accounts)::text || ' ' || \
                 (SELECT count(*) FROM soak_ledger)::text",
            )
        })?;
        if sums.split(' ').collect::<HashSet<_>>().len() != 1 {
            result.torn.push(format!("{name}: balances and ledger rows {sums}"));
        }
        let abandoned = crate::common::caught(|| cluster.psql("SELECT count(*) FROM soak_accounts WHERE id < 1"))?;
        result.abandoned_rows += abandoned.parse::<usize>().unwrap_or(usize::MAX);
        let rogue = crate::common::caught(|| {
            cluster.psql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}'",
                crate::rogue::APPLICATION
            ))
        })?;
        result.rogue_backends += rogue.parse::<usize>().unwrap_or(usize::MAX);
    }
    result.lost.sort_unstable();
    result.unexpected.sort_unstable();
    Ok(result)
}
