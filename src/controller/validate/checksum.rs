//! A table's row count and checksum on both sides, in primary-key ranges. Each row's md5
//! (of its text, compared columns only) is folded into a bigint (its first 16 hex digits)
//! and the bigints are summed: the sum does not depend on the order of the rows, needs no
//! sort and no memory that grows with the table, and works on every supported version.
//! A keyed table is read a chunk of `chunk_rows` keys at a time (the chunk's upper key is
//! read on blue, and both sides sum the same key range), each chunk on the same snapshots
//! when the validation has them; the first chunk that differs is reported. A table
//! without a primary key is summed in one pass, with a warning.

use tokio_postgres::Client;
use tracing::warn;

use super::super::error::CutoverError;
use super::super::pg::{ident, literal};
use super::{point, sql_failure, TextRow};

/// A column of a table's primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    pub name: String,
    /// Its type has a collation: it is ordered in the "C" collation, the same on both sides.
    pub collatable: bool,
}

/// A table present on both sides, compared by row count and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableToCompare {
    pub schema: String,
    pub name: String,
    /// The columns compared: on both sides under the same name, in blue's order.
    pub columns: Vec<String>,
    /// The primary key, when both sides have all its columns; empty otherwise.
    pub key: Vec<KeyColumn>,
}

impl TableToCompare {
    /// The name of the table's built-in check.
    pub fn check_name(&self) -> String {
        format!("table {}.{}", self.schema, self.name)
    }

    fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    /// The key as a row for ordering and comparing.
    fn key_row(&self) -> String {
        let columns = self.key.iter().map(|k| match k.collatable {
            true => format!("{} COLLATE pg_catalog.\"C\"", ident(&k.name)),
            false => ident(&k.name),
        });
        format!("ROW({})", columns.collect::<Vec<_>>().join(", "))
    }

    /// `values` (a key as text) as a row of literals.
    fn key_literal(values: &[String]) -> String {
        format!("ROW({})", values.iter().map(|v| literal(v)).collect::<Vec<_>>().join(", "))
    }

    /// The condition of the keys after `after` and up to `upto` (each: none = unbounded).
    fn range(&self, after: Option<&[String]>, upto: Option<&[String]>) -> String {
        let mut parts = Vec::new();
        if let Some(after) = after {
            parts.push(format!("{} > {}", self.key_row(), Self::key_literal(after)));
        }
        if let Some(upto) = upto {
            parts.push(format!("{} <= {}", self.key_row(), Self::key_literal(upto)));
        }
        match parts.is_empty() {
            true => "true".to_owned(),
            false => parts.join(" AND "),
        }
    }

    /// One row: the count and the sum of the folded md5s of the rows where `condition` holds.
    pub fn sum_sql(&self, condition: &str) -> String {
        let row = self.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        format!(
            "SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum(('x' || pg_catalog.substr(pg_catalog.md5(\
             ROW({row})::pg_catalog.text), 1, 16))::pg_catalog.bit(64)::pg_catalog.int8), 0) FROM {} WHERE {condition}",
            self.qualified()
        )
    }

    /// The key (as text) of the `chunk_rows`-th row after `after`, when there is one.
    pub fn bound_sql(&self, after: Option<&[String]>, chunk_rows: u64) -> String {
        // Aliased: in ORDER BY an output column's name wins over the table's column.
        let keys =
            self.key.iter().enumerate().map(|(i, k)| format!("{}::pg_catalog.text AS pgflip_key{i}", ident(&k.name)));
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} OFFSET {} LIMIT 1",
            keys.collect::<Vec<_>>().join(", "),
            self.qualified(),
            self.range(after, None),
            self.key.iter().map(|k| self.order_term(k)).collect::<Vec<_>>().join(", "),
            chunk_rows.saturating_sub(1)
        )
    }

    fn order_term(&self, k: &KeyColumn) -> String {
        match k.collatable {
            true => format!("{} COLLATE pg_catalog.\"C\"", ident(&k.name)),
            false => ident(&k.name),
        }
    }
}

/// What comparing a table found: why it differs (`None`: the same), and in how many chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compared {
    pub difference: Option<String>,
    pub chunks: u64,
}

/// Compares `table` on both sides (on the snapshots, when given). A SQL error is a
/// difference (the check fails); a lost connection is an `Err`.
pub async fn compare(
    blue: &Client,
    green: &Client,
    table: &TableToCompare,
    chunk_rows: u64,
    snapshots: Option<&point::MatchedSnapshots>,
) -> Result<Compared, CutoverError> {
    let (blue_snapshot, green_snapshot) = (snapshots.map(|s| s.blue.as_str()), snapshots.map(|s| s.green.as_str()));
    if table.key.is_empty() {
        warn!(table = %table.check_name(), "no primary key: its checksum is taken in one pass");
        let difference = sums(blue, green, &table.sum_sql("true"), blue_snapshot, green_snapshot, "").await?;
        return Ok(Compared { difference, chunks: 1 });
    }
    let mut after: Option<Vec<String>> = None;
    let mut chunks = 0;
    loop {
        chunks += 1;
        let upto: Option<Vec<String>> =
            match point::rows_on(blue, &table.bound_sql(after.as_deref(), chunk_rows), blue_snapshot).await {
                Ok(rows) => rows.into_iter().next().map(|row| row.into_iter().map(Option::unwrap_or_default).collect()),
                Err(e) => return Ok(Compared { difference: Some(sql_failure("blue", e)?), chunks }),
            };
        let condition = table.range(after.as_deref(), upto.as_deref());
        let place = match (&after, &upto) {
            (None, None) => String::new(),
            _ => format!(
                " for keys after {} up to {}",
                after.as_ref().map_or("the first".into(), |k: &Vec<String>| format!("({})", k.join(", "))),
                upto.as_ref().map_or("the last".into(), |k: &Vec<String>| format!("({})", k.join(", ")))
            ),
        };
        let difference = sums(blue, green, &table.sum_sql(&condition), blue_snapshot, green_snapshot, &place).await?;
        if difference.is_some() || upto.is_none() {
            return Ok(Compared { difference, chunks });
        }
        after = upto;
    }
}

/// Runs a sum on both sides; why they differ, or `None`.
async fn sums(
    blue: &Client,
    green: &Client,
    sql: &str,
    blue_snapshot: Option<&str>,
    green_snapshot: Option<&str>,
    place: &str,
) -> Result<Option<String>, CutoverError> {
    let (b, g) = tokio::join!(point::rows_on(blue, sql, blue_snapshot), point::rows_on(green, sql, green_snapshot));
    Ok(match (b, g) {
        (Ok(b), Ok(g)) => describe_sums(&b, &g).map(|d| format!("{d}{place}")),
        (Err(e), Ok(_)) => Some(sql_failure("blue", e)?),
        (Ok(_), Err(e)) => Some(sql_failure("green", e)?),
        (Err(b), Err(g)) => Some(format!("{}; {}", sql_failure("blue", b)?, sql_failure("green", g)?)),
    })
}

/// Why two (count, sum) rows differ, or `None` when they are the same.
pub fn describe_sums(blue: &[TextRow], green: &[TextRow]) -> Option<String> {
    if blue == green {
        return None;
    }
    let summary = |rows: &[TextRow]| match rows {
        [row] => match row.as_slice() {
            [Some(count), Some(sum)] => Some((count.clone(), sum.clone())),
            _ => None,
        },
        _ => None,
    };
    Some(match (summary(blue), summary(green)) {
        (Some((blue_count, _)), Some((green_count, _))) if blue_count != green_count => {
            format!("row counts differ: blue {blue_count}, green {green_count}")
        }
        (Some((count, blue_sum)), Some((_, green_sum))) => {
            format!("same row count ({count}), different checksums: blue {blue_sum}, green {green_sum}")
        }
        _ => "the checksum queries returned other rows".to_owned(),
    })
}
