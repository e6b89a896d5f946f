//! Schema drift between the two sides of a link. A subscription applies only the tables
//! its `pg_subscription_rel` lists, and the apply worker drops the changes of any other
//! table the publication sends, without an error (PG-FACTS): a table or partition created
//! on both sides after the subscription was made or last refreshed. So what the publisher
//! publishes (`pg_publication_tables`) is compared with what the subscriber has and
//! applies:
//!
//! - a published table the subscriber has but does not apply: the subscription is
//!   refreshed (`REFRESH PUBLICATION WITH (copy_data = true)`: the rows the publisher has
//!   already are copied first, then its changes stream);
//! - a published table the subscriber lacks: reported (`missing`); a flip refuses it.

use std::collections::BTreeSet;

use tokio_postgres::Client;
use tracing::{info, warn};

use super::error::CutoverError;
use super::links::Link;
use super::pg::ident;

/// `schema.table` names.
type Tables = BTreeSet<String>;

/// What [`reconcile`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Tables the subscription was refreshed to apply.
    pub refreshed: Vec<String>,
    /// Tables the publisher publishes and the subscriber lacks.
    pub missing: Vec<String>,
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

/// Compares `link`'s publication on `publisher` with its subscription on `subscriber`, and
/// refreshes the subscription when it misses tables both sides have (only while it is
/// enabled: a disabled subscription cannot refresh, and is refused elsewhere).
pub async fn reconcile(publisher: &Client, subscriber: &Client, link: Link<'_>) -> Result<Drift, CutoverError> {
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
    let applied = names(
        subscriber,
        "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_subscription_rel r \
         JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid \
         JOIN pg_catalog.pg_class c ON c.oid = r.srrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE s.subname = $1",
        &[&name],
        format!("listing the tables subscription {name} applies on {}", link.to),
    )
    .await?;
    let missing: Vec<String> = published.difference(&present).cloned().collect();
    let unapplied: Vec<String> = published.intersection(&present).filter(|t| !applied.contains(*t)).cloned().collect();
    let dropped = applied.iter().any(|t| !published.contains(t));
    if !missing.is_empty() {
        warn!(link = name, tables = ?missing, "{} publishes tables {} lacks: their changes cannot be applied", link.from, link.to);
    }
    let enabled = subscriber
        .query_opt("SELECT subenabled FROM pg_catalog.pg_subscription WHERE subname = $1", &[&name])
        .await
        .map_err(CutoverError::sql(format!("reading subscription {name} on {}", link.to)))?
        .is_some_and(|r| r.get::<_, bool>(0));
    // A refresh fails while the publication sends a table the subscriber lacks.
    if enabled && missing.is_empty() && (!unapplied.is_empty() || dropped) {
        let sql = format!("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = true)", ident(name));
        subscriber
            .batch_execute(&sql)
            .await
            .map_err(CutoverError::sql(format!("refreshing subscription {name} on {}", link.to)))?;
        info!(link = name, tables = ?unapplied, "subscription refreshed: it applies the tables both sides have now");
        return Ok(Drift { refreshed: unapplied, missing });
    }
    Ok(Drift { refreshed: Vec::new(), missing })
}

/// How many of the tables `link`'s subscription applies are still being copied (a
/// refresh's initial copy, not yet streaming).
pub async fn tables_syncing(subscriber: &Client, link: Link<'_>) -> Result<i64, CutoverError> {
    let row = subscriber
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_subscription_rel r \
             JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid \
             WHERE s.subname = $1 AND r.srsubstate NOT IN ('r', 's')",
            &[&link.name],
        )
        .await
        .map_err(CutoverError::sql(format!("reading the table states of {} on {}", link.name, link.to)))?;
    Ok(row.get(0))
}
