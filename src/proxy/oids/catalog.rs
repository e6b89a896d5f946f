//! One server's user types and relations, by OID and by schema-qualified name, read in one
//! query: what a map between two servers' OIDs is built from.

use std::collections::HashMap;

/// OIDs below this are assigned by hand or by initdb and mean the same thing on every
/// server of a major version (`FirstNormalObjectId`); user objects get OIDs from here on.
pub const FIRST_USER_OID: u32 = 16_384;

/// The anonymous composite type of `ROW(...)` values, and its array type.
pub const RECORD: u32 = 2249;
pub const RECORD_ARRAY: u32 = 2287;

/// What the binary form of a value of a type holds that names other types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An array: its header names the element type.
    Array { elem: u32 },
    /// A composite (or `record`): each field names its type.
    Composite,
    /// A domain: its values are those of its base type.
    Domain { base: u32 },
    /// Anything else: no type OIDs inside its values.
    Plain,
}

/// A user type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeEntry {
    pub schema: String,
    pub name: String,
    pub kind: Kind,
}

/// One server's user types, relations and their columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub types: HashMap<u32, TypeEntry>,
    type_names: HashMap<(String, String), u32>,
    /// Relation OID to (schema, name).
    pub relations: HashMap<u32, (String, String)>,
    relation_names: HashMap<(String, String), u32>,
    /// Relation OID to its columns' (attnum, name).
    pub columns: HashMap<u32, Vec<(i16, String)>>,
}

/// The query that reads a [`Catalog`]: one row per user type (`t`), relation (`r`) and
/// column (`a`), as text. Temporary schemas are left out: their objects belong to one
/// session. Every name is qualified, since a login's `search_path` may be anything.
pub const CATALOG_QUERY: &str = "SELECT 't', t.oid::pg_catalog.text, n.nspname::pg_catalog.text, \
t.typname::pg_catalog.text, CASE WHEN t.typcategory OPERATOR(pg_catalog.=) 'A' THEN 'a' ELSE t.typtype::pg_catalog.text END, \
t.typelem::pg_catalog.text, t.typbasetype::pg_catalog.text
  FROM pg_catalog.pg_type AS t JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
 WHERE t.oid OPERATOR(pg_catalog.>=) 16384 AND n.nspname::pg_catalog.text NOT LIKE 'pg\\_temp\\_%' \
AND n.nspname::pg_catalog.text NOT LIKE 'pg\\_toast\\_temp\\_%'
UNION ALL
SELECT 'r', c.oid::pg_catalog.text, n.nspname::pg_catalog.text, c.relname::pg_catalog.text, NULL, NULL, NULL
  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.oid OPERATOR(pg_catalog.>=) 16384 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f,c}') \
AND n.nspname::pg_catalog.text NOT LIKE 'pg\\_temp\\_%'
UNION ALL
SELECT 'a', a.attrelid::pg_catalog.text, NULL, a.attname::pg_catalog.text, a.attnum::pg_catalog.text, NULL, NULL
  FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
 WHERE c.oid OPERATOR(pg_catalog.>=) 16384 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f,c}') \
AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped";

/// What is wrong with the answer to [`CATALOG_QUERY`].
#[derive(Debug, thiserror::Error)]
#[error("unexpected catalog row: {0}")]
pub struct CatalogError(String);

/// A type's row of [`CATALOG_QUERY`] in schema `public`, for tests.
#[cfg(test)]
pub(crate) fn type_row(oid: u32, name: &str, kind: &str, elem: u32) -> Vec<Option<String>> {
    let text = |v: &str| Some(v.to_owned());
    vec![text("t"), Some(oid.to_string()), text("public"), text(name), text(kind), Some(elem.to_string()), text("0")]
}

impl Catalog {
    /// Reads the rows of [`CATALOG_QUERY`].
    pub fn from_rows(rows: &[Vec<Option<String>>]) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::default();
        for row in rows {
            let text = |i: usize| row.get(i).and_then(|v| v.as_deref());
            let number = |i: usize| text(i).and_then(|v| v.parse::<i64>().ok());
            let bad = || CatalogError(format!("{row:?}"));
            let oid = number(1).and_then(|v| u32::try_from(v).ok()).ok_or_else(bad)?;
            match text(0) {
                Some("t") => {
                    let (schema, name) = (text(2).ok_or_else(bad)?.to_owned(), text(3).ok_or_else(bad)?.to_owned());
                    let related = |i: usize| number(i).and_then(|v| u32::try_from(v).ok()).ok_or_else(bad);
                    let kind = match text(4) {
                        Some("a") => Kind::Array { elem: related(5)? },
                        Some("c") => Kind::Composite,
                        Some("d") => Kind::Domain { base: related(6)? },
                        _ => Kind::Plain,
                    };
                    catalog.type_names.insert((schema.clone(), name.clone()), oid);
                    catalog.types.insert(oid, TypeEntry { schema, name, kind });
                }
                Some("r") => {
                    let key = (text(2).ok_or_else(bad)?.to_owned(), text(3).ok_or_else(bad)?.to_owned());
                    catalog.relation_names.insert(key.clone(), oid);
                    catalog.relations.insert(oid, key);
                }
                Some("a") => {
                    let attnum = number(4).and_then(|v| i16::try_from(v).ok()).ok_or_else(bad)?;
                    let name = text(3).ok_or_else(bad)?.to_owned();
                    catalog.columns.entry(oid).or_default().push((attnum, name));
                }
                _ => return Err(bad()),
            }
        }
        Ok(catalog)
    }

    /// The OID of the type named `schema.name`.
    pub fn type_named(&self, schema: &str, name: &str) -> Option<u32> {
        self.type_names.get(&(schema.to_owned(), name.to_owned())).copied()
    }

    /// The OID of the relation named `schema.name`.
    pub fn relation_named(&self, schema: &str, name: &str) -> Option<u32> {
        self.relation_names.get(&(schema.to_owned(), name.to_owned())).copied()
    }

    /// What values of type `oid` hold (built-in types included).
    pub fn kind(&self, oid: u32) -> Kind {
        match oid {
            RECORD => Kind::Composite,
            RECORD_ARRAY => Kind::Array { elem: RECORD },
            oid if oid < FIRST_USER_OID => Kind::Plain,
            oid => self.types.get(&oid).map_or(Kind::Plain, |t| t.kind),
        }
    }

    /// True when values of type `oid` may hold type OIDs of this server: arrays of user
    /// types or records, composites, domains over those.
    pub fn holds_oids(&self, oid: u32) -> bool {
        self.holds_oids_depth(oid, 0)
    }

    fn holds_oids_depth(&self, oid: u32, depth: usize) -> bool {
        match self.kind(oid) {
            Kind::Composite => true,
            Kind::Array { elem } => elem >= FIRST_USER_OID || elem == RECORD,
            Kind::Domain { base } if depth < 8 => self.holds_oids_depth(base, depth + 1),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn rows_become_types_relations_and_columns() {
        let rows = vec![
            row(&[Some("t"), Some("16385"), Some("public"), Some("mood"), Some("e"), Some("0"), Some("0")]),
            row(&[Some("t"), Some("16384"), Some("public"), Some("_mood"), Some("a"), Some("16385"), Some("0")]),
            row(&[Some("t"), Some("16390"), Some("public"), Some("pair"), Some("c"), Some("0"), Some("0")]),
            row(&[Some("t"), Some("16400"), Some("public"), Some("pairs"), Some("d"), Some("0"), Some("16401")]),
            row(&[Some("t"), Some("16401"), Some("public"), Some("_pair"), Some("a"), Some("16390"), Some("0")]),
            row(&[Some("r"), Some("16388"), Some("public"), Some("pair"), None, None, None]),
            row(&[Some("a"), Some("16388"), None, Some("m"), Some("1"), None, None]),
            row(&[Some("a"), Some("16388"), None, Some("n"), Some("3"), None, None]),
        ];
        let catalog = Catalog::from_rows(&rows).expect("catalog");
        assert_eq!(catalog.type_named("public", "mood"), Some(16385));
        assert_eq!(catalog.kind(16384), Kind::Array { elem: 16385 });
        assert_eq!(catalog.kind(16390), Kind::Composite);
        assert_eq!(catalog.kind(23), Kind::Plain);
        assert_eq!(catalog.kind(RECORD), Kind::Composite);
        assert!(catalog.holds_oids(16384) && catalog.holds_oids(16390) && catalog.holds_oids(16400));
        assert!(!catalog.holds_oids(16385) && !catalog.holds_oids(1007), "an enum, int4[]");
        assert!(catalog.holds_oids(RECORD_ARRAY));
        assert_eq!(catalog.relation_named("public", "pair"), Some(16388));
        assert_eq!(catalog.columns[&16388], [(1, "m".to_string()), (3, "n".to_string())]);
        assert!(Catalog::from_rows(&[row(&[Some("x"), Some("1")])]).is_err());
        assert!(Catalog::from_rows(&[row(&[Some("t"), Some("nope")])]).is_err());
    }
}
