use std::sync::Arc;

use super::*;
use crate::proxy::oids::catalog::Catalog;
use crate::proxy::oids::map::OidMap;

fn be(n: u32) -> [u8; 4] {
    n.to_be_bytes()
}

/// Blue and green: an enum `mood` and its array, a composite `pair` and its array, a
/// table `t` whose column `b` is number 3 on blue and 2 on green.
fn translator() -> Translator {
    let side = |mood: u32, moods: u32, pair: u32, pairs: u32, table: u32, b: i16| {
        let t = crate::proxy::oids::catalog::type_row;
        let rel = vec![Some("r".to_string()), Some(table.to_string()), Some("public".into()), Some("t".into())];
        let col = |name: &str, attnum: i16| {
            vec![Some("a".to_string()), Some(table.to_string()), None, Some(name.into()), Some(attnum.to_string())]
        };
        let rows = vec![
            t(mood, "mood", "e", 0),
            t(moods, "_mood", "a", mood),
            t(pair, "pair", "c", 0),
            t(pairs, "_pair", "a", pair),
            rel,
            col("a", 1),
            col("b", b),
        ];
        Arc::new(Catalog::from_rows(&rows).expect("catalog"))
    };
    let blue = side(16394, 16393, 16397, 16396, 16400, 3);
    let green = side(16385, 16384, 16388, 16387, 16390, 2);
    Translator::new(Arc::new(OidMap::new(blue, green)))
}

fn field(name: &str, table: u32, attnum: i16, type_oid: u32, format: i16) -> Vec<u8> {
    [
        name.as_bytes(),
        &[0],
        &be(table),
        &attnum.to_be_bytes(),
        &be(type_oid),
        &(-1i16).to_be_bytes(),
        &be(u32::MAX),
        &format.to_be_bytes(),
    ]
    .concat()
}

#[test]
fn a_row_description_shows_home_tables_columns_and_types() {
    let mut tr = translator();
    let mut body = [&2i16.to_be_bytes()[..], &field("b", 16390, 2, 16385, 1), &field("n", 0, 0, 23, 0)].concat();
    let fields = row_description_to_home(&mut body, &mut tr).expect("parsed");
    assert_eq!(fields, [Field { type_oid: 16385, format: 1 }, Field { type_oid: 23, format: 0 }]);
    let expected = [&2i16.to_be_bytes()[..], &field("b", 16400, 3, 16394, 1), &field("n", 0, 0, 23, 0)].concat();
    assert_eq!(body, expected);
    assert_eq!(row_description_to_home(&mut [0, 1, b'x'], &mut tr), None, "truncated");
}

#[test]
fn parameter_descriptions_and_parses_cross_over() {
    let mut tr = translator();
    let mut described = [&2i16.to_be_bytes()[..], &be(16385), &be(25)].concat();
    assert_eq!(parameter_description_to_home(&mut described, &mut tr), Some(vec![16385, 25]));
    assert_eq!(described, [&2i16.to_be_bytes()[..], &be(16394), &be(25)].concat());
    let mut parse = [&b"s1\0SELECT $1, $2, $3\0"[..], &3i16.to_be_bytes(), &be(16394), &be(0), &be(17999)].concat();
    let parsed = parse_to_serving(&mut parse, &tr).expect("parsed");
    assert_eq!((parsed.name.as_str(), parsed.param_types), ("s1", vec![16385, 0, 0]));
    assert_eq!(parse[parse.len() - 12..], [&be(16385)[..], &be(0), &be(0)].concat()[..]);
}

#[test]
fn binds_and_data_rows_carry_nested_oids_across() {
    let mut tr = translator();
    // A binary mood[] parameter from the client, with blue's (home) element OID.
    let array = [&be(1)[..], &be(0), &be(16394), &be(1), &be(1), &be(3), b"sad"].concat();
    let mut bind = [
        &b"\0s1\0"[..],
        &1i16.to_be_bytes(),
        &1i16.to_be_bytes(),
        &1i16.to_be_bytes(),
        &(array.len() as i32).to_be_bytes(),
        &array,
        &1i16.to_be_bytes(),
        &1i16.to_be_bytes(),
    ]
    .concat();
    let bound = bind_to_serving(&mut bind, &[16384], false, &mut tr).expect("parsed");
    assert_eq!((bound.portal.as_str(), bound.statement.as_str(), bound.result_formats), ("", "s1", vec![1]));
    assert!(bound.rewritten.is_none());
    assert_eq!(bind[22..26], be(16385), "the element type is green's now");

    // A DataRow with a binary mood[] and an introspection oid in text.
    let array = [&be(1)[..], &be(0), &be(16385), &be(1), &be(1), &be(2), b"ok"].concat();
    let mut row = [&2i16.to_be_bytes()[..], &(array.len() as i32).to_be_bytes(), &array, &be(5), b"16388"].concat();
    let columns = [
        Column { type_oid: 16384, binary: true, introspection: false },
        Column { type_oid: 26, binary: false, introspection: true },
    ];
    assert!(columns.iter().all(|c| c.needs_rewrite(tr.serving())));
    assert_eq!(data_row_to_home(&mut row, &columns, &mut tr), None, "same lengths: in place");
    assert_eq!(row[14..18], be(16394));
    assert_eq!(&row[row.len() - 5..], b"16397");
    // A synthetic OID is longer than a real one: the row is rebuilt.
    let mut row = [&1i16.to_be_bytes()[..], &be(5), b"16999"].concat();
    let rebuilt = data_row_to_home(&mut row, &columns[1..], &mut tr).expect("rebuilt");
    let text = String::from_utf8_lossy(&rebuilt[6..]).into_owned();
    assert!(text.parse::<u32>().unwrap() >= crate::proxy::oids::map::FIRST_SYNTHETIC_OID, "{text}");
    assert_eq!(rebuilt[2..6], (text.len() as i32).to_be_bytes());
}

#[test]
fn untyped_text_parameters_of_introspection_are_oids_when_the_map_knows_them() {
    let mut tr = translator();
    let bind_of = |value: &[u8]| {
        [
            &b"\0s1\0"[..],
            &0i16.to_be_bytes(),
            &1i16.to_be_bytes(),
            &(value.len() as i32).to_be_bytes(),
            value,
            &0i16.to_be_bytes(),
        ]
        .concat()
    };
    let value_of = |bind: &[u8]| String::from_utf8_lossy(&bind[12..bind.len() - 2]).into_owned();
    // Blue's mood, as node-postgres sends it: text, type 0.
    let mut bind = bind_of(b"16394");
    let bound = bind_to_serving(&mut bind, &[0], true, &mut tr).expect("parsed");
    assert!(bound.rewritten.is_none(), "same length");
    assert_eq!(value_of(&bind), "16385");
    // Not an introspection statement, not a known OID, not a number: left alone.
    for (value, introspection) in [(&b"16394"[..], false), (b"16999", true), (b"mood", true)] {
        let mut bind = bind_of(value);
        bind_to_serving(&mut bind, &[0], introspection, &mut tr).expect("parsed");
        assert_eq!(value_of(&bind).as_bytes(), value);
    }
}
