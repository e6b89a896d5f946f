//! What a moving session's prepared statements return, as the side it leaves and the side
//! it moves to describe them: the shapes its translation starts with on the new side, and
//! the statements whose results no longer have the shape its client was told (a migration
//! widened a table behind a `SELECT *`): those fail with 0A000, as PostgreSQL's own cached
//! plans do after such a change, until the client prepares them again.

use std::collections::HashSet;
use std::sync::Arc;

use crate::proxy::oids::messages::{self, Field};
use crate::proxy::oids::shapes::{is_introspection, Shapes, Statement};
use crate::proxy::oids::{Catalog, Translator};
use crate::proxy::session::translate::Translation;
use crate::proxy::upstream::query::Answer;

/// A statement as one server described it, with its own OIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Described {
    pub params: Vec<u32>,
    /// `None`: the statement returns no rows (NoData).
    pub fields: Option<Vec<Field>>,
}

/// Reads the answer to one Describe unit; `None` when it is not one (the Describe failed).
pub(super) fn described(answer: &Answer) -> Option<Described> {
    let params = answer.param_descriptions.first()?.clone();
    let fields = match answer.row_descriptions.last()? {
        Some(body) => Some(messages::row_fields(body)?),
        None => None,
    };
    Some(Described { params, fields })
}

/// The home side's types of a description's result columns.
fn home_types(described: &Described, tr: &mut Option<&mut Translator>) -> Option<Vec<u32>> {
    let fields = described.fields.as_ref()?;
    Some(
        fields
            .iter()
            .map(|field| match tr {
                Some(tr) => tr.to_home(field.type_oid),
                None => field.type_oid,
            })
            .collect(),
    )
}

/// A protocol-level statement of the moving session: its name and text.
pub(super) struct Moving<'a> {
    pub name: &'a str,
    pub query: &'a str,
}

/// The translation a session starts with on its new side, from its statements as the old
/// side (`before`, translated by `old`, when known) and the new side (`after`) describe them;
/// `new` translates the new side, `None` at home. With `exact` false (a side away from home
/// has no translator: its catalog could not be read), only the numbers of columns compare.
/// At home, with no statement changed, there is nothing to do: `None`.
pub(super) fn after_move(
    statements: &[Moving],
    before: &[Option<Described>],
    mut old: Option<&mut Translator>,
    after: &[Option<Described>],
    new: Option<Translator>,
    exact: bool,
) -> Option<Translation> {
    let mut new = new;
    let mut changed = HashSet::new();
    let mut shapes = Shapes::default();
    for (i, statement) in statements.iter().enumerate() {
        let Some(now) = after.get(i).and_then(Option::as_ref) else { continue };
        if let Some(told) = before.get(i).and_then(Option::as_ref) {
            let told = home_types(told, &mut old);
            let now_home = home_types(now, &mut new.as_mut());
            let differ = match exact {
                true => told != now_home,
                false => told.map(|t| t.len()) != now_home.map(|t| t.len()),
            };
            if differ {
                changed.insert(statement.name.to_owned());
            }
        }
        shapes.adopt(
            statement.name,
            Statement {
                param_types: now.params.clone(),
                fields: now.fields.clone(),
                introspection: is_introspection(statement.query),
            },
        );
    }
    match new {
        Some(tr) => Some(Translation::new(tr, shapes, changed)),
        None if !changed.is_empty() => {
            Some(Translation::new(Translator::identity(Arc::new(Catalog::default())), shapes, changed))
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(types: &[u32]) -> Option<Described> {
        Some(Described {
            params: vec![],
            fields: Some(types.iter().map(|&type_oid| Field { type_oid, format: 0 }).collect()),
        })
    }

    #[test]
    fn a_statement_whose_columns_changed_is_marked_at_home_too() {
        let statements =
            [Moving { name: "wide", query: "SELECT * FROM t" }, Moving { name: "same", query: "SELECT 1" }];
        let before = [described(&[23, 25]), described(&[23])];
        let after = [described(&[23, 25, 1700]), described(&[23])];
        let translation = after_move(&statements, &before, None, &after, None, true).expect("a statement changed");
        assert!(translation.is_changed("wide") && !translation.is_changed("same"));
        assert!(after_move(&statements, &before, None, &before, None, true).is_none(), "at home with nothing changed");
        let unknown = [None, None];
        assert!(
            after_move(&statements, &unknown, None, &after, None, true).is_none(),
            "not described before: not compared"
        );
        // Without a translator the types cannot compare (other OIDs), the counts still do.
        let retyped = [described(&[16500, 25]), described(&[23])];
        assert!(after_move(&statements, &before, None, &retyped, None, false).is_none());
        assert!(after_move(&statements, &before, None, &after, None, false).is_some());
    }
}
