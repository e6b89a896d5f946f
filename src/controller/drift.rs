//! Schema drift between the two sides of a link. A subscription applies only the tables
//! its `pg_subscription_rel` lists, and the apply worker drops the changes of any other
//! table the publication sends, without an error (PG-FACTS): a table or partition created
//! on both sides after the subscription was made or last refreshed. So what the publisher
//! publishes (`pg_publication_tables`) is compared with what the subscriber has and
//! applies:
//!
//! - a published table the subscriber has but does not apply: the subscription is
//!   refreshed to apply it, its rows copied first: by PostgreSQL
//!   (`REFRESH PUBLICATION WITH (copy_data = true)`) on a subscriber of 15 or later, by
//!   pgflip ([`own_copy`]) on an older one, whose own copy ignores column lists;
//! - a published table the subscriber lacks: reported (`missing`); a flip refuses it.
//!
//! [`adopt`] is the other half: once a flip has made the new side equal to the old, the
//! link back takes in, without a copy, the tables it did not apply yet.

mod adopt;
pub mod own_copy;

use std::collections::BTreeSet;

use tokio_postgres::Client;
use tracing::{info, warn};

use super::error::CutoverError;
use super::links::Link;
use super::pg::ident;
use super::pg::server_major;
pub use adopt::adopt;
pub use own_copy::OwnCopy;

/// `schema.table` names.
type Tables = BTreeSet<String>;

/// What [`reconcile`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Tables the subscription was refreshed to apply.
    pub refreshed: Vec<String>,
    /// Tables the publisher publishes and the subscriber lacks.
    pub missing: Vec<String>,
    /// Whether pgflip copied the refreshed tables itself (a subscriber older than 15).
    pub copied_by_pgflip: bool,
}

async fn names(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    what: String,
) -> Result<Tables, CutoverError> {
    let rows = client.query(sql, params).await.map_err(CutoverError::sql(what))?;
    Ok(rows.iter().map(|r| format!("{}.{}", r.get::<_, String>(0), r.get::<_, String>(1))).collect())
}

/// The tables `link`'s publication sends, those its subscriber has, and those it applies.
struct LinkTables {
    published: Tables,
    present: Tables,
    applied: Tables,
}

impl LinkTables {
    async fn read(publisher: &Client, subscriber: &Client, link: Link<'_>) -> Result<LinkTables, CutoverError> {
        let name = link.name;
        let published = names(
            publisher,
            "SELECT schemaname::text, tablename::text FROM pg_catalog.pg_publication_tables WHERE pubname = $1",
            &[&name],
            format!("listing the tables publication {name} sends on {}", link.from),
        )
        .await?;
        let present = names(
            subscriber,
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')",
            &[],
            format!("listing the tables on {}", link.to),
        )
        .await?;
        let applied = applied(subscriber, link).await?;
        Ok(LinkTables { published, present, applied })
    }

    /// Published tables the subscriber lacks.
    fn missing(&self) -> Vec<String> {
        self.published.difference(&self.present).cloned().collect()
    }

    /// Published tables the subscriber has and does not apply.
    fn unapplied(&self) -> Vec<String> {
        self.published.intersection(&self.present).filter(|t| !self.applied.contains(*t)).cloned().collect()
    }

    /// Whether the subscription applies tables no longer published.
    fn dropped(&self) -> bool {
        self.applied.iter().any(|t| !self.published.contains(t))
    }
}

/// The tables `link`'s subscription applies (its `pg_subscription_rel`), whatever their state.
async fn applied(subscriber: &Client, link: Link<'_>) -> Result<Tables, CutoverError> {
    names(
        subscriber,
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_subscription_rel r \
         JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid \
         JOIN pg_catalog.pg_class c ON c.oid = r.srrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE s.subname = $1",
        &[&link.name],
        format!("listing the tables subscription {} applies on {}", link.name, link.to),
    )
    .await
}

/// Whether `link`'s subscription is enabled.
async fn enabled(subscriber: &Client, link: Link<'_>) -> Result<bool, CutoverError> {
    Ok(subscriber
        .query_opt("SELECT subenabled FROM pg_catalog.pg_subscription WHERE subname = $1", &[&link.name])
        .await
        .map_err(CutoverError::sql(format!("reading subscription {} on {}", link.name, link.to)))?
        .is_some_and(|r| r.get::<_, bool>(0)))
}

/// Compares `link`'s publication on `publisher` with its subscription on `subscriber`, and
/// refreshes the subscription when it misses tables both sides have (only while it is
/// enabled: a disabled subscription cannot refresh, and is refused elsewhere). `own` is
/// what pgflip's copy needs when the subscriber is older than 15.
pub async fn reconcile(
    publisher: &Client,
    subscriber: &Client,
    link: Link<'_>,
    own: &OwnCopy<'_>,
) -> Result<Drift, CutoverError> {
    let name = link.name;
    let tables = LinkTables::read(publisher, subscriber, link).await?;
    let (missing, unapplied) = (tables.missing(), tables.unapplied());
    if !missing.is_empty() {
        warn!(link = name, tables = ?missing, "{} publishes tables {} lacks: their changes cannot be applied", link.from, link.to);
    }
    // A refresh fails while the publication sends a table the subscriber lacks.
    if !enabled(subscriber, link).await? || !missing.is_empty() || (unapplied.is_empty() && !tables.dropped()) {
        return Ok(Drift { refreshed: Vec::new(), missing, copied_by_pgflip: false });
    }
    if let Some(why) = own_copy_needed(subscriber, link, &unapplied).await? {
        info!(link = name, tables = ?unapplied, reason = why, "pgflip copies the tables the subscription takes in");
        own_copy::copy_and_refresh(publisher, subscriber, link, &unapplied, own).await?;
        info!(link = name, tables = ?unapplied, "subscription refreshed: it applies the tables both sides have now");
        return Ok(Drift { refreshed: unapplied, missing, copied_by_pgflip: true });
    }
    let sql = format!("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = true)", ident(name));
    subscriber
        .batch_execute(&sql)
        .await
        .map_err(CutoverError::sql(format!("refreshing subscription {name} on {}", link.to)))?;
    info!(link = name, tables = ?unapplied, "subscription refreshed: it applies the tables both sides have now");
    Ok(Drift { refreshed: unapplied, missing, copied_by_pgflip: false })
}

/// Why PostgreSQL's own copy of `unapplied` cannot be used, if it cannot: the subscriber
/// is older than 15 (its copy ignores column lists), or one of its tables has rows already
/// (PostgreSQL's copy appends to them: a duplicate key stops it, and without a key the rows
/// are doubled). The refresh takes in every unapplied table at once, so one such table
/// makes pgflip copy them all.
async fn own_copy_needed(
    subscriber: &Client,
    link: Link<'_>,
    unapplied: &[String],
) -> Result<Option<&'static str>, CutoverError> {
    if unapplied.is_empty() {
        return Ok(None);
    }
    if server_major(subscriber, link.to).await? < 15 {
        return Ok(Some("the subscriber is older than PostgreSQL 15: its own copy ignores column lists"));
    }
    let quoted = subscriber
        .query(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname || '.' || c.relname = ANY($1)",
            &[&unapplied],
        )
        .await
        .map_err(CutoverError::sql(format!("naming the new tables on {}", link.to)))?;
    for row in quoted {
        let table: String = row.get(0);
        let has_rows: bool = subscriber
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await
            .map_err(CutoverError::sql(format!("looking for rows in {table} on {}", link.to)))?
            .get(0);
        if has_rows {
            return Ok(Some("a table has rows on the subscriber: PostgreSQL's copy would add to them"));
        }
    }
    Ok(None)
}

/// The tables `link`'s subscription applies that are still being copied (a refresh's
/// initial copy, not yet streaming), each with its state (`schema.table (d)`).
pub async fn tables_syncing(subscriber: &Client, link: Link<'_>) -> Result<Vec<String>, CutoverError> {
    let rows = subscriber
        .query(
            "SELECT n.nspname::text || '.' || c.relname::text || ' (' || r.srsubstate::text || ')' \
             FROM pg_catalog.pg_subscription_rel r \
             JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid \
             JOIN pg_catalog.pg_class c ON c.oid = r.srrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE s.subname = $1 AND r.srsubstate NOT IN ('r', 's') ORDER BY 1",
            &[&link.name],
        )
        .await
        .map_err(CutoverError::sql(format!("reading the table states of {} on {}", link.name, link.to)))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
