//! What a translated session's messages mean for its results: which statement or portal
//! each answer belongs to, and so the types and formats of the columns of every DataRow
//! and the parameters of every Bind. Fed the client's messages as they go up and the
//! server's as they come back; the server answers in order, and after an error skips to
//! the next Sync.

use std::collections::{HashMap, VecDeque};

use super::messages::{Column, Field};

/// A prepared statement, as the serving side described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statement {
    /// Parameter types (serving side; 0: not known).
    pub param_types: Vec<u32>,
    /// Result columns, once described (serving side).
    pub fields: Option<Vec<Field>>,
    /// A driver's type introspection: its OID values are translated.
    pub introspection: bool,
}

/// A portal: its statement and the result formats its Bind chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Portal {
    statement: String,
    result_formats: Vec<i16>,
    /// Result columns when the portal itself was described.
    fields: Option<Vec<Field>>,
    /// The number of the request it was bound in (requests the client had ended before).
    request: u64,
}

/// An answer the server owes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    DescribeStatement(String),
    DescribePortal(String),
    Execute(String),
    /// A simple Query: RowDescriptions and rows until its ReadyForQuery.
    Query {
        introspection: bool,
    },
    Sync,
    FunctionCall,
}

/// A statement text that reads the type catalogs: a driver's type introspection.
pub fn is_introspection(query: &str) -> bool {
    const CATALOGS: [&str; 5] = ["pg_type", "pg_attribute", "pg_enum", "pg_range", "pg_class"];
    let lower = query.to_ascii_lowercase();
    CATALOGS.iter().any(|catalog| lower.contains(catalog))
}

/// A translated session's statements, portals and the answers it is owed.
#[derive(Debug, Default)]
pub struct Shapes {
    statements: HashMap<String, Statement>,
    portals: HashMap<String, Portal>,
    expect: VecDeque<Expect>,
    /// The columns of the simple Query result being read.
    current: Option<Vec<Column>>,
    /// Requests the client ended (Sync, Query, FunctionCall) and the server answered
    /// (ReadyForQuery): a client may send its next request before the last is answered.
    sent: u64,
    answered: u64,
}

impl Shapes {
    /// A statement the proxy prepared itself (a move's replay), as the server described it.
    pub fn adopt(&mut self, name: &str, statement: Statement) {
        self.statements.insert(name.to_owned(), statement);
    }

    /// The statement `name`, if known.
    pub fn statement(&self, name: &str) -> Option<&Statement> {
        self.statements.get(name)
    }

    // The client's messages, in the order sent.

    pub fn parse(&mut self, name: &str, query: &str, param_types: Vec<u32>) {
        let introspection = is_introspection(query);
        self.statements.insert(name.to_owned(), Statement { param_types, fields: None, introspection });
    }

    pub fn bind(&mut self, portal: &str, statement: &str, result_formats: Vec<i16>) {
        let portal_state = Portal { statement: statement.to_owned(), result_formats, fields: None, request: self.sent };
        self.portals.insert(portal.to_owned(), portal_state);
    }

    /// Describe of a statement (`S`) or portal (`P`).
    pub fn describe(&mut self, kind: u8, name: &str) {
        self.expect.push_back(match kind {
            b'S' => Expect::DescribeStatement(name.to_owned()),
            _ => Expect::DescribePortal(name.to_owned()),
        });
    }

    pub fn execute(&mut self, portal: &str) {
        self.expect.push_back(Expect::Execute(portal.to_owned()));
    }

    /// A simple Query (it also destroys the unnamed statement and portal).
    pub fn query(&mut self, text: &str) {
        self.statements.remove("");
        self.portals.remove("");
        self.expect.push_back(Expect::Query { introspection: is_introspection(text) });
        self.sent += 1;
    }

    pub fn close(&mut self, kind: u8, name: &str) {
        if kind == b'S' {
            self.statements.remove(name);
        } else {
            self.portals.remove(name);
        }
    }

    pub fn sync(&mut self) {
        self.expect.push_back(Expect::Sync);
        self.sent += 1;
    }

    pub fn function_call(&mut self) {
        self.expect.push_back(Expect::FunctionCall);
        self.sent += 1;
    }

    // The server's answers, in the order received.

    /// A ParameterDescription, with the serving side's types.
    pub fn parameter_description(&mut self, types: Vec<u32>) {
        if let Some(Expect::DescribeStatement(name)) = self.expect.front() {
            self.statements.entry(name.clone()).or_default().param_types = types;
        }
    }

    /// A RowDescription, with the serving side's columns.
    pub fn row_description(&mut self, fields: Vec<Field>) {
        match self.expect.front().cloned() {
            Some(Expect::DescribeStatement(name)) => {
                self.statements.entry(name).or_default().fields = Some(fields);
                self.expect.pop_front();
            }
            Some(Expect::DescribePortal(name)) => {
                if let Some(portal) = self.portals.get_mut(&name) {
                    portal.fields = Some(fields);
                }
                self.expect.pop_front();
            }
            Some(Expect::Query { introspection }) => {
                let columns = fields
                    .iter()
                    .map(|f| Column { type_oid: f.type_oid, binary: f.format == 1, introspection })
                    .collect();
                self.current = Some(columns);
            }
            _ => {}
        }
    }

    /// NoData: a Describe with no result.
    pub fn no_data(&mut self) {
        if matches!(self.expect.front(), Some(Expect::DescribeStatement(_) | Expect::DescribePortal(_))) {
            self.expect.pop_front();
        }
    }

    /// The columns of the DataRows that come now, if known.
    pub fn columns(&self) -> Option<Vec<Column>> {
        match self.expect.front()? {
            Expect::Query { .. } => self.current.clone(),
            Expect::Execute(portal) => {
                let portal = self.portals.get(portal)?;
                let statement = self.statements.get(&portal.statement)?;
                let fields = portal.fields.as_ref().or(statement.fields.as_ref())?;
                let formats = &portal.result_formats;
                Some(
                    fields
                        .iter()
                        .enumerate()
                        .map(|(i, field)| Column {
                            type_oid: field.type_oid,
                            binary: match formats.len() {
                                0 => false,
                                1 => formats[0] == 1,
                                _ => formats.get(i) == Some(&1),
                            },
                            introspection: statement.introspection,
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }

    /// CommandComplete, EmptyQueryResponse or PortalSuspended: a result ends.
    pub fn result_done(&mut self) {
        match self.expect.front() {
            Some(Expect::Execute(_)) => {
                self.expect.pop_front();
            }
            Some(Expect::Query { .. }) => self.current = None,
            _ => {}
        }
    }

    /// An ErrorResponse: in a simple Query the rest of it is skipped; in the extended
    /// protocol, everything up to the next Sync.
    pub fn error(&mut self) {
        match self.expect.front() {
            Some(Expect::Query { .. }) => self.current = None,
            _ => {
                while matches!(
                    self.expect.front(),
                    Some(Expect::DescribeStatement(_) | Expect::DescribePortal(_) | Expect::Execute(_))
                ) {
                    self.expect.pop_front();
                }
            }
        }
    }

    /// ReadyForQuery: the request it answers is done. Portals do not outlive their
    /// transaction: when it ended, those bound up to this request are gone (not those of
    /// requests the client sent after it).
    pub fn ready_for_query(&mut self, status: u8) {
        if matches!(self.expect.front(), Some(Expect::Sync | Expect::Query { .. } | Expect::FunctionCall)) {
            self.expect.pop_front();
        }
        self.current = None;
        self.answered += 1;
        if status == b'I' {
            let answered = self.answered;
            self.portals.retain(|_, portal| portal.request >= answered);
        }
    }

    /// The statement a Bind names, for its parameter types.
    pub fn bound_statement(&self, name: &str) -> Option<&Statement> {
        self.statements.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(type_oid: u32) -> Field {
        Field { type_oid, format: 0 }
    }

    #[test]
    fn rows_of_an_execute_take_the_statement_types_and_the_bind_formats() {
        let mut shapes = Shapes::default();
        shapes.parse("s1", "SELECT $1::mood[], 1", vec![0]);
        shapes.describe(b'S', "s1");
        shapes.sync();
        shapes.parameter_description(vec![16384]);
        shapes.row_description(vec![field(16384), field(23)]);
        shapes.ready_for_query(b'I');
        assert_eq!(shapes.statement("s1").map(|s| s.param_types.clone()), Some(vec![16384]));
        shapes.bind("", "s1", vec![1]);
        shapes.execute("");
        shapes.sync();
        let columns = shapes.columns().expect("known");
        assert_eq!(columns[0], Column { type_oid: 16384, binary: true, introspection: false });
        assert!(columns[1].binary);
        shapes.result_done();
        assert_eq!(shapes.columns(), None, "the Sync's answer has no rows");
        shapes.ready_for_query(b'I');
        assert!(shapes.expect.is_empty());
    }

    #[test]
    fn a_portal_bound_after_a_sync_outlives_the_answer_to_that_sync() {
        let mut shapes = Shapes::default();
        shapes.adopt(
            "s0",
            Statement { fields: Some(vec![Field { type_oid: 16387, format: 1 }]), ..Statement::default() },
        );
        // Close + Sync, then Bind + Execute + Sync, all sent before the first answer.
        shapes.close(b'S', "s4");
        shapes.sync();
        shapes.bind("", "s0", vec![1]);
        shapes.execute("");
        shapes.sync();
        shapes.ready_for_query(b'I');
        let columns = shapes.columns().expect("the portal of the second request is still there");
        assert_eq!(columns, [Column { type_oid: 16387, binary: true, introspection: false }]);
        shapes.result_done();
        shapes.ready_for_query(b'I');
        assert!(shapes.portals.is_empty(), "its transaction ended");
    }

    #[test]
    fn an_error_skips_to_the_sync_and_a_simple_query_reads_its_descriptions() {
        let mut shapes = Shapes::default();
        shapes.bind("p", "missing", vec![]);
        shapes.describe(b'P', "p");
        shapes.execute("p");
        shapes.sync();
        shapes.query("SELECT t.oid FROM pg_catalog.pg_type t");
        shapes.error();
        assert_eq!(shapes.expect.front(), Some(&Expect::Sync));
        shapes.ready_for_query(b'I');
        shapes.row_description(vec![Field { type_oid: 26, format: 0 }]);
        assert_eq!(shapes.columns(), Some(vec![Column { type_oid: 26, binary: false, introspection: true }]));
        shapes.result_done();
        shapes.ready_for_query(b'I');
        assert!(shapes.expect.is_empty());
    }

    #[test]
    fn introspection_is_told_by_the_catalogs_read() {
        assert!(is_introspection("SELECT typname FROM PG_CATALOG.PG_TYPE WHERE oid = $1"));
        assert!(is_introspection("select enumlabel from pg_enum where enumtypid = $1"));
        assert!(!is_introspection("SELECT * FROM orders WHERE id = $1"));
    }
}
