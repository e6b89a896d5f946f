//! Reading a SQL `PREPARE` back out of the text PostgreSQL stored for it, which is
//! the whole query message that held it (`SELECT 1; PREPARE x AS ...` is stored whole).

use super::quote::quote_ident;
use super::snapshot::PreparedStatement;

/// Why a SQL-prepared statement cannot be rebuilt from its stored text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareTextError {
    #[error("its stored text does not start with PREPARE")]
    NotPrepare,
    #[error("its stored text prepares {found:?}, not this statement")]
    OtherName { found: String },
    #[error("its stored text has no AS after the statement name")]
    NoAs,
    #[error("its stored PREPARE has an empty body")]
    EmptyBody,
    #[error("its stored text prepares this name more than once")]
    MoreStatements,
    #[error("its stored text ends inside a quote or a comment")]
    Unterminated,
    #[error("its stored text reads differently with standard_conforming_strings on and off")]
    Ambiguous,
}

/// PostgreSQL's identifier length limit (NAMEDATALEN - 1 bytes).
const MAX_IDENTIFIER_BYTES: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    QuotedIdent,
    Semicolon,
    Open,
    Close,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// `PREPARE "name"(types) AS body` for a SQL-prepared statement, with the parameter
/// types as captured (schema-qualified) and the body cut out of the stored text.
/// The stored text must prepare this name exactly once.
pub fn rebuild_prepare(statement: &PreparedStatement) -> Result<String, PrepareTextError> {
    let body = prepare_body(&statement.statement, &statement.name)?;
    let mut sql = format!("PREPARE {}", quote_ident(&statement.name));
    if !statement.param_types.is_empty() {
        sql.push('(');
        sql.push_str(&statement.param_types.join(", "));
        sql.push(')');
    }
    sql.push_str(" AS ");
    sql.push_str(body);
    Ok(sql)
}

/// The statement after `AS` of the one `PREPARE name [(...)] AS statement` in `text`,
/// which may hold other statements too (PostgreSQL stores the whole Query). The text is read
/// with `standard_conforming_strings` both on and off; if the two disagree it is
/// refused, since the session's value when it prepared is unknown.
pub fn prepare_body<'a>(text: &'a str, name: &str) -> Result<&'a str, PrepareTextError> {
    match (body_with(text, name, true), body_with(text, name, false)) {
        (Ok(standard), Ok(escaped)) if standard == escaped => Ok(standard),
        (Err(standard), Err(_)) => Err(standard),
        _ => Err(PrepareTextError::Ambiguous),
    }
}

fn body_with<'a>(text: &'a str, name: &str, standard_strings: bool) -> Result<&'a str, PrepareTextError> {
    let tokens = tokens(text, standard_strings)?;
    // The Query may hold several statements (`SET ...; PREPARE q AS ...`): the one that
    // prepares this name is the statement to rebuild.
    let statements = tokens.split(|t| t.kind == Kind::Semicolon).filter(|s| !s.is_empty());
    let mut found = Vec::new();
    let mut other = None;
    for statement in statements {
        match prepared_name(text, statement) {
            Some(prepared) if prepared == name => found.push(statement),
            Some(prepared) => other = other.or(Some(prepared)),
            None => {}
        }
    }
    match found.as_slice() {
        [statement] => statement_body(text, statement),
        [] => Err(match other {
            Some(found) => PrepareTextError::OtherName { found },
            None => PrepareTextError::NotPrepare,
        }),
        _ => Err(PrepareTextError::MoreStatements),
    }
}

/// The name a `PREPARE name ...` statement prepares, or `None` for another statement.
fn prepared_name(text: &str, tokens: &[Token]) -> Option<String> {
    let slice = |token: &Token| &text[token.start..token.end];
    let first = tokens.first()?;
    if first.kind != Kind::Word || !slice(first).eq_ignore_ascii_case("prepare") {
        return None;
    }
    match tokens.get(1) {
        Some(t) if t.kind == Kind::Word => Some(truncate_identifier(slice(t).to_ascii_lowercase())),
        Some(t) if t.kind == Kind::QuotedIdent => {
            Some(truncate_identifier(slice(t)[1..slice(t).len() - 1].replace("\"\"", "\"")))
        }
        _ => None,
    }
}

/// The text after `AS` of one `PREPARE name [(types)] AS statement`.
fn statement_body<'a>(text: &'a str, tokens: &[Token]) -> Result<&'a str, PrepareTextError> {
    let slice = |token: &Token| &text[token.start..token.end];
    let mut next = 2;
    if tokens.get(next).is_some_and(|t| t.kind == Kind::Open) {
        let mut depth = 0usize;
        loop {
            match tokens.get(next).map(|t| t.kind) {
                None => return Err(PrepareTextError::NoAs),
                Some(Kind::Open) => depth += 1,
                Some(Kind::Close) => depth -= 1,
                Some(_) => {}
            }
            next += 1;
            if depth == 0 {
                break;
            }
        }
    }
    if !tokens.get(next).is_some_and(|t| t.kind == Kind::Word && slice(t).eq_ignore_ascii_case("as")) {
        return Err(PrepareTextError::NoAs);
    }
    let body = &tokens[next + 1..];
    match (body.first(), body.last()) {
        (Some(first), Some(last)) => Ok(&text[first.start..last.end]),
        _ => Err(PrepareTextError::EmptyBody),
    }
}

/// PostgreSQL cuts identifiers longer than 63 bytes (on a character boundary).
fn truncate_identifier(mut name: String) -> String {
    if name.len() > MAX_IDENTIFIER_BYTES {
        let mut cut = MAX_IDENTIFIER_BYTES;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Splits SQL into the tokens that matter for finding statement boundaries:
/// comments and whitespace are dropped; quotes, quoted identifiers and dollar quotes
/// are single tokens. Plain `'...'` strings take backslash escapes when
/// `standard_strings` is false; `E'...'` strings always do.
fn tokens(text: &str, standard_strings: bool) -> Result<Vec<Token>, PrepareTextError> {
    let b = text.as_bytes();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let kind = match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p + 1);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i)?;
                continue;
            }
            b'\'' => {
                let prefixed_e = out.last().is_some_and(|t| {
                    t.kind == Kind::Word && t.end == i && t.end - t.start == 1 && b[t.start].eq_ignore_ascii_case(&b'e')
                });
                i = skip_string(b, i, prefixed_e || !standard_strings)?;
                Kind::Other
            }
            b'"' => {
                i = skip_quoted_ident(b, i)?;
                Kind::QuotedIdent
            }
            b'$' => {
                i = skip_dollar(b, i)?;
                Kind::Other
            }
            c if is_ident_start(c) => {
                i += 1;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                Kind::Word
            }
            b';' => {
                i += 1;
                Kind::Semicolon
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        out.push(Token { kind, start, end: i });
    }
    Ok(out)
}

/// End of a `/* ... */` comment starting at `i`; they nest.
fn skip_block_comment(b: &[u8], mut i: usize) -> Result<usize, PrepareTextError> {
    let mut depth = 0usize;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => i += 1,
        }
    }
    Err(PrepareTextError::Unterminated)
}

/// End of a string literal whose opening quote is at `i`.
fn skip_string(b: &[u8], mut i: usize, backslash_escapes: bool) -> Result<usize, PrepareTextError> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash_escapes => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(PrepareTextError::Unterminated)
}

/// End of a quoted identifier whose opening `"` is at `i`.
fn skip_quoted_ident(b: &[u8], mut i: usize) -> Result<usize, PrepareTextError> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'"' if b.get(i + 1) == Some(&b'"') => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(PrepareTextError::Unterminated)
}

/// End of what starts with `$` at `i`: a parameter (`$1`), a dollar-quoted string
/// (`$tag$ ... $tag$`), or a lone `$`.
fn skip_dollar(b: &[u8], i: usize) -> Result<usize, PrepareTextError> {
    let mut j = i + 1;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        return Ok(j);
    }
    if b.get(j).is_some_and(|&c| is_ident_start(c)) {
        j += 1;
        while b.get(j).is_some_and(|&c| is_ident_char(c) && c != b'$') {
            j += 1;
        }
    }
    if b.get(j) != Some(&b'$') {
        return Ok(i + 1);
    }
    let tag = &b[i..=j];
    let body_start = j + 1;
    b[body_start..]
        .windows(tag.len())
        .position(|window| window == tag)
        .map(|p| body_start + p + tag.len())
        .ok_or(PrepareTextError::Unterminated)
}
