//! pgflip's own initial copy of tables a subscription starts to apply, where PostgreSQL's
//! cannot be used: a subscriber older than PostgreSQL 15 (blue on 13 or 14, on the way
//! back), or one whose table has rows already (PostgreSQL's copy appends: a duplicate key
//! stops it, for ever on a subscriber without `disable_on_error`).
//!
//! A subscriber older than 15's initial copy (tablesync) knows nothing of column lists: it asks the
//! publisher for every column of the table and copies the whole table. Where the
//! publication has a column list because green added columns blue lacks, it fails with
//! "logical replication target relation ... is missing some replicated columns" (14 names
//! the column) and tries again every `wal_retrieve_retry_interval`, for ever, while the
//! table's changes are held back; where blue happens to have the columns, it copies
//! columns the list leaves out. Seen on 13 and 14 subscribers of a 17 publisher.
//! Streaming is not affected: pgoutput sends only the listed columns and 13 applies them.
//!
//! So pgflip copies instead, publisher to subscriber, and only the published columns:
//!
//! 1. on its own connection to the publisher, locks the tables `IN SHARE MODE` (writers
//!    of those tables wait, readers do not; under `[ddl] lock_timeout`, retried), so that
//!    every transaction that wrote them has committed and none can start;
//! 2. copies their rows (`COPY (SELECT <published columns> ...) TO STDOUT`) into the
//!    subscriber, in one transaction there that first deletes what the subscriber's table
//!    had (it was not receiving, so the serving side's rows are the truth) and runs with
//!    `session_replication_role = replica`, as the apply worker does (no triggers, no
//!    foreign-key checks, through the write fence);
//! 3. waits until the slot confirms the publisher's WAL position taken under the lock: the
//!    apply worker has then passed (and dropped, as the tables were not yet its) every
//!    change committed before the lock;
//! 4. refreshes the subscription with `copy_data = false`: the tables are applied from the
//!    next change on, all of which come after the lock;
//! 5. lets the lock go.
//!
//! Writers of those tables wait for the copy; other tables are not touched, and nothing is
//! paused. A failure leaves the tables unapplied and the subscriber's copy as it was or
//! freshly copied; the next attempt deletes and copies again.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_postgres::Client;
use tracing::info;

use crate::controller::ddl;
use crate::controller::error::CutoverError;
use crate::controller::fence;
use crate::controller::links::Link;
use crate::controller::pg::{self, ident, server_major};
use crate::controller::plan::DdlSection;
use crate::controller::target::Target;

/// How often the slot's position is read while waiting.
const POLL: Duration = Duration::from_millis(50);

/// What pgflip's own copy needs beyond the two clients.
pub struct OwnCopy<'a> {
    /// The publisher, for the connection that holds the locks.
    pub publisher: &'a Target,
    /// The lock timeout and attempts.
    pub ddl: &'a DdlSection,
    /// How long the slot may take to confirm the position taken under the lock.
    pub confirm_within: Duration,
}

/// Copies `tables` (`schema.table`, unquoted, as the publication lists them) from the
/// publisher to the subscriber and has `link`'s subscription apply them from then on.
pub async fn copy_and_refresh(
    publisher: &Client,
    subscriber: &Client,
    link: Link<'_>,
    tables: &[String],
    own: &OwnCopy<'_>,
) -> Result<(), CutoverError> {
    let columns = published_columns(publisher, link, tables).await?;
    let names: Vec<String> = columns.iter().map(|(table, _)| table.clone()).collect();
    let holder = pg::connect_as(own.publisher, link.from, "pgflip table copy").await?;
    let what = format!("locking {} for pgflip's copy to {}", names.join(", "), link.to);
    ddl::lock_tables(&holder, link.from, &names, "SHARE", &what, own.ddl).await?;
    let copied = copy_locked(&holder, publisher, subscriber, link, &columns, own).await;
    // The locks go with the transaction, whatever happened.
    let released = holder.batch_execute("COMMIT").await;
    copied?;
    released.map_err(CutoverError::sql(format!("releasing the locks on {}", link.from)))?;
    Ok(())
}

/// Steps 2 to 4, while `holder` keeps the tables locked.
async fn copy_locked(
    holder: &Client,
    publisher: &Client,
    subscriber: &Client,
    link: Link<'_>,
    columns: &[(String, Vec<String>)],
    own: &OwnCopy<'_>,
) -> Result<(), CutoverError> {
    let lsn: String = holder
        .query_one("SELECT pg_catalog.pg_current_wal_lsn()::text", &[])
        .await
        .map_err(CutoverError::sql(format!("reading {}'s WAL position", link.from)))?
        .get(0);
    subscriber
        .batch_execute("BEGIN; SET LOCAL session_replication_role = replica")
        .await
        .map_err(CutoverError::sql(format!("starting the copy on {}", link.to)))?;
    let mut copied = Ok(());
    for (table, list) in columns {
        copied = copy_table(holder, subscriber, link, table, list).await;
        if copied.is_err() {
            break;
        }
    }
    let end = if copied.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = subscriber.batch_execute(end).await;
    copied?;
    ended.map_err(CutoverError::sql(format!("committing the copy on {}", link.to)))?;
    wait_confirmed(publisher, subscriber, link, &lsn, Instant::now() + own.confirm_within).await?;
    let sql = format!("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = false)", ident(link.name));
    subscriber
        .batch_execute(&sql)
        .await
        .map_err(CutoverError::sql(format!("refreshing subscription {} on {}", link.name, link.to)))?;
    Ok(())
}

/// Replaces the subscriber's rows of `table` by the publisher's, in `columns`.
async fn copy_table(
    holder: &Client,
    subscriber: &Client,
    link: Link<'_>,
    table: &str,
    columns: &[String],
) -> Result<(), CutoverError> {
    let list: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let list = list.join(", ");
    let deleted = subscriber
        .execute(&format!("DELETE FROM {table}"), &[])
        .await
        .map_err(CutoverError::sql(format!("emptying {table} on {}", link.to)))?;
    let source = holder
        .copy_out(&format!("COPY (SELECT {list} FROM {table}) TO STDOUT"))
        .await
        .map_err(CutoverError::sql(format!("reading {table} on {}", link.from)))?;
    let sink = subscriber
        .copy_in(&format!("COPY {table} ({list}) FROM STDIN"))
        .await
        .map_err(CutoverError::sql(format!("writing {table} on {}", link.to)))?;
    let (mut source, mut sink) = (std::pin::pin!(source), std::pin::pin!(sink));
    while let Some(chunk) = source.next().await {
        let chunk = chunk.map_err(CutoverError::sql(format!("reading {table} on {}", link.from)))?;
        sink.send(chunk).await.map_err(CutoverError::sql(format!("writing {table} on {}", link.to)))?;
    }
    let rows = sink.as_mut().finish().await.map_err(CutoverError::sql(format!("writing {table} on {}", link.to)))?;
    info!(link = link.name, table, rows, replaced = deleted, columns = %list, "table copied by pgflip");
    Ok(())
}

/// Each of `tables` as a quoted SQL name, with the columns `link`'s publication sends of it:
/// from PostgreSQL 15, `pg_publication_tables.attnames` (its column list, or every column
/// but generated ones); before, when there were no column lists, every column but
/// generated ones.
async fn published_columns(
    publisher: &Client,
    link: Link<'_>,
    tables: &[String],
) -> Result<Vec<(String, Vec<String>)>, CutoverError> {
    let sql = if server_major(publisher, link.from).await? >= 15 {
        "SELECT schemaname::text, tablename::text, attnames::text[] FROM pg_catalog.pg_publication_tables \
         WHERE pubname = $1 AND (schemaname || '.' || tablename) = ANY($2) ORDER BY 1, 2"
    } else {
        "SELECT p.schemaname::text, p.tablename::text, pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) \
         FROM pg_catalog.pg_publication_tables p \
         JOIN pg_catalog.pg_namespace n ON n.nspname = p.schemaname \
         JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
           AND a.attgenerated = '' \
         WHERE p.pubname = $1 AND (p.schemaname || '.' || p.tablename) = ANY($2) GROUP BY 1, 2 ORDER BY 1, 2"
    };
    let rows = publisher
        .query(sql, &[&link.name, &tables])
        .await
        .map_err(CutoverError::sql(format!("reading the columns publication {} sends on {}", link.name, link.from)))?;
    Ok(rows.iter().map(|r| (format!("{}.{}", ident(r.get(0)), ident(r.get(1))), r.get::<_, Vec<String>>(2))).collect())
}

/// Waits until `link`'s slot has confirmed `lsn`, hurrying the subscriber's report.
async fn wait_confirmed(
    publisher: &Client,
    subscriber: &Client,
    link: Link<'_>,
    lsn: &str,
    deadline: Instant,
) -> Result<(), CutoverError> {
    loop {
        match fence::slot_confirmed(publisher, link.name, lsn).await? {
            Some(true) => return Ok(()),
            Some(false) => fence::nudge(publisher, subscriber).await?,
            None => {}
        }
        if Instant::now() >= deadline {
            return Err(CutoverError::Refused(format!(
                "slot {} on {} did not confirm {lsn}, where pgflip copied tables to {}, in time: is replication from \
                 {} to {} running? Nothing was paused",
                link.name, link.from, link.to, link.from, link.to
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}
