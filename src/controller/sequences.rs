//! Sequences at a flip: logical replication does not carry them, so while the old side is
//! fenced each sequence's `last_value` and `is_called` are copied to the side taking over,
//! and inserts there go on without colliding.

use tokio_postgres::Client;
use tracing::info;

use super::error::CutoverError;
use super::pg::ident;

/// Copies every sequence both sides have from `from` to `to`; returns how many.
pub async fn copy(from: &Client, from_side: &str, to: &Client, to_side: &str) -> Result<usize, CutoverError> {
    let list = "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
                JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2";
    let names = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, String)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let source =
        names(from.query(list, &[]).await.map_err(CutoverError::sql(format!("listing sequences on {from_side}")))?);
    let target =
        names(to.query(list, &[]).await.map_err(CutoverError::sql(format!("listing sequences on {to_side}")))?);
    let mut copied = 0;
    for (schema, name) in source.iter().filter(|s| target.contains(s)) {
        let qualified = format!("{}.{}", ident(schema), ident(name));
        let row = from
            .query_one(&format!("SELECT last_value, is_called FROM {qualified}"), &[])
            .await
            .map_err(CutoverError::sql(format!("reading sequence {schema}.{name} on {from_side}")))?;
        let (last_value, is_called): (i64, bool) = (row.get(0), row.get(1));
        to.execute("SELECT pg_catalog.setval($1::text::regclass, $2, $3)", &[&qualified, &last_value, &is_called])
            .await
            .map_err(CutoverError::sql(format!("setting sequence {schema}.{name} on {to_side}")))?;
        copied += 1;
    }
    info!(from = from_side, to = to_side, sequences = copied, "sequences copied");
    Ok(copied)
}
