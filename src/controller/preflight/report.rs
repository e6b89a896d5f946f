//! What the preflight found: findings by severity, the journal's facts, and the report a
//! person reads at a terminal.

use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// How much a finding matters. Ordered: blockers first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The cutover must not start until this is fixed.
    Blocker,
    /// The cutover can run, but something will not carry over on its own.
    Warning,
    /// For the record.
    Info,
}

/// One verdict of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Short name of the check, such as `wal_level` or `replica_identity`.
    pub check: &'static str,
    /// What was found, and what to do about it.
    pub message: String,
    /// The objects concerned (`schema.table`, role names, ...), possibly none.
    pub items: Vec<String>,
}

/// Everything the preflight found, and the facts the journal keeps: `blue_server_version_num`,
/// `green_server_version_num`, `database_size_bytes`, `green_database_exists` and
/// `replica_identity_full` (the allowed `schema.table` names the caller must set FULL).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub facts: Map<String, Value>,
}

impl Report {
    /// The findings that stop the cutover.
    pub fn blockers(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|finding| finding.severity == Severity::Blocker)
    }

    /// True when nothing blocks the cutover.
    pub fn is_ok(&self) -> bool {
        self.blockers().next().is_none()
    }

    pub(super) fn add(
        &mut self,
        severity: Severity,
        check: &'static str,
        message: impl Into<String>,
        items: Vec<String>,
    ) {
        self.findings.push(Finding { severity, check, message: message.into(), items });
    }

    /// Adds a finding only when `items` is not empty.
    pub(super) fn add_list(&mut self, severity: Severity, check: &'static str, message: &str, items: Vec<String>) {
        if !items.is_empty() {
            self.add(severity, check, message, items);
        }
    }

    pub(super) fn fact(&mut self, key: &str, value: impl Into<Value>) {
        self.facts.insert(key.to_string(), value.into());
    }

    pub(super) fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|finding| finding.severity == severity).count()
    }
}

/// Items shown per finding; the rest are counted.
const ITEMS_SHOWN: usize = 20;

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, not write_str: the report aligns severities with `{:<8}`.
        f.pad(match self {
            Severity::Blocker => "BLOCKER",
            Severity::Warning => "WARNING",
            Severity::Info => "NOTE",
        })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<8} {}: {}", self.severity, self.check, self.message)?;
        for item in self.items.iter().take(ITEMS_SHOWN) {
            writeln!(f, "           - {item}")?;
        }
        if self.items.len() > ITEMS_SHOWN {
            writeln!(f, "           ... and {} more", self.items.len() - ITEMS_SHOWN)?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    /// A summary line, then the findings, blockers first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_ok() { "passed" } else { "FAILED" };
        writeln!(
            f,
            "preflight {verdict}: {} blockers, {} warnings, {} notes",
            self.count(Severity::Blocker),
            self.count(Severity::Warning),
            self.count(Severity::Info)
        )?;
        let mut findings: Vec<&Finding> = self.findings.iter().collect();
        findings.sort_by_key(|finding| finding.severity);
        findings.iter().try_for_each(|finding| write!(f, "{finding}"))
    }
}
