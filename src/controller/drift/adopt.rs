//! The link back after a flip: it applies only the tables its subscription knew when it was
//! made or last refreshed, so a table made on both sides since (and taken in by the link
//! into the new side, with its rows) would have its changes dropped on the way back, and
//! the next flip's drift check would copy it again into a side that has its rows already.
//! While a flip holds every writer out of both sides, after the new side confirmed the old
//! side's fence, each table the link into the new side applies has the same rows on both
//! sides: the link back takes those in with `REFRESH PUBLICATION WITH (copy_data = false)`,
//! before the new side opens.

use tokio_postgres::Client;
use tracing::{info, warn};

use super::{applied, LinkTables};
use crate::controller::error::CutoverError;
use crate::controller::links::Link;
use crate::controller::pg::ident;

/// Has `back` (new side -> old side, just attached and enabled) apply, without a copy, the
/// tables it publishes and the old side has but does not apply, when `into_new` (old ->
/// new) applies them all; returns them. Otherwise nothing is refreshed: a table the old side
/// lacks would fail the refresh, and one `into_new` did not apply may differ between the
/// sides (the next flip's drift check copies it).
pub async fn adopt(
    new: &Client,
    old: &Client,
    back: Link<'_>,
    into_new: Link<'_>,
) -> Result<Vec<String>, CutoverError> {
    let tables = LinkTables::read(new, old, back).await?;
    let unapplied = tables.unapplied();
    if unapplied.is_empty() {
        return Ok(unapplied);
    }
    let missing = tables.missing();
    let equal = applied(new, into_new).await?;
    let unproven: Vec<&String> = unapplied.iter().filter(|t| !equal.contains(*t)).collect();
    if !missing.is_empty() || !unproven.is_empty() {
        warn!(
            link = back.name,
            tables = ?unapplied,
            missing_on_old_side = ?missing,
            not_received = ?unproven,
            "the link back is not refreshed now: the next flip's drift check takes these tables in"
        );
        return Ok(Vec::new());
    }
    let sql = format!("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = false)", ident(back.name));
    old.batch_execute(&sql)
        .await
        .map_err(CutoverError::sql(format!("refreshing subscription {} on {}", back.name, back.to)))?;
    info!(link = back.name, tables = ?unapplied, "the link back applies the tables made on both sides, equal now");
    Ok(unapplied)
}
