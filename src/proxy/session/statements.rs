//! The client's protocol-level statements, as its Parse, Close and Query messages show
//! them. The named ones are a hint for preparing them on a switch's target before the
//! pause (the capture at park is the truth a move goes by). The unnamed one is the only
//! record of it there is: PostgreSQL lists it nowhere, and a capture's simple Query destroys
//! it, so the proxy parses it again from here, on the same server or on a new one.

/// One statement as the client's Parse declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Logged {
    pub name: String,
    pub query: String,
    /// Parameter types as the client gave them (0: let the server decide).
    pub param_types: Vec<u32>,
}

/// Most statements and text kept: past either, the log stops growing (it is a hint).
const MAX_STATEMENTS: usize = 1000;
const MAX_BYTES: usize = 1 << 20;

/// The client's unnamed statement, as far as the proxy knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Unnamed {
    /// There is none: never parsed, closed, or destroyed by a simple Query.
    #[default]
    None,
    /// The last Parse of the unnamed statement. (If the server refused it there is none;
    /// parsing it again fails the same way, which nobody sees.)
    Known(Logged),
}

#[derive(Debug, Default)]
pub(super) struct StatementLog {
    statements: Vec<Logged>,
    bytes: usize,
    unnamed: Unnamed,
}

impl StatementLog {
    /// Notes a Parse message, when its whole body is at hand (`prefix.len() == body_len`).
    pub fn parse(&mut self, body_len: usize, prefix: &[u8]) {
        if prefix.len() != body_len {
            return;
        }
        let Ok((name, query, param_types)) = crate::proxy::upstream::query::parse_body(prefix) else {
            return;
        };
        if name.is_empty() {
            self.unnamed = Unnamed::Known(Logged { name: String::new(), query: query.to_owned(), param_types });
            return;
        }
        self.remove(name);
        if self.statements.len() < MAX_STATEMENTS && self.bytes + body_len <= MAX_BYTES {
            self.bytes += body_len;
            self.statements.push(Logged { name: name.to_owned(), query: query.to_owned(), param_types });
        }
    }

    /// Notes a Close message: `S` and a name drop that statement.
    pub fn close(&mut self, body_len: usize, prefix: &[u8]) {
        if prefix.len() != body_len || prefix.first() != Some(&b'S') {
            return;
        }
        match crate::wire::read_cstr(&prefix[1..]) {
            Ok(("", _)) => self.unnamed = Unnamed::None,
            Ok((name, _)) => self.remove(name),
            Err(_) => {}
        }
    }

    /// Notes a simple Query message, which destroys the unnamed statement.
    pub fn query(&mut self) {
        self.unnamed = Unnamed::None;
    }

    /// The named statements, in the order they were declared (as far as kept).
    pub fn statements(&self) -> &[Logged] {
        &self.statements
    }

    /// The unnamed statement.
    pub fn unnamed(&self) -> Option<&Logged> {
        match &self.unnamed {
            Unnamed::Known(statement) => Some(statement),
            Unnamed::None => None,
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(at) = self.statements.iter().position(|s| s.name == name) {
            let gone = self.statements.swap_remove(at);
            self.bytes -= gone.name.len() + gone.query.len() + 4 * gone.param_types.len() + 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StatementLog;

    fn parse_body(name: &str, query: &str, types: &[u32]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.extend_from_slice(query.as_bytes());
        b.push(0);
        b.extend_from_slice(&(types.len() as i16).to_be_bytes());
        for t in types {
            b.extend_from_slice(&t.to_be_bytes());
        }
        b
    }

    #[test]
    fn follows_parse_and_close() {
        let mut log = StatementLog::default();
        for (name, query) in [("s1", "SELECT 1"), ("", "SELECT 2"), ("s2", "SELECT $1"), ("s1", "SELECT 3")] {
            let body = parse_body(name, query, &[23]);
            log.parse(body.len(), &body);
        }
        let body = parse_body("s3", "SELECT 4", &[]);
        log.parse(body.len() + 10, &body);
        let names: Vec<(&str, &str)> = log.statements().iter().map(|s| (s.name.as_str(), s.query.as_str())).collect();
        assert_eq!(names, [("s2", "SELECT $1"), ("s1", "SELECT 3")]);
        log.close(4, b"Ss2\0");
        log.close(4, b"Ps1\0");
        assert_eq!(log.statements().len(), 1);
        assert_eq!(log.statements()[0].param_types, [23]);
        log.close(4, b"Ss1\0");
        assert!(log.statements().is_empty());
        assert_eq!(log.bytes, 0);
    }

    #[test]
    fn the_unnamed_statement_lasts_until_replaced_closed_or_a_simple_query() {
        let mut log = StatementLog::default();
        assert_eq!(log.unnamed(), None);
        let body = parse_body("", "SELECT $1::int", &[23]);
        log.parse(body.len(), &body);
        assert_eq!(
            log.unnamed().map(|s| (s.query.as_str(), s.param_types.clone())),
            Some(("SELECT $1::int", vec![23]))
        );
        let body = parse_body("", "SELECT 2", &[]);
        log.parse(body.len(), &body);
        assert_eq!(log.unnamed().map(|s| s.query.as_str()), Some("SELECT 2"));
        assert!(log.statements().is_empty(), "the unnamed statement is not among the named ones");
        log.query();
        assert_eq!(log.unnamed(), None, "a simple Query destroys it");
        log.parse(body.len(), &body);
        log.close(2, b"S\0");
        assert_eq!(log.unnamed(), None);
        log.parse(body.len(), &body);
        log.close(2, b"P\0");
        assert!(log.unnamed().is_some(), "closing the unnamed portal leaves the statement");
    }
}
