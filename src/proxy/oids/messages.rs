//! The protocol messages that carry type and table OIDs, rewritten for a translated
//! session: RowDescription and ParameterDescription to the client, Parse and Bind from it,
//! and the values of DataRow. Bodies only (no tag, no length): rewrites that keep the
//! length happen in place; the others return the new body.

use super::catalog::Catalog;
use super::map::Translator;
use super::values::{rewrite_binary, translate_oid_value, Direction, INT4, OID, OID_ARRAY, REGCLASS, REGCLASS_ARRAY};
use super::values::{REGTYPE, REGTYPE_ARRAY};

/// A result column as the serving side described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The serving side's type OID.
    pub type_oid: u32,
    /// 0 text, 1 binary (0 in the RowDescription of a statement: not chosen yet).
    pub format: i16,
}

/// Rewrites a RowDescription body in place: each column's table OID, column number and
/// type OID become the home side's. Returns the columns as the serving side described them.
pub fn row_description_to_home(body: &mut [u8], tr: &mut Translator) -> Option<Vec<Field>> {
    let count = read_i16(body, 0)?;
    let mut at = 2;
    let mut fields = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count.max(0) {
        at += body.get(at..)?.iter().position(|&b| b == 0)? + 1;
        let table = read_u32(body, at)?;
        let attnum = read_i16(body, at + 4)?;
        let type_oid = read_u32(body, at + 6)?;
        let format = read_i16(body, at + 16)?;
        let home_table = tr.to_home(table);
        let home_attnum = tr.column_to_home(table, attnum);
        let home_type = tr.to_home(type_oid);
        body[at..at + 4].copy_from_slice(&home_table.to_be_bytes());
        body[at + 4..at + 6].copy_from_slice(&home_attnum.to_be_bytes());
        body[at + 6..at + 10].copy_from_slice(&home_type.to_be_bytes());
        fields.push(Field { type_oid, format });
        at += 18;
    }
    Some(fields)
}

/// Reads the columns of a RowDescription body.
pub fn row_fields(body: &[u8]) -> Option<Vec<Field>> {
    let count = read_i16(body, 0)?;
    let mut at = 2;
    let mut fields = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count.max(0) {
        at += body.get(at..)?.iter().position(|&b| b == 0)? + 1;
        fields.push(Field { type_oid: read_u32(body, at + 6)?, format: read_i16(body, at + 16)? });
        at += 18;
    }
    Some(fields)
}

/// Rewrites a ParameterDescription body in place to home type OIDs; returns the serving
/// side's.
pub fn parameter_description_to_home(body: &mut [u8], tr: &mut Translator) -> Option<Vec<u32>> {
    let count = read_i16(body, 0)?;
    let mut types = Vec::with_capacity(count.max(0) as usize);
    for i in 0..count.max(0) as usize {
        let at = 2 + 4 * i;
        let oid = read_u32(body, at)?;
        body[at..at + 4].copy_from_slice(&tr.to_home(oid).to_be_bytes());
        types.push(oid);
    }
    Some(types)
}

/// A client's Parse, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub name: String,
    pub query: String,
    /// The parameter types, the serving side's (0: unspecified).
    pub param_types: Vec<u32>,
}

/// Rewrites the parameter types of a Parse body in place to the serving side's (a type it
/// lacks becomes 0, unspecified, rather than an OID that may mean something else there).
pub fn parse_to_serving(body: &mut [u8], tr: &Translator) -> Option<Parsed> {
    let name_end = body.iter().position(|&b| b == 0)?;
    let query_end = name_end + 1 + body.get(name_end + 1..)?.iter().position(|&b| b == 0)?;
    let name = String::from_utf8_lossy(&body[..name_end]).into_owned();
    let query = String::from_utf8_lossy(&body[name_end + 1..query_end]).into_owned();
    let count = read_i16(body, query_end + 1)?;
    let mut param_types = Vec::with_capacity(count.max(0) as usize);
    for i in 0..count.max(0) as usize {
        let at = query_end + 3 + 4 * i;
        let serving = tr.to_serving(read_u32(body, at)?).unwrap_or(0);
        body[at..at + 4].copy_from_slice(&serving.to_be_bytes());
        param_types.push(serving);
    }
    Some(Parsed { name, query, param_types })
}

/// A client's Bind, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub portal: String,
    pub statement: String,
    /// Result format codes as given (none: all text; one: all columns).
    pub result_formats: Vec<i16>,
    /// The new body, when a parameter value changed length.
    pub rewritten: Option<Vec<u8>>,
}

/// Reads a Bind body and rewrites its parameter values for the serving side: type OIDs in
/// binary arrays and composites of `param_types` (the statement's, serving side), and, for
/// a type `introspection` statement, OID values (in parameters of the OID types, and in
/// text parameters of no declared type).
pub fn bind_to_serving(
    body: &mut [u8],
    param_types: &[u32],
    introspection: bool,
    tr: &mut Translator,
) -> Option<Bound> {
    let portal_end = body.iter().position(|&b| b == 0)?;
    let statement_end = portal_end + 1 + body.get(portal_end + 1..)?.iter().position(|&b| b == 0)?;
    let portal = String::from_utf8_lossy(&body[..portal_end]).into_owned();
    let statement = String::from_utf8_lossy(&body[portal_end + 1..statement_end]).into_owned();
    let mut at = statement_end + 1;
    let format_count = read_i16(body, at)?.max(0) as usize;
    let formats: Vec<i16> = (0..format_count).map(|i| read_i16(body, at + 2 + 2 * i)).collect::<Option<_>>()?;
    at += 2 + 2 * format_count;
    let params = read_i16(body, at)?.max(0) as usize;
    at += 2;
    let binary = |i: usize| match formats.len() {
        0 => false,
        1 => formats[0] == 1,
        _ => formats.get(i) == Some(&1),
    };
    let mut replaced: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for i in 0..params {
        let len = read_i32(body, at)?;
        at += 4;
        if len < 0 {
            continue;
        }
        let end = at.checked_add(len as usize).filter(|end| *end <= body.len())?;
        let declared = param_types.get(i).copied().unwrap_or(0);
        // An untyped text parameter of an introspection statement (node-postgres sends all
        // its parameters so) is an OID when it is a number the map knows.
        let oid = match declared {
            0 if introspection && !binary(i) => OID,
            declared => declared,
        };
        if binary(i) && tr.serving().holds_oids(oid) {
            rewrite_binary(&mut body[at..end], oid, tr, Direction::ToServing);
        } else if introspection && is_oid_type(oid) {
            if let Some(value) = translate_oid_value(&body[at..end], oid, binary(i), tr, Direction::ToServing) {
                if value.len() == end - at {
                    body[at..end].copy_from_slice(&value);
                } else {
                    replaced.push((at - 4, end, value));
                }
            }
        }
        at = end;
    }
    let result_count = read_i16(body, at)?.max(0) as usize;
    let result_formats: Vec<i16> = (0..result_count).map(|i| read_i16(body, at + 2 + 2 * i)).collect::<Option<_>>()?;
    let rewritten = (!replaced.is_empty()).then(|| splice_values(body, &replaced));
    Some(Bound { portal, statement, result_formats, rewritten })
}

/// A result column as a DataRow is read: its serving type, its format, and whether its
/// values are OIDs to translate (the results of a type introspection statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub type_oid: u32,
    pub binary: bool,
    pub introspection: bool,
}

impl Column {
    /// True when values of this column may need rewriting, `serving` being the serving
    /// side's catalog.
    pub fn needs_rewrite(&self, serving: &Catalog) -> bool {
        (self.binary && serving.holds_oids(self.type_oid)) || (self.introspection && is_oid_type(self.type_oid))
    }
}

/// Rewrites a DataRow body's values for the client: type OIDs in binary arrays and
/// composites (in place), and OID values of introspection columns. Returns the new body
/// when a value changed length.
pub fn data_row_to_home(body: &mut [u8], columns: &[Column], tr: &mut Translator) -> Option<Vec<u8>> {
    let count = read_i16(body, 0)?.max(0) as usize;
    let mut at = 2;
    let mut replaced: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for i in 0..count {
        let len = read_i32(body, at)?;
        at += 4;
        if len < 0 {
            continue;
        }
        let end = at.checked_add(len as usize).filter(|end| *end <= body.len())?;
        if let Some(column) = columns.get(i) {
            if column.binary && tr.serving().holds_oids(column.type_oid) {
                rewrite_binary(&mut body[at..end], column.type_oid, tr, Direction::ToHome);
            } else if column.introspection && is_oid_type(column.type_oid) {
                if let Some(value) =
                    translate_oid_value(&body[at..end], column.type_oid, column.binary, tr, Direction::ToHome)
                {
                    if value.len() == end - at {
                        body[at..end].copy_from_slice(&value);
                    } else {
                        replaced.push((at - 4, end, value));
                    }
                }
            }
        }
        at = end;
    }
    (!replaced.is_empty()).then(|| splice_values(body, &replaced))
}

/// True for the types whose values a type introspection statement's OIDs travel in.
fn is_oid_type(oid: u32) -> bool {
    matches!(oid, OID | INT4 | OID_ARRAY | REGTYPE | REGCLASS | REGTYPE_ARRAY | REGCLASS_ARRAY)
}

/// `body` with each (length field start, value end, new value) replaced, the lengths fixed.
fn splice_values(body: &[u8], replaced: &[(usize, usize, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16 * replaced.len());
    let mut from = 0;
    for (len_at, end, value) in replaced {
        out.extend_from_slice(&body[from..*len_at]);
        out.extend_from_slice(&(value.len() as i32).to_be_bytes());
        out.extend_from_slice(value);
        from = *end;
    }
    out.extend_from_slice(&body[from..]);
    out
}

fn read_i16(body: &[u8], at: usize) -> Option<i16> {
    let b = body.get(at..at + 2)?;
    Some(i16::from_be_bytes([b[0], b[1]]))
}

fn read_i32(body: &[u8], at: usize) -> Option<i32> {
    let b = body.get(at..at + 4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u32(body: &[u8], at: usize) -> Option<u32> {
    read_i32(body, at).map(|v| v as u32)
}

#[cfg(test)]
mod tests;
