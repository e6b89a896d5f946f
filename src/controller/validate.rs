//! The checks of the validation window after a cutover: the plan's `[[validate.check]]`
//! queries and, with `table_checksums`, a row count and checksum of every table that blue
//! and green share.
//!
//! Logical replication runs from green (serving) to blue, so under live writes blue lags a
//! little: a check that fails is run again every [`ROUND_PAUSE`] until it passes or the
//! deadline passes, and only its last result counts.

use std::fmt;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};
use tracing::{info, warn};

use super::error::CutoverError;
use super::plan::{CheckMode, ValidateSection};

/// The wait between two rounds of the checks that have not passed yet.
pub const ROUND_PAUSE: Duration = Duration::from_millis(500);

/// The longest a value is shown in a check's detail, in characters.
const MAX_VALUE_CHARS: usize = 64;

pub use checksum::{KeyColumn, TableToCompare};

/// A table as one side's catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CatalogTable {
    schema: String,
    name: String,
    /// Non-dropped, non-generated columns, in attnum order.
    columns: Vec<String>,
    /// The primary key's columns in key order; empty without a primary key.
    primary_key: Vec<String>,
    /// Whether each of them has a collation.
    key_collatable: Vec<bool>,
}

/// Tables (relkind 'r' and 'p', not partitions' children: relispartition = false) present on both blue and green
/// by schema and name, excluding schemas pg_catalog, information_schema, pg_toast*, and `pgflip`; `columns` are the
/// non-dropped, non-generated columns present on both sides with the same name (in blue's attnum order);
/// `order_by` is the primary key columns (blue's), or all `columns` when there is none.
///
/// Unlogged and temporary tables are left out too: logical replication does not carry them.
/// When one of blue's primary key columns is missing on green, `order_by` is all `columns`.
pub async fn common_tables(blue: &Client, green: &Client) -> Result<Vec<TableToCompare>, CutoverError> {
    let blue_tables = catalog_tables(blue, "blue").await?;
    let green_tables = catalog_tables(green, "green").await?;
    Ok(match_tables(blue_tables, &green_tables))
}

/// Reads one side's tables (see [`common_tables`]).
async fn catalog_tables(client: &Client, side: &str) -> Result<Vec<CatalogTable>, CutoverError> {
    let version_sql = "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4";
    let version: i32 = client
        .query_one(version_sql, &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(CutoverError::sql(format!("reading the server version of {side}")))?;
    let what = format!("listing the tables of {side}");
    let rows = client.query(&catalog_sql(version), &[]).await.map_err(CutoverError::sql(what.clone()))?;
    rows.iter()
        .map(|row| {
            Ok(CatalogTable {
                schema: row.try_get(0)?,
                name: row.try_get(1)?,
                columns: row.try_get(2)?,
                primary_key: row.try_get(3)?,
                key_collatable: row.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(CutoverError::sql(what))
}

/// The catalog query of [`catalog_tables`] for a server of `server_version_num`
/// (generated columns exist from PostgreSQL 12).
fn catalog_sql(server_version_num: i32) -> String {
    let not_generated = if server_version_num >= 120000 { " AND a.attgenerated = ''" } else { "" };
    format!(
        "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text,
                ARRAY(SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped{not_generated}
                       ORDER BY a.attnum),
                ARRAY(SELECT a.attname::pg_catalog.text
                        FROM pg_catalog.pg_index i,
                             pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, pos),
                             pg_catalog.pg_attribute a
                       WHERE i.indrelid = c.oid AND i.indisprimary AND a.attrelid = c.oid AND a.attnum = k.attnum
                       ORDER BY k.pos),
                ARRAY(SELECT a.attcollation <> 0
                        FROM pg_catalog.pg_index i,
                             pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, pos),
                             pg_catalog.pg_attribute a
                       WHERE i.indrelid = c.oid AND i.indisprimary AND a.attrelid = c.oid AND a.attnum = k.attnum
                       ORDER BY k.pos)
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p'
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgflip')
            AND n.nspname !~ '^pg_toast'
          ORDER BY 1, 2"
    )
}

/// Blue's tables that green has too, with the columns both have.
fn match_tables(blue: Vec<CatalogTable>, green: &[CatalogTable]) -> Vec<TableToCompare> {
    blue.into_iter()
        .filter_map(|table| {
            let other = green.iter().find(|g| g.schema == table.schema && g.name == table.name)?;
            let columns: Vec<String> = table.columns.into_iter().filter(|c| other.columns.contains(c)).collect();
            let keyed = !table.primary_key.is_empty() && table.primary_key.iter().all(|k| columns.contains(k));
            let key = match keyed {
                true => table
                    .primary_key
                    .into_iter()
                    .zip(table.key_collatable.into_iter().chain(std::iter::repeat(true)))
                    .map(|(name, collatable)| KeyColumn { name, collatable })
                    .collect(),
                false => Vec::new(),
            };
            Some(TableToCompare { schema: table.schema, name: table.name, columns, key })
        })
        .collect()
}

/// The verdicts of [`run_checks`], in the plan's order, then the tables'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChecksReport {
    pub outcomes: Vec<CheckOutcome>,
}

/// One check's last result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub name: String,
    pub passed: bool,
    /// How many times it ran.
    pub attempts: u32,
    /// Why it failed at its last attempt, e.g. "row 3 differs: blue (1, 500) green (1, 499)"
    /// or "green returned 2 rows, first: (...)" or the SQL error text; `None` when it passed.
    pub detail: Option<String>,
}

impl ChecksReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.passed)
    }

    /// The checks that failed.
    pub fn failed(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.outcomes.iter().filter(|o| !o.passed)
    }
}

/// One line per check: `ok   NAME (N attempts)` or `FAIL NAME (N attempts): DETAIL`.
impl fmt::Display for ChecksReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, outcome) in self.outcomes.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let verdict = if outcome.passed { "ok" } else { "FAIL" };
            let attempts = if outcome.attempts == 1 { "attempt" } else { "attempts" };
            write!(f, "{verdict:<4} {} ({} {attempts})", outcome.name, outcome.attempts)?;
            if let Some(detail) = &outcome.detail {
                write!(f, ": {detail}")?;
            }
        }
        Ok(())
    }
}

/// How a running check's rows are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Same rows, in the same order, on blue and green.
    Compare,
    /// No rows on green.
    Empty,
    /// A table's count and checksum ([`checksum::compare`]), the same on both.
    Table,
}

/// A check as it runs, with its result so far.
#[derive(Debug, Clone)]
struct Probe {
    sql: String,
    kind: Kind,
    /// The table of a [`Kind::Table`] check.
    table: Option<TableToCompare>,
    outcome: CheckOutcome,
}

impl Probe {
    /// A check that has not run yet.
    fn new(name: String, sql: String, kind: Kind) -> Probe {
        Probe { sql, kind, table: None, outcome: CheckOutcome { name, passed: false, attempts: 0, detail: None } }
    }

    /// A table's check that has not run yet.
    fn table(table: &TableToCompare) -> Probe {
        Probe { table: Some(table.clone()), ..Probe::new(table.check_name(), String::new(), Kind::Table) }
    }
}

/// The plan's checks, then one per table when `section.table_checksums`.
fn probes(section: &ValidateSection, tables: &[TableToCompare]) -> Vec<Probe> {
    let plan = section.checks.iter().map(|check| {
        let kind = match check.mode {
            CheckMode::Compare => Kind::Compare,
            CheckMode::Empty => Kind::Empty,
        };
        Probe::new(check.name.clone(), check.sql.clone(), kind)
    });
    let tables = tables.iter().filter(|_| section.table_checksums);
    plan.chain(tables.map(Probe::table)).collect()
}

/// Runs the plan's checks and, when `section.table_checksums`, a built-in check per table
/// (named `table <schema>.<name>`: `count(*)` and a sum of the rows' folded md5s, only `columns`, in
/// primary-key ranges of `[validate] checksum_chunk_rows`: see [`checksum`]) until every check passes or
/// `deadline` passes; a check that passed is not run again; between rounds wait 500 ms. Only the last
/// result of each check counts.
///
/// The first round runs every check; a later round starts no check once `deadline` has
/// passed. A SQL error is a failed attempt; a lost connection is an `Err`.
pub async fn run_checks(
    blue: &Client,
    green: &Client,
    section: &ValidateSection,
    tables: &[TableToCompare],
    deadline: Instant,
    snapshots: Option<&point::MatchedSnapshots>,
) -> Result<ChecksReport, CutoverError> {
    let mut probes = probes(section, tables);
    let mut round: u32 = 0;
    loop {
        round += 1;
        for probe in probes.iter_mut().filter(|p| !p.outcome.passed) {
            if round > 1 && Instant::now() >= deadline {
                break;
            }
            let detail = match &probe.table {
                Some(table) => {
                    let compared =
                        checksum::compare(blue, green, table, section.checksum_chunk_rows, snapshots).await?;
                    info!(check = %probe.outcome.name, chunks = compared.chunks, same = compared.difference.is_none(), "table compared");
                    compared.difference
                }
                None => attempt(blue, green, probe.kind, &probe.sql, snapshots).await?,
            };
            probe.outcome.attempts += 1;
            probe.outcome.passed = detail.is_none();
            probe.outcome.detail = detail;
        }
        let failing = probes.iter().filter(|p| !p.outcome.passed).count();
        info!(round, failing, "validation checks ran");
        if failing == 0 || Instant::now() + ROUND_PAUSE >= deadline {
            break;
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
    let report = ChecksReport { outcomes: probes.into_iter().map(|p| p.outcome).collect() };
    for outcome in report.failed() {
        let detail = outcome.detail.as_deref().unwrap_or("");
        warn!(check = %outcome.name, attempts = outcome.attempts, detail, "validation check failed");
    }
    Ok(report)
}

/// Runs a check once (on the snapshots, when given): `None` when it passes, else why it
/// failed.
async fn attempt(
    blue: &Client,
    green: &Client,
    kind: Kind,
    sql: &str,
    snapshots: Option<&point::MatchedSnapshots>,
) -> Result<Option<String>, CutoverError> {
    let green_snapshot = snapshots.map(|s| s.green.as_str());
    if kind == Kind::Empty {
        return Ok(match point::rows_on(green, sql, green_snapshot).await {
            Ok(rows) => describe_not_empty(&rows),
            Err(error) => Some(sql_failure("green", error)?),
        });
    }
    let blue_snapshot = snapshots.map(|s| s.blue.as_str());
    let (blue_rows, green_rows) =
        tokio::join!(point::rows_on(blue, sql, blue_snapshot), point::rows_on(green, sql, green_snapshot));
    Ok(match (blue_rows, green_rows) {
        (Ok(b), Ok(g)) => describe_difference(&b, &g),
        (Err(e), Ok(_)) => Some(sql_failure("blue", e)?),
        (Ok(_), Err(e)) => Some(sql_failure("green", e)?),
        (Err(b), Err(g)) => Some(format!("{}; {}", sql_failure("blue", b)?, sql_failure("green", g)?)),
    })
}

/// A row as text, `None` for NULL.
pub(super) type TextRow = Vec<Option<String>>;

/// Runs `sql` with the simple query protocol and returns every row of every statement.
pub(super) async fn text_rows(client: &Client, sql: &str) -> Result<Vec<TextRow>, tokio_postgres::Error> {
    let mut rows = Vec::new();
    for message in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = message {
            let values = (0..row.len()).map(|i| Ok(row.try_get(i)?.map(str::to_owned)));
            rows.push(values.collect::<Result<TextRow, tokio_postgres::Error>>()?);
        }
    }
    Ok(rows)
}

/// A check's error as the detail of a failed attempt, or an `Err` when the connection to
/// `side` is lost (closed or failing I/O).
pub(super) fn sql_failure(side: &str, error: tokio_postgres::Error) -> Result<String, CutoverError> {
    let io = std::error::Error::source(&error).is_some_and(|cause| cause.is::<std::io::Error>());
    if error.is_closed() || io {
        return Err(CutoverError::sql(format!("running a validation check on {side}"))(error));
    }
    Ok(match error.as_db_error() {
        Some(db) => format!("{side}: {}: {}", db.severity(), db.message()),
        None => format!("{side}: {error}"),
    })
}

/// Why `blue` and `green` differ (the first row that differs, and the row counts when they
/// differ), or `None` when they are the same rows in the same order.
fn describe_difference(blue: &[TextRow], green: &[TextRow]) -> Option<String> {
    let first = (0..blue.len().max(green.len())).find(|&i| blue.get(i) != green.get(i))?;
    let at = first + 1;
    let mut detail = match (blue.get(first), green.get(first)) {
        (Some(b), Some(g)) => format!("row {at} differs: blue {} green {}", show_row(b), show_row(g)),
        (Some(b), None) => format!("row {at} is only on blue: {}", show_row(b)),
        (None, Some(g)) => format!("row {at} is only on green: {}", show_row(g)),
        (None, None) => format!("row {at} differs"),
    };
    if blue.len() != green.len() {
        detail.push_str(&format!("; blue returned {}, green {}", count_rows(blue.len()), green.len()));
    }
    Some(detail)
}

/// Why an `empty` check failed, or `None` when green returned no rows.
fn describe_not_empty(green: &[TextRow]) -> Option<String> {
    let first = green.first()?;
    Some(format!("green returned {}, first: {}", count_rows(green.len()), show_row(first)))
}

/// `N row` or `N rows`.
fn count_rows(n: usize) -> String {
    if n == 1 {
        "1 row".to_owned()
    } else {
        format!("{n} rows")
    }
}

/// A row for a detail: `(1, NULL, text)`, long values cut with `…`.
fn show_row(row: &TextRow) -> String {
    let values = row.iter().map(|value| match value {
        None => "NULL".to_owned(),
        Some(text) if text.chars().count() > MAX_VALUE_CHARS => {
            format!("{}…", text.chars().take(MAX_VALUE_CHARS).collect::<String>())
        }
        Some(text) => text.clone(),
    });
    format!("({})", values.collect::<Vec<_>>().join(", "))
}

pub mod checksum;
pub mod point;

#[cfg(test)]
mod tests;
