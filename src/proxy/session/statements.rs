//! The client's named protocol-level statements, as its Parse and Close messages show
//! them: a hint for preparing them on a switch's target before the pause. The capture at
//! park is the truth a move goes by; this log only saves work.

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

#[derive(Debug, Default)]
pub(super) struct StatementLog {
    statements: Vec<Logged>,
    bytes: usize,
}

impl StatementLog {
    /// Notes a Parse message, when its whole body is at hand (`prefix.len() == body_len`).
    pub fn parse(&mut self, body_len: usize, prefix: &[u8]) {
        // Unnamed statements (most extended-protocol queries) are not kept: decide on the
        // first byte, before decoding anything.
        if prefix.len() != body_len || prefix.first().is_none_or(|b| *b == 0) {
            return;
        }
        let Ok((name, query, param_types)) = crate::proxy::upstream::query::parse_body(prefix) else {
            return;
        };
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
        if let Ok((name, _)) = crate::wire::read_cstr(&prefix[1..]) {
            self.remove(name);
        }
    }

    pub fn statements(&self) -> &[Logged] {
        &self.statements
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
}
