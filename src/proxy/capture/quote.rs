//! Quoting of SQL literals and identifiers, and the shape of a custom setting's name.

/// A string literal that means `value` whatever `standard_conforming_strings` is.
///
/// Single quotes are doubled. When the value holds a backslash the literal uses the
/// escape syntax (`E'...'`) with doubled backslashes, as PostgreSQL's own
/// `quote_literal()` does, since a plain literal would read `\` differently when a
/// client has turned `standard_conforming_strings` off. PostgreSQL text cannot hold
/// NUL: a value with one makes a query the server refuses as a whole.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            other => out.push(other),
        }
    }
    out.push('\'');
    out
}

/// An identifier that names exactly `name`: always double-quoted, embedded `"` doubled,
/// so case, spaces and keywords survive.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// True when `name` has the shape PostgreSQL requires of a custom setting: two or
/// more simple identifiers separated by dots (`myapp.tenant`). `SET` and
/// `set_config` refuse any other unknown name, so no other name can hold a value.
pub fn is_custom_setting_name(name: &str) -> bool {
    let mut parts = 0;
    for part in name.split('.') {
        let mut chars = part.chars();
        let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii());
        if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()) {
            return false;
        }
        parts += 1;
    }
    parts >= 2
}
