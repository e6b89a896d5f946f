//! Noticing the names of settings a client sets, so a move can carry them: custom
//! settings (`myapp.tenant`) may be missing from pg_settings, and a built-in one set to
//! its old default must still be carried to a server whose default differs. The capture
//! reads each noticed name.
//!
//! Reads query texts loosely, with comments and string literals skipped: a `SET
//! [SESSION] name` that starts a statement (after a `;`, or a PL/pgSQL `BEGIN`, `THEN`,
//! `ELSE` or `LOOP`, also inside a dollar-quoted body such as a `DO` block), and
//! `set_config('name', ...)` anywhere. A name noticed wrongly costs one NULL in the
//! capture (or is dropped there); a custom name set with a bound parameter
//! (`set_config($1, ...)`) is why the `track_setting` option exists.

/// Adds to `names` the setting names that `sql` sets. Runs on every query the
/// client sends, so it allocates nothing unless the text mentions SET at all.
pub fn notice(sql: &[u8], names: &mut Vec<String>) {
    if !sql.windows(3).any(|w| w.eq_ignore_ascii_case(b"set")) {
        return;
    }
    let Ok(sql) = std::str::from_utf8(sql) else {
        return;
    };
    scan(sql, names, 0);
}

/// How deep dollar-quoted bodies are read (a function body inside a `DO` block, ...).
const MAX_DEPTH: usize = 4;

/// One token of the text, as far as noticing needs.
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Semicolon,
    /// A string literal's content ('' and \' not undone: names have neither).
    Literal(&'a str),
    /// A dollar-quoted body.
    Body(&'a str),
    Other(char),
}

fn scan(sql: &str, names: &mut Vec<String>, depth: usize) {
    let mut tokens = Tokens { rest: sql };
    // True where a statement may start: the beginning, after `;`, after a PL/pgSQL block word.
    let mut at_start = true;
    let mut previous_word_set_config = false;
    while let Some(token) = tokens.next() {
        let mut starts_next = false;
        match token {
            Token::Semicolon => starts_next = true,
            Token::Body(body) if depth < MAX_DEPTH => {
                scan(body, names, depth + 1);
                starts_next = true;
            }
            Token::Word(word) if at_start && word.eq_ignore_ascii_case("set") => {
                let mut name = tokens.next();
                if matches!(name, Some(Token::Word(w)) if w.eq_ignore_ascii_case("session")) {
                    name = tokens.next();
                }
                if let Some(Token::Word(name)) = name {
                    if let Some(name) = setting_name(name) {
                        add(names, name);
                    }
                }
            }
            Token::Word(word) => {
                starts_next = ["begin", "then", "else", "loop"].iter().any(|w| word.eq_ignore_ascii_case(w));
                if word.eq_ignore_ascii_case("set_config") || word.eq_ignore_ascii_case("pg_catalog.set_config") {
                    previous_word_set_config = true;
                    continue;
                }
            }
            Token::Other('(') if previous_word_set_config => {
                if let Some(Token::Literal(name)) = tokens.next() {
                    if let Some(name) = setting_name(name) {
                        add(names, name);
                    }
                }
            }
            _ => {}
        }
        previous_word_set_config = false;
        at_start = starts_next;
    }
}

struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            self.rest = self.rest.trim_start();
            if let Some(after) = self.rest.strip_prefix("--") {
                self.rest = after.find('\n').map_or("", |end| &after[end..]);
            } else if self.rest.starts_with("/*") {
                self.rest = skip_block_comment(self.rest);
            } else {
                break;
            }
        }
        let rest = self.rest;
        let first = rest.chars().next()?;
        let (token, used) = match first {
            ';' => (Token::Semicolon, 1),
            '\'' => quoted(rest, '\'', false),
            'E' | 'e' if rest[1..].starts_with('\'') => {
                let (token, used) = quoted(&rest[1..], '\'', true);
                (token, used + 1)
            }
            '"' => {
                // A quoted identifier: a setting name may be one ("MyApp.Tenant" is not, but
                // "work_mem" is).
                let (token, used) = quoted(rest, '"', false);
                match token {
                    Token::Literal(name) => (Token::Word(name), used),
                    other => (other, used),
                }
            }
            '$' => match dollar_tag(rest) {
                Some(tag) => {
                    let body_start = tag.len();
                    match rest[body_start..].find(tag) {
                        Some(end) => (Token::Body(&rest[body_start..body_start + end]), body_start + end + tag.len()),
                        None => (Token::Body(&rest[body_start..]), rest.len()),
                    }
                }
                None => (Token::Other('$'), 1),
            },
            c if c.is_alphanumeric() || c == '_' => {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '$'))
                    .unwrap_or(rest.len());
                (Token::Word(&rest[..end]), end)
            }
            c => (Token::Other(c), c.len_utf8()),
        };
        self.rest = &rest[used..];
        Some(token)
    }
}

/// A literal or quoted identifier starting at `text` (its opening quote included): its
/// content and the bytes used. With `backslashes`, `\` escapes the next character.
fn quoted(text: &str, quote: char, backslashes: bool) -> (Token<'_>, usize) {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslashes => i += 2,
            b if b == quote as u8 && bytes.get(i + 1) == Some(&(quote as u8)) => i += 2,
            b if b == quote as u8 => return (Token::Literal(&text[1..i]), i + 1),
            _ => i += 1,
        }
    }
    (Token::Literal(&text[1.min(text.len())..]), text.len())
}

/// `$tag$` or `$$` at the start of `text`.
fn dollar_tag(text: &str) -> Option<&str> {
    let end = text[1..].find('$')? + 1;
    let tag = &text[1..end];
    let valid = tag.chars().all(|c| c.is_alphanumeric() || c == '_') && !tag.starts_with(|c: char| c.is_ascii_digit());
    valid.then(|| &text[..=end])
}

/// What follows a (possibly nested) block comment at the start of `text`.
fn skip_block_comment(text: &str) -> &str {
    let mut depth = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return &text[i..];
                }
            }
            _ => i += 1,
        }
    }
    ""
}

/// A setting name (`work_mem`, `prefix.name`), lower-cased as PostgreSQL folds it, or
/// `None`. `SET LOCAL` ends with its transaction, so `local` is no name.
fn setting_name(word: &str) -> Option<String> {
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

    fn noticed(texts: &[&str]) -> Vec<String> {
        let mut names = Vec::new();
        for text in texts {
            notice(text.as_bytes(), &mut names);
        }
        names
    }

    #[test]
    fn set_and_set_config_are_noticed() {
        let names = noticed(&[
            "SET myapp.tenant = 'acme'; set session MyApp.Region to 'eu'",
            "SELECT set_config('audit.user', $1, false)",
            "SET LOCAL x.y = 1; SELECT 1",
            "SET myapp.tenant TO 'other'",
            "set Work_Mem = '8MB'; SET search_path=public",
        ]);
        assert_eq!(names, ["myapp.tenant", "myapp.region", "audit.user", "work_mem", "search_path"]);
    }

    #[test]
    fn anywhere_in_the_text_but_not_in_comments_or_literals() {
        let names = noticed(&[
            "/* set up the tenant */ SET a.one = 1",
            "-- tenant\nSET a.two TO 2",
            "BEGIN; SELECT 1; SET a.three = 3; COMMIT",
            "SELECT x FROM t WHERE y = 'SET a.fake = 1'; SET a.four = 4",
            "/* SET a.fake2 = 1 */ SELECT pg_catalog.set_config('a.five', 'v', false), set_config ( 'a.six', 'w', false)",
            "DO $$ BEGIN SET a.seven = 7; PERFORM set_config('a.eight', '8', false); END $$",
            "DO $body$ BEGIN IF true THEN SET a.nine = 9; END IF; END $body$",
            "UPDATE t SET a.not_a_setting = 1",
            "ALTER ROLE r SET a.default_only = 1",
            "SET \"work_mem\" = '1MB'",
            "SELECT E'it\\'s; SET a.fake3 = 1'; SET a.ten = 10",
        ]);
        assert_eq!(
            names,
            [
                "a.one", "a.two", "a.three", "a.four", "a.five", "a.six", "a.seven", "a.eight", "a.nine", "work_mem",
                "a.ten"
            ]
        );
    }

    #[test]
    fn odd_texts_do_not_panic() {
        for text in [
            "SET",
            "SET SESSION",
            "set_config(",
            "$$",
            "$a",
            "'",
            "/*",
            "E'",
            "\"",
            "SET ;",
            "$$ SET $$",
            "E",
            "e'\\",
            "$é$ SET é.x = 1 $é$",
            "SET é.x = 1",
            "/* /* */",
            "--",
            "$1$",
            "$$$",
            "\u{1F600}SET",
        ] {
            noticed(&[text]);
        }
        assert_eq!(noticed(&["$é$ BEGIN SET a.b = 1; END $é$"]), ["a.b"]);
    }
}
