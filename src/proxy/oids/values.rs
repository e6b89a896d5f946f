//! Type OIDs inside values: in the binary form of arrays (the element type) and of records
//! and composites (each field's type), nested; and OID values themselves, in the results
//! and parameters of a driver's type introspection.

use super::catalog::Kind;
use super::map::Translator;

/// Which way a value travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the serving side to the client: serving OIDs become home ones.
    ToHome,
    /// From the client to the serving side.
    ToServing,
}

/// How deep arrays of composites of arrays ... are followed.
const MAX_DEPTH: usize = 16;

/// Rewrites, in place, the type OIDs inside a binary value of the serving side's type
/// `oid`. A value that does not parse as its type says it should is left as it is.
pub fn rewrite_binary(value: &mut [u8], oid: u32, tr: &mut Translator, direction: Direction) {
    let _ = rewrite(value, oid, tr, direction, 0);
}

fn rewrite(value: &mut [u8], oid: u32, tr: &mut Translator, direction: Direction, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    match tr.kind(oid) {
        Kind::Domain { base } => rewrite(value, base, tr, direction, depth + 1),
        Kind::Composite => {
            let fields = read_i32(value, 0)?;
            let mut at = 4;
            for _ in 0..fields.max(0) {
                let field_type = translate_at(value, at, tr, direction)?;
                let len = read_i32(value, at + 4)?;
                at += 8;
                if len >= 0 {
                    let end = at.checked_add(len as usize).filter(|end| *end <= value.len())?;
                    rewrite(&mut value[at..end], field_type, tr, direction, depth + 1)?;
                    at = end;
                }
            }
            Some(())
        }
        Kind::Array { .. } => {
            let dims = read_i32(value, 0)?;
            let elem = translate_at(value, 8, tr, direction)?;
            let mut count: usize = 1;
            let mut at = 12;
            for _ in 0..dims.max(0) {
                count = count.checked_mul(usize::try_from(read_i32(value, at)?).ok()?)?;
                at += 8;
            }
            if dims == 0 {
                count = 0;
            }
            let nested = tr.serving().holds_oids(elem);
            for _ in 0..count {
                let len = read_i32(value, at)?;
                at += 4;
                if len >= 0 {
                    let end = at.checked_add(len as usize).filter(|end| *end <= value.len())?;
                    if nested {
                        rewrite(&mut value[at..end], elem, tr, direction, depth + 1)?;
                    }
                    at = end;
                }
            }
            Some(())
        }
        Kind::Plain => Some(()),
    }
}

/// Translates the type OID at `at` in the given direction and returns the serving side's
/// OID of that type (what the rest of the value is read by).
fn translate_at(value: &mut [u8], at: usize, tr: &mut Translator, direction: Direction) -> Option<u32> {
    let oid = read_i32(value, at)? as u32;
    let (written, serving) = match direction {
        Direction::ToHome => (tr.to_home(oid), oid),
        Direction::ToServing => {
            // A type the serving side lacks: 0, which the server refuses, rather than an
            // OID that may mean something else there.
            let serving = tr.to_serving(oid).unwrap_or(0);
            (serving, serving)
        }
    };
    value[at..at + 4].copy_from_slice(&written.to_be_bytes());
    Some(serving)
}

fn read_i32(value: &[u8], at: usize) -> Option<i32> {
    let bytes = value.get(at..at + 4)?;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Built-in types whose values are OIDs of types or relations.
pub const OID: u32 = 26;
pub const OID_ARRAY: u32 = 1028;
pub const INT4: u32 = 23;
pub const REGCLASS: u32 = 2205;
pub const REGTYPE: u32 = 2206;
pub const REGCLASS_ARRAY: u32 = 2210;
pub const REGTYPE_ARRAY: u32 = 2211;

/// Translates an OID value of type `oid` (`oid`, `int4` as drivers bind it, `regtype` and
/// `regclass` in binary, and arrays of those), in `binary` or text form; `None` when the
/// value is left as it is. Text `regtype` and `regclass` values are names, which need no
/// translation.
pub fn translate_oid_value(
    value: &[u8],
    oid: u32,
    binary: bool,
    tr: &mut Translator,
    direction: Direction,
) -> Option<Vec<u8>> {
    let one = |n: u32, tr: &mut Translator| match direction {
        Direction::ToHome => tr.to_home(n),
        Direction::ToServing => tr.to_serving(n).unwrap_or(n),
    };
    match (oid, binary) {
        (OID | INT4 | REGTYPE | REGCLASS, true) if value.len() == 4 => {
            let n = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
            Some(one(n, tr).to_be_bytes().to_vec())
        }
        (OID | INT4, false) => {
            let n: u32 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
            Some(one(n, tr).to_string().into_bytes())
        }
        (OID_ARRAY | REGTYPE_ARRAY | REGCLASS_ARRAY, true) => {
            let mut out = value.to_vec();
            let dims = read_i32(&out, 0)?;
            let mut count: usize = if dims == 0 { 0 } else { 1 };
            let mut at = 12;
            for _ in 0..dims.max(0) {
                count = count.checked_mul(usize::try_from(read_i32(&out, at)?).ok()?)?;
                at += 8;
            }
            for _ in 0..count {
                let len = read_i32(&out, at)?;
                at += 4;
                if len == 4 {
                    let n = read_i32(&out, at)? as u32;
                    out[at..at + 4].copy_from_slice(&one(n, tr).to_be_bytes());
                }
                at += len.max(0) as usize;
            }
            Some(out)
        }
        (OID_ARRAY, false) => {
            let text = std::str::from_utf8(value).ok()?;
            let inner = text.strip_prefix('{')?.strip_suffix('}')?;
            if inner.is_empty() {
                return None;
            }
            let mut parts = Vec::new();
            for item in inner.split(',') {
                match item.trim().parse::<u32>() {
                    Ok(n) => parts.push(one(n, tr).to_string()),
                    Err(_) => parts.push(item.to_owned()),
                }
            }
            Some(format!("{{{}}}", parts.join(",")).into_bytes())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::oids::catalog::Catalog;
    use crate::proxy::oids::map::OidMap;
    use std::sync::Arc;

    /// Blue and green each with an enum, a composite (mood, int4) and their arrays.
    fn translator() -> Translator {
        let side = |mood: u32, moods: u32, pair: u32, pairs: u32| {
            let t = crate::proxy::oids::catalog::type_row;
            let rows = vec![
                t(mood, "mood", "e", 0),
                t(moods, "_mood", "a", mood),
                t(pair, "pair", "c", 0),
                t(pairs, "_pair", "a", pair),
            ];
            Arc::new(Catalog::from_rows(&rows).expect("catalog"))
        };
        let blue = side(16394, 16393, 16397, 16396);
        let green = side(16385, 16384, 16388, 16387);
        Translator::new(Arc::new(OidMap::new(blue, green)))
    }

    fn be(n: u32) -> [u8; 4] {
        n.to_be_bytes()
    }

    /// A binary `pair` value: ('happy', 7) with the given enum OID.
    fn pair(mood: u32) -> Vec<u8> {
        [&be(2)[..], &be(mood), &be(5), b"happy", &be(23), &be(4), &be(7)].concat()
    }

    #[test]
    fn an_array_of_composites_is_rewritten_to_the_home_oids_and_back() {
        let mut tr = translator();
        let element = pair(16385);
        let mut value =
            [&be(1)[..], &be(0), &be(16388), &be(2), &be(1), &be(element.len() as u32), &element, &be(u32::MAX)]
                .concat();
        rewrite_binary(&mut value, 16387, &mut tr, Direction::ToHome);
        let home_element = pair(16394);
        let expected = [
            &be(1)[..],
            &be(0),
            &be(16397),
            &be(2),
            &be(1),
            &be(home_element.len() as u32),
            &home_element,
            &be(u32::MAX),
        ]
        .concat();
        assert_eq!(value, expected);
        // A client's value, on its way to the serving side.
        rewrite_binary(&mut value, 16387, &mut tr, Direction::ToServing);
        let element = pair(16385);
        assert_eq!(value[12..24], [&be(2)[..], &be(1), &be(element.len() as u32)].concat()[..]);
        assert_eq!(&value[24..24 + element.len()], &element[..]);
    }

    #[test]
    fn malformed_values_are_left_alone_and_plain_ones_untouched() {
        let mut tr = translator();
        let mut short = vec![0, 0, 0, 2, 0];
        rewrite_binary(&mut short, 16388, &mut tr, Direction::ToHome);
        assert_eq!(short, vec![0, 0, 0, 2, 0]);
        let mut lying = [&be(1)[..], &be(0), &be(16385), &be(1000), &be(1)].concat();
        let before = lying.clone();
        rewrite_binary(&mut lying, 16384, &mut tr, Direction::ToHome);
        assert_eq!(lying[8..12], be(16394), "the header is rewritten before the elements are found missing");
        assert_eq!(lying[12..], before[12..]);
        let mut int4 = be(16385).to_vec();
        rewrite_binary(&mut int4, 23, &mut tr, Direction::ToHome);
        assert_eq!(int4, be(16385), "an int4 is a value, not a type");
    }

    #[test]
    fn oid_values_of_introspection_queries() {
        let mut tr = translator();
        assert_eq!(translate_oid_value(b"16385", OID, false, &mut tr, Direction::ToHome), Some(b"16394".to_vec()));
        assert_eq!(
            translate_oid_value(&be(16394), INT4, true, &mut tr, Direction::ToServing),
            Some(be(16385).to_vec())
        );
        assert_eq!(
            translate_oid_value(b"{16385,23,16388}", OID_ARRAY, false, &mut tr, Direction::ToHome),
            Some(b"{16394,23,16397}".to_vec())
        );
        let array = [&be(1)[..], &be(0), &be(OID), &be(2), &be(1), &be(4), &be(16385), &be(4), &be(25)].concat();
        let home = translate_oid_value(&array, OID_ARRAY, true, &mut tr, Direction::ToHome).expect("rewritten");
        assert_eq!(home[24..28], be(16394));
        assert_eq!(home[32..36], be(25));
        assert_eq!(translate_oid_value(b"mood", REGTYPE, false, &mut tr, Direction::ToHome), None, "a name");
        assert_eq!(translate_oid_value(b"{}", OID_ARRAY, false, &mut tr, Direction::ToHome), None);
    }
}
