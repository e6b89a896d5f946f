//! The bijection between a session's home server's OIDs and those of the server that serves
//! it now, by schema-qualified name, and a session's own view of it ([`Translator`]): OIDs
//! of the serving side that the home side lacks get synthetic ones, from a reserved range,
//! the same for the whole session.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::{Catalog, Kind, FIRST_USER_OID};

/// Synthetic OIDs are handed out from here up: far above any OID a server assigns before
/// its counter wraps around (a home OID that is in the range anyway is skipped).
pub const FIRST_SYNTHETIC_OID: u32 = 0xF000_0000;

/// Home and serving OIDs of the user types and relations both sides have, by name.
#[derive(Debug, Default)]
pub struct OidMap {
    /// The serving side's catalog: what its values hold.
    pub serving: Arc<Catalog>,
    home: Arc<Catalog>,
    to_home: HashMap<u32, u32>,
    to_serving: HashMap<u32, u32>,
    /// (serving relation, serving attnum) to the home attnum of the same column, or 0 (not
    /// a column of the home relation).
    columns: HashMap<(u32, i16), i16>,
}

impl OidMap {
    /// Pairs the objects of `home` and `serving` that have the same schema-qualified name.
    pub fn new(home: Arc<Catalog>, serving: Arc<Catalog>) -> OidMap {
        let mut map = OidMap { serving: serving.clone(), home: home.clone(), ..OidMap::default() };
        for (&oid, entry) in &serving.types {
            if let Some(home_oid) = home.type_named(&entry.schema, &entry.name) {
                map.pair(home_oid, oid);
            }
        }
        for (&oid, (schema, name)) in &serving.relations {
            let Some(home_oid) = home.relation_named(schema, name) else { continue };
            map.pair(home_oid, oid);
            let home_columns = home.columns.get(&home_oid);
            for (attnum, column) in serving.columns.get(&oid).into_iter().flatten() {
                let home_attnum = home_columns
                    .and_then(|columns| columns.iter().find(|(_, n)| n == column))
                    .map_or(0, |(attnum, _)| *attnum);
                map.columns.insert((oid, *attnum), home_attnum);
            }
        }
        map
    }

    fn pair(&mut self, home: u32, serving: u32) {
        self.to_home.insert(serving, home);
        self.to_serving.insert(home, serving);
    }

    /// True when `oid` names a user object of the home side.
    fn is_home_object(&self, oid: u32) -> bool {
        self.home.types.contains_key(&oid) || self.home.relations.contains_key(&oid)
    }
}

/// A session's translation between its home side and the side serving it.
#[derive(Debug)]
pub struct Translator {
    map: Arc<OidMap>,
    /// Serving OIDs are home OIDs: the session is at home (it is tracked only for its
    /// statements whose results changed shape).
    identity: bool,
    /// Serving OIDs the home side lacks, and the synthetic OIDs they got.
    synthetic: HashMap<u32, u32>,
    /// The other way.
    synthetic_back: HashMap<u32, u32>,
    next: u32,
}

impl Translator {
    pub fn new(map: Arc<OidMap>) -> Translator {
        Translator {
            map,
            identity: false,
            synthetic: HashMap::new(),
            synthetic_back: HashMap::new(),
            next: FIRST_SYNTHETIC_OID,
        }
    }

    /// A translator that changes nothing, for a session at home; `serving` is its catalog
    /// (for the kinds of its types).
    pub fn identity(serving: Arc<Catalog>) -> Translator {
        let map = OidMap { serving: serving.clone(), home: serving, ..OidMap::default() };
        Translator { identity: true, ..Translator::new(Arc::new(map)) }
    }

    /// True for a translator that changes nothing.
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// The map this translator uses.
    pub fn map(&self) -> &Arc<OidMap> {
        &self.map
    }

    /// The serving side's catalog.
    pub fn serving(&self) -> &Catalog {
        &self.map.serving
    }

    /// The OID the client knows for the serving side's `oid` (a type or a relation).
    pub fn to_home(&mut self, oid: u32) -> u32 {
        if oid < FIRST_USER_OID || self.identity {
            return oid;
        }
        if let Some(&home) = self.map.to_home.get(&oid) {
            return home;
        }
        if let Some(&synthetic) = self.synthetic.get(&oid) {
            return synthetic;
        }
        while self.map.is_home_object(self.next) || self.synthetic_back.contains_key(&self.next) {
            self.next += 1;
        }
        let synthetic = self.next;
        self.next = self.next.wrapping_add(1).max(FIRST_SYNTHETIC_OID);
        self.synthetic.insert(oid, synthetic);
        self.synthetic_back.insert(synthetic, oid);
        synthetic
    }

    /// The serving side's OID for the `oid` the client knows; `None` for a user object of
    /// the home side that the serving side lacks (or an OID the client made up).
    pub fn to_serving(&self, oid: u32) -> Option<u32> {
        if oid < FIRST_USER_OID || self.identity {
            return Some(oid);
        }
        self.map.to_serving.get(&oid).or_else(|| self.synthetic_back.get(&oid)).copied()
    }

    /// The home side's number of a serving relation's column: 0 when the home relation has
    /// no such column (or the relation is not one the home side has).
    pub fn column_to_home(&self, relation: u32, attnum: i16) -> i16 {
        if relation < FIRST_USER_OID || attnum <= 0 || self.identity {
            return attnum;
        }
        match self.map.columns.get(&(relation, attnum)) {
            Some(&home) => home,
            None if self.synthetic.contains_key(&relation) || !self.map.to_home.contains_key(&relation) => attnum,
            None => 0,
        }
    }

    /// What values of the serving type `oid` hold.
    pub fn kind(&self, oid: u32) -> Kind {
        self.map.serving.kind(oid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relation: its OID, its name and its columns.
    type Relation<'a> = (u32, &'a str, &'a [(i16, &'a str)]);

    fn catalog(types: &[(u32, &str)], relations: &[Relation]) -> Arc<Catalog> {
        let mut rows = Vec::new();
        for (oid, name) in types {
            rows.push(vec![
                Some("t".into()),
                Some(oid.to_string()),
                Some("public".into()),
                Some(name.to_string()),
                Some("e".into()),
                Some("0".into()),
                Some("0".into()),
            ]);
        }
        for (oid, name, columns) in relations {
            rows.push(vec![Some("r".into()), Some(oid.to_string()), Some("public".into()), Some(name.to_string())]);
            for (attnum, column) in *columns {
                rows.push(vec![
                    Some("a".into()),
                    Some(oid.to_string()),
                    None,
                    Some(column.to_string()),
                    Some(attnum.to_string()),
                ]);
            }
        }
        Arc::new(Catalog::from_rows(&rows).expect("catalog"))
    }

    #[test]
    fn names_pair_oids_and_the_rest_get_synthetic_ones() {
        // Blue dropped a column before green was restored: green numbers `b` 2, blue 3.
        let blue = catalog(&[(16394, "mood")], &[(16400, "t", &[(1, "a"), (3, "b")])]);
        let green =
            catalog(&[(16385, "mood"), (16386, "only_green")], &[(16388, "t", &[(1, "a"), (2, "b"), (3, "c")])]);
        let mut tr = Translator::new(Arc::new(OidMap::new(blue, green)));
        assert_eq!(tr.to_home(16385), 16394);
        assert_eq!(tr.to_home(23), 23);
        assert_eq!(tr.to_home(16388), 16400);
        assert_eq!((tr.column_to_home(16388, 1), tr.column_to_home(16388, 2), tr.column_to_home(16388, 3)), (1, 3, 0));
        let synthetic = tr.to_home(16386);
        assert!(synthetic >= FIRST_SYNTHETIC_OID, "{synthetic}");
        assert_eq!(tr.to_home(16386), synthetic, "the same for the whole session");
        assert_ne!(tr.to_home(99999), synthetic);
        assert_eq!(tr.to_serving(16394), Some(16385));
        assert_eq!(tr.to_serving(synthetic), Some(16386));
        assert_eq!(tr.to_serving(25), Some(25));
        assert_eq!(tr.to_serving(17000), None, "a home OID the serving side does not have");
        assert_eq!(tr.column_to_home(1259, 4), 4, "a catalog's columns are the same everywhere");
    }
}
