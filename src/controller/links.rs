//! The two replication links between blue and green. Forward (blue -> green: publication
//! and slot on blue, subscription on green) keeps green current before the cutover; reverse
//! (green -> blue) keeps blue current after it, so that a rollback loses nothing. Their
//! names are the plan's ([`super::names`]). A flip detaches the link into the side being fenced and attaches
//! the one out of the side taking over, with a new slot made while nothing writes there.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::info;

use super::ddl::{self, Ddl};
use super::error::CutoverError;
use super::pg::{ident, literal, without_statement_logging};
use super::plan::DdlSection;

/// One direction of replication, borrowing its name from the plan's
/// [`LinkNames`](super::names::LinkNames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link<'a> {
    /// The side that publishes (`blue` or `green`).
    pub from: &'static str,
    /// The side that subscribes.
    pub to: &'static str,
    /// The publication's, the slot's and the subscription's name.
    pub name: &'a str,
}

/// A table the reverse publication leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReversible {
    /// `schema.table`, unquoted.
    pub table: String,
    pub why: OneWay,
}

/// Why a table's writes cannot go back to blue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneWay {
    /// Only green has it (the migration made it): there is nowhere to send its writes.
    OnlyOnGreen,
    /// A REPLICA IDENTITY FULL table green added columns to: it cannot be published with
    /// a column list, and blue cannot take its rows whole.
    IdentityFullWidened,
}

impl std::fmt::Display for OneWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OneWay::OnlyOnGreen => "exists only on green: its writes cannot go back to blue",
            OneWay::IdentityFullWidened => {
                "green added columns to a REPLICA IDENTITY FULL table: it cannot be published with a column list, \
                 so its writes cannot go back to blue"
            }
        })
    }
}

/// Stops the link: its subscription is disabled and let go of the slot, and the slot is
/// dropped on the publisher (a slot nobody reads keeps WAL forever).
pub async fn detach(
    publisher: &Client,
    subscriber: &Client,
    link: Link<'_>,
    deadline: Instant,
) -> Result<(), CutoverError> {
    let name = link.name;
    let exists = subscriber
        .query_opt("SELECT 1 FROM pg_catalog.pg_subscription WHERE subname = $1", &[&name])
        .await
        .map_err(CutoverError::sql(format!("looking for subscription {name} on {}", link.to)))?;
    if exists.is_some() {
        let sql =
            format!("ALTER SUBSCRIPTION {n} DISABLE; ALTER SUBSCRIPTION {n} SET (slot_name = NONE)", n = ident(name));
        subscriber.batch_execute(&sql).await.map_err(CutoverError::sql(format!("disabling subscription {name}")))?;
    }
    drop_slot(publisher, link, deadline).await
}

/// Drops the link's subscription on its subscriber, if there: disabled and let go of its
/// slot first, so that dropping it does not touch the publisher (the slot is
/// [`drop_slot`]'s). Returns whether there was one.
pub async fn drop_subscription(subscriber: &Client, link: Link<'_>) -> Result<bool, CutoverError> {
    let name = link.name;
    let exists = subscriber
        .query_opt("SELECT 1 FROM pg_catalog.pg_subscription WHERE subname = $1", &[&name])
        .await
        .map_err(CutoverError::sql(format!("looking for subscription {name} on {}", link.to)))?;
    if exists.is_none() {
        return Ok(false);
    }
    let n = ident(name);
    let sql = format!("ALTER SUBSCRIPTION {n} DISABLE; ALTER SUBSCRIPTION {n} SET (slot_name = NONE)");
    subscriber.batch_execute(&sql).await.map_err(CutoverError::sql(format!("disabling subscription {name}")))?;
    subscriber
        .batch_execute(&format!("DROP SUBSCRIPTION {n}"))
        .await
        .map_err(CutoverError::sql(format!("dropping subscription {name} on {}", link.to)))?;
    info!(subscription = name, side = link.to, "subscription dropped");
    Ok(true)
}

/// Drops the link's publication on its publisher, if there; returns whether there was one.
pub async fn drop_publication(publisher: &Client, link: Link<'_>, limits: &DdlSection) -> Result<bool, CutoverError> {
    let name = link.name;
    let exists = publisher
        .query_opt("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(CutoverError::sql(format!("looking for publication {name} on {}", link.from)))?;
    if exists.is_none() {
        return Ok(false);
    }
    let tables = published_tables(publisher, link).await?;
    let ddl = Ddl {
        what: format!("dropping publication {name}"),
        sql: format!("DROP PUBLICATION {}", ident(name)),
        tables: &tables,
    };
    ddl::execute(publisher, link.from, ddl, limits).await?;
    info!(publication = name, side = link.from, "publication dropped");
    Ok(true)
}

/// The tables `link`'s publication sends, as SQL names.
async fn published_tables(publisher: &Client, link: Link<'_>) -> Result<Vec<String>, CutoverError> {
    let rows = publisher
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_catalog.pg_publication_tables WHERE pubname = $1",
            &[&link.name],
        )
        .await
        .map_err(CutoverError::sql(format!("listing the tables of publication {} on {}", link.name, link.from)))?;
    Ok(rows.iter().map(|r| format!("{}.{}", ident(r.get(0)), ident(r.get(1)))).collect())
}

/// Drops the link's slot on its publisher once no walsender holds it.
pub async fn drop_slot(publisher: &Client, link: Link<'_>, deadline: Instant) -> Result<(), CutoverError> {
    let name = link.name;
    loop {
        let row = publisher
            .query_opt("SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", &[&name])
            .await
            .map_err(CutoverError::sql(format!("looking for slot {name} on {}", link.from)))?;
        match row.map(|r| r.get::<_, bool>(0)) {
            None => return Ok(()),
            Some(false) => {
                match publisher.execute("SELECT pg_catalog.pg_drop_replication_slot($1)", &[&name]).await {
                    Ok(_) => {
                        info!(slot = name, side = link.from, "replication slot dropped");
                        return Ok(());
                    }
                    // A walsender took it meanwhile: wait for it to let go.
                    Err(e) if e.code().is_some_and(|c| c.code() == "55006") => {}
                    Err(e) => return Err(CutoverError::sql(format!("dropping slot {name}"))(e)),
                }
            }
            Some(true) => {
                // The subscription was disabled; its walsender may take a while to notice.
                publisher
                    .execute(
                        "SELECT pg_catalog.pg_terminate_backend(active_pid) FROM pg_catalog.pg_replication_slots \
                         WHERE slot_name = $1 AND active_pid IS NOT NULL",
                        &[&name],
                    )
                    .await
                    .map_err(CutoverError::sql(format!("ending the walsender of slot {name}")))?;
            }
        }
        if Instant::now() >= deadline {
            return Err(CutoverError::Refused(format!("slot {name} on {} stayed in use past the deadline", link.from)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the link: a new slot on the publisher (call it while nothing writes there, so the
/// subscriber misses nothing), and its subscription pointed at it and enabled.
/// `publisher_url` is the publisher's address as the subscriber's server reaches it.
pub async fn attach(
    publisher: &Client,
    subscriber: &Client,
    link: Link<'_>,
    publisher_url: &str,
    deadline: Instant,
) -> Result<(), CutoverError> {
    create_slot(publisher, link, deadline).await?;
    subscribe(subscriber, link, publisher_url).await
}

/// Makes a new slot for the link on its publisher (dropping an old one first).
pub async fn create_slot(publisher: &Client, link: Link<'_>, deadline: Instant) -> Result<(), CutoverError> {
    let name = link.name;
    drop_slot(publisher, link, deadline).await?;
    publisher
        .execute("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", &[&name])
        .await
        .map_err(CutoverError::sql(format!("creating slot {name} on {}", link.from)))?;
    Ok(())
}

/// Whether the link's slot exists on its publisher.
pub async fn has_slot(publisher: &Client, link: Link<'_>) -> Result<bool, CutoverError> {
    let name = link.name;
    let row = publisher
        .query_opt("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", &[&name])
        .await
        .map_err(CutoverError::sql(format!("looking for slot {name} on {}", link.from)))?;
    Ok(row.is_some())
}

/// Points the link's subscription at its slot and enables it, creating it when missing.
pub async fn subscribe(subscriber: &Client, link: Link<'_>, publisher_url: &str) -> Result<(), CutoverError> {
    let name = link.name;
    let exists = subscriber
        .query_opt(
            "SELECT subenabled, subslotname IS NOT NULL FROM pg_catalog.pg_subscription WHERE subname = $1",
            &[&name],
        )
        .await
        .map_err(CutoverError::sql(format!("looking for subscription {name} on {}", link.to)))?;
    let n = ident(name);
    let (url, slot) = (literal(publisher_url), literal(name));
    let sql = match exists.map(|r| (r.get::<_, bool>(0), r.get::<_, bool>(1))) {
        Some((true, true)) => return Ok(()),
        Some((true, false)) => format!(
            "ALTER SUBSCRIPTION {n} DISABLE; ALTER SUBSCRIPTION {n} CONNECTION {url}; \
             ALTER SUBSCRIPTION {n} SET (slot_name = {slot}); ALTER SUBSCRIPTION {n} ENABLE"
        ),
        Some((false, _)) => format!(
            "ALTER SUBSCRIPTION {n} CONNECTION {url}; ALTER SUBSCRIPTION {n} SET (slot_name = {slot}); \
             ALTER SUBSCRIPTION {n} ENABLE"
        ),
        None => {
            // disable_on_error came with PostgreSQL 15; an older subscriber (blue, on the way
            // back) retries a failing apply instead, and the flip's checks see its lag.
            let version: i32 = subscriber
                .query_one("SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4", &[])
                .await
                .map_err(CutoverError::sql(format!("reading {}'s version", link.to)))?
                .get(0);
            let on_error = if version >= 150000 { ", disable_on_error = true" } else { "" };
            format!(
                "CREATE SUBSCRIPTION {n} CONNECTION {url} PUBLICATION {n} WITH (create_slot = false, \
                 slot_name = {slot}, copy_data = false{on_error})"
            )
        }
    };
    // The connection string may carry a password: kept out of the server's log.
    without_statement_logging(subscriber, link.to).await?;
    subscriber
        .batch_execute(&sql)
        .await
        .map_err(CutoverError::sql(format!("subscribing {} to {}", link.to, link.from)))?;
    info!(link = name, from = link.from, to = link.to, "replication attached");
    Ok(())
}

/// Creates or redefines the reverse publication on green: every table green shares with
/// blue, with a column list where green has columns blue lacks. Such a table with REPLICA
/// IDENTITY FULL cannot be published with a column list: it is left out and reported.
/// Tables only green has are reported too: their writes cannot go back.
pub async fn publish_reverse(
    green: &Client,
    blue: &Client,
    reverse: Link<'_>,
    limits: &DdlSection,
) -> Result<Vec<NotReversible>, CutoverError> {
    let on_green = tables(green, "green").await?;
    let on_blue = tables(blue, "blue").await?;
    let mut published = Vec::new();
    let mut locked = Vec::new();
    let mut left_out = Vec::new();
    for (schema, table, identity, columns) in &on_green {
        let qualified = format!("{}.{}", ident(schema), ident(table));
        locked.push(qualified.clone());
        let Some((_, _, _, blue_columns)) = on_blue.iter().find(|(s, t, _, _)| s == schema && t == table) else {
            left_out.push(NotReversible { table: format!("{schema}.{table}"), why: OneWay::OnlyOnGreen });
            continue;
        };
        let shared: Vec<&String> = columns.iter().filter(|c| blue_columns.contains(c)).collect();
        if shared.len() == columns.len() {
            published.push(qualified);
        } else if identity == "f" {
            left_out.push(NotReversible { table: format!("{schema}.{table}"), why: OneWay::IdentityFullWidened });
        } else {
            let list: Vec<String> = shared.iter().map(|c| ident(c)).collect();
            published.push(format!("{qualified} ({})", list.join(", ")));
        }
    }
    let exists = green
        .query_opt("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1", &[&reverse.name])
        .await
        .map_err(CutoverError::sql("looking for the reverse publication"))?;
    let n = ident(reverse.name);
    // A partitioned table is published as itself, not as its partitions: a column list on
    // one needs that, and blue routes each row to its partition.
    let via_root = "publish_via_partition_root = true";
    let sql = match (exists, published.is_empty()) {
        (Some(_), true) => format!("DROP PUBLICATION {n}; CREATE PUBLICATION {n} WITH ({via_root})"),
        (None, true) => format!("CREATE PUBLICATION {n} WITH ({via_root})"),
        (Some(_), false) => {
            format!("ALTER PUBLICATION {n} SET ({via_root}); ALTER PUBLICATION {n} SET TABLE {}", published.join(", "))
        }
        (None, false) => format!("CREATE PUBLICATION {n} FOR TABLE {} WITH ({via_root})", published.join(", ")),
    };
    let ddl = Ddl { what: "publishing green's tables for the way back".into(), sql, tables: &locked };
    ddl::execute(green, "green", ddl, limits).await?;
    for item in &left_out {
        info!(table = %item.table, reason = %item.why, "not replicated back to blue");
    }
    Ok(left_out)
}

/// Schema, name, replica identity (`d`, `f`, `i`, `n`) and columns of every ordinary table.
type TableColumns = (String, String, String, Vec<String>);

async fn tables(client: &Client, side: &str) -> Result<Vec<TableColumns>, CutoverError> {
    let sql = "SELECT n.nspname::text, c.relname::text, c.relreplident::text, \
                 pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 AND a.attgenerated = '' \
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p' \
                AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
              GROUP BY 1, 2, 3 ORDER BY 1, 2";
    let rows = client.query(sql, &[]).await.map_err(CutoverError::sql(format!("listing tables on {side}")))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}
