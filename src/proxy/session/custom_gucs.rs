//! Noticing the names of settings a client sets, so a move can carry them: custom
//! settings (`myapp.tenant`) may be missing from pg_settings, and a built-in one set to
//! its old default must still be carried to a server whose default differs. The capture
//! reads each noticed name.
//!
//! Reads `SET [SESSION] name ...` and `set_config('name', ...)` in query texts, loosely: a
//! name noticed wrongly costs one NULL in the capture (or is dropped there), a custom name
//! missed is why the `track_setting` option exists.

/// Adds to `names` the setting names that `sql` sets. Runs on every query the
/// client sends, so it allocates nothing unless the text mentions SET at all.
pub fn notice(sql: &[u8], names: &mut Vec<String>) {
    if !sql.windows(3).any(|w| w.eq_ignore_ascii_case(b"set")) {
        return;
    }
    let Ok(sql) = std::str::from_utf8(sql) else {
        return;
    };
    for statement in sql.split(';') {
        let mut words = statement.split_whitespace();
        if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("set")) {
            continue;
        }
        let mut name = words.next();
        if name.is_some_and(|n| n.eq_ignore_ascii_case("session")) {
            name = words.next();
        }
        if let Some(name) = name.and_then(setting_name) {
            add(names, name);
        }
    }
    const CALL: &[u8] = b"set_config(";
    let bytes = sql.as_bytes();
    let mut from = 0;
    while let Some(at) = bytes[from..].windows(CALL.len()).position(|w| w.eq_ignore_ascii_case(CALL)) {
        let start = from + at + CALL.len();
        if let Some(quoted) = sql[start..].trim_start().strip_prefix('\'') {
            if let Some(name) = quoted.split('\'').next().and_then(setting_name) {
                add(names, name);
            }
        }
        from = start;
    }
}

/// A setting name (`work_mem`, `prefix.name`), lower-cased as PostgreSQL folds it, or
/// `None`. `SET LOCAL` ends with its transaction, so `local` is no name.
fn setting_name(word: &str) -> Option<String> {
    let word = word.split(['=', '(']).next().unwrap_or_default().trim_matches('"');
    let valid = !word.is_empty()
        && !word.eq_ignore_ascii_case("local")
        && !word.starts_with('.')
        && !word.ends_with('.')
        && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    valid.then(|| word.to_ascii_lowercase())
}

/// Most names remembered per session: past this, a session that makes up names (one per
/// request, say) costs no more memory; the capture's comparison with the connection's
/// baseline still carries every built-in setting it changed.
const MAX_NAMES: usize = 256;

fn add(names: &mut Vec<String>, name: String) {
    if names.len() < MAX_NAMES && !names.contains(&name) {
        names.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::notice;

    #[test]
    fn set_and_set_config_are_noticed() {
        let mut names = Vec::new();
        notice(b"SET myapp.tenant = 'acme'; set session MyApp.Region to 'eu'", &mut names);
        notice(b"SELECT set_config('audit.user', $1, false)", &mut names);
        notice(b"SET LOCAL x.y = 1; SELECT 1", &mut names);
        notice(b"SET myapp.tenant TO 'other'", &mut names);
        notice(b"set Work_Mem = '8MB'; SET search_path=public", &mut names);
        assert_eq!(names, ["myapp.tenant", "myapp.region", "audit.user", "work_mem", "search_path"]);
    }
}
