//! Sequences at a flip: logical replication does not carry them, so while the old side is
//! fenced each sequence moves forward on the side taking over to where the old side has it,
//! and inserts there go on without colliding. A sequence only ever moves forward (in the
//! direction of its increment): a side that is already further along (a smoke test drew
//! values on green) keeps its value, with a warning. A cycling sequence has no "further
//! along": it takes the old side's value, with a warning.

use tokio_postgres::Client;
use tracing::{info, warn};

use super::error::CutoverError;
use super::pg::ident;

/// A sequence's position on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub last_value: i64,
    pub is_called: bool,
    pub increment: i64,
    pub cycle: bool,
}

impl Position {
    /// The value `nextval` would return next (ignoring the bounds), as a wide number.
    fn next(&self) -> i128 {
        match self.is_called {
            true => self.last_value as i128 + self.increment as i128,
            false => self.last_value as i128,
        }
    }
}

/// What a flip does with one sequence on the side taking over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Set it to the old side's position.
    Advance,
    /// It is already there.
    Same,
    /// It is further along than the old side: left as it is.
    KeepAhead,
    /// It cycles: set to the old side's position, whichever is further.
    CopyCycling,
}

/// Where `target` goes, given `source` (the old side's position).
pub fn decide(source: &Position, target: &Position) -> Decision {
    if source.cycle || target.cycle {
        return Decision::CopyCycling;
    }
    let (from, to) = (source.next(), target.next());
    let ahead = match source.increment >= 0 {
        true => to > from,
        false => to < from,
    };
    match () {
        _ if from == to => Decision::Same,
        _ if ahead => Decision::KeepAhead,
        _ => Decision::Advance,
    }
}

/// What [`copy`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Sequences set to the old side's position.
    pub advanced: usize,
    /// Sequences the side taking over had further along, left there (schema-qualified).
    pub kept_ahead: Vec<String>,
    /// Cycling sequences, set to the old side's position (schema-qualified).
    pub cycling: Vec<String>,
}

const LIST: &str = "SELECT n.nspname::text, c.relname::text, s.seqincrement, s.seqcycle \
                    FROM pg_catalog.pg_class c \
                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                    JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid \
                    WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgflip') \
                    ORDER BY 1, 2";

/// Every sequence of a side, with its increment and whether it cycles.
async fn list(client: &Client, side: &str) -> Result<Vec<(String, String, i64, bool)>, CutoverError> {
    let rows = client.query(LIST, &[]).await.map_err(CutoverError::sql(format!("listing sequences on {side}")))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}

async fn position(
    client: &Client,
    side: &str,
    schema: &str,
    name: &str,
    increment: i64,
    cycle: bool,
) -> Result<Position, CutoverError> {
    let qualified = format!("{}.{}", ident(schema), ident(name));
    let row = client
        .query_one(&format!("SELECT last_value, is_called FROM {qualified}"), &[])
        .await
        .map_err(CutoverError::sql(format!("reading sequence {schema}.{name} on {side}")))?;
    Ok(Position { last_value: row.get(0), is_called: row.get(1), increment, cycle })
}

/// Moves every sequence both sides have forward on `to` to where `from` has it.
pub async fn copy(from: &Client, from_side: &str, to: &Client, to_side: &str) -> Result<Copied, CutoverError> {
    let source = list(from, from_side).await?;
    let target = list(to, to_side).await?;
    let mut copied = Copied::default();
    for (schema, name, increment, cycle) in &source {
        let Some((_, _, to_increment, to_cycle)) = target.iter().find(|t| (&t.0, &t.1) == (schema, name)) else {
            continue;
        };
        let old = position(from, from_side, schema, name, *increment, *cycle).await?;
        let new = position(to, to_side, schema, name, *to_increment, *to_cycle).await?;
        let shown = format!("{schema}.{name}");
        match decide(&old, &new) {
            Decision::Same => continue,
            Decision::KeepAhead => {
                warn!(
                    sequence = %shown, side = to_side, value = new.last_value, old_side_value = old.last_value,
                    "a sequence is further along on the side taking over: left there"
                );
                copied.kept_ahead.push(shown);
                continue;
            }
            Decision::CopyCycling => {
                warn!(sequence = %shown, side = to_side, value = old.last_value, "a cycling sequence: set to the old side's value");
                copied.cycling.push(shown.clone());
            }
            Decision::Advance => copied.advanced += 1,
        }
        let qualified = format!("{}.{}", ident(schema), ident(name));
        to.execute(
            "SELECT pg_catalog.setval($1::text::regclass, $2, $3)",
            &[&qualified, &old.last_value, &old.is_called],
        )
        .await
        .map_err(CutoverError::sql(format!("setting sequence {shown} on {to_side}")))?;
    }
    info!(
        from = from_side,
        to = to_side,
        advanced = copied.advanced,
        kept_ahead = copied.kept_ahead.len(),
        cycling = copied.cycling.len(),
        "sequences moved forward"
    );
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(last_value: i64, is_called: bool, increment: i64) -> Position {
        Position { last_value, is_called, increment, cycle: false }
    }

    #[test]
    fn a_sequence_only_moves_in_the_direction_of_its_increment() {
        assert_eq!(decide(&at(100, true, 1), &at(40, true, 1)), Decision::Advance);
        assert_eq!(decide(&at(100, true, 1), &at(140, true, 1)), Decision::KeepAhead, "a smoke test drew values");
        assert_eq!(decide(&at(100, true, 1), &at(100, true, 1)), Decision::Same);
        // Not called yet: the next value is last_value itself.
        assert_eq!(decide(&at(101, false, 1), &at(100, true, 1)), Decision::Same);
        assert_eq!(decide(&at(1, false, 1), &at(1, true, 1)), Decision::KeepAhead);
        // Descending sequences are further along when lower.
        assert_eq!(decide(&at(-100, true, -1), &at(-40, true, -1)), Decision::Advance);
        assert_eq!(decide(&at(-40, true, -1), &at(-100, true, -1)), Decision::KeepAhead);
        // Near the end of the range the arithmetic does not overflow.
        assert_eq!(decide(&at(i64::MAX, true, 1), &at(1, true, 1)), Decision::Advance);
        let cycling = Position { cycle: true, ..at(5, true, 1) };
        assert_eq!(decide(&cycling, &at(9, true, 1)), Decision::CopyCycling);
    }
}
