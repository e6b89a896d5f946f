//! How the admin API shows a session's last query: by default only its first keyword and
//! its length (`UPDATE … (312 bytes)`), since query text carries application data (card
//! numbers, personal data) an admin caller has no need for; in full (its first 256 bytes)
//! with `admin_show_queries`.

/// The longest keyword shown.
const KEYWORD_MAX: usize = 16;

/// What the admin API says of a query whose text starts with `start` and is `len` bytes long.
pub fn shown(start: &str, len: usize, show: bool) -> String {
    if show || start.is_empty() {
        return start.to_owned();
    }
    match first_keyword(start) {
        Some(keyword) => format!("{keyword} … ({len} bytes)"),
        None => format!("… ({len} bytes)"),
    }
}

/// The first word of `sql` after blanks and comments, in upper case, when it is a keyword
/// (letters only).
fn first_keyword(sql: &str) -> Option<String> {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(' || c == ';');
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
    let word = &rest[..end];
    let follows = rest[end..].chars().next();
    // A word cut short by the kept prefix, or running into digits or quotes, is not shown.
    if word.is_empty() || word.len() > KEYWORD_MAX || follows.is_some_and(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    Some(word.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_keyword_and_the_length_by_default() {
        let sql = "update cards set number = '4111 1111 1111 1111' where id = 7";
        assert_eq!(shown(sql, 312, false), "UPDATE … (312 bytes)");
        assert_eq!(shown(sql, 312, true), sql);
        assert_eq!(shown("  /* app */ -- x\n  SELECT 1", 27, false), "SELECT … (27 bytes)");
        assert_eq!(shown("(select 1)", 10, false), "SELECT … (10 bytes)");
        assert_eq!(shown("'4111 1111'", 11, false), "… (11 bytes)");
        assert_eq!(shown("alice_secret_name", 17, false), "… (17 bytes)");
        assert_eq!(shown("", 0, false), "");
    }
}
