//! A session's state as captured from its server, and parsing the capture's row.

use super::baseline::Baseline;
use super::error::CaptureError;
use super::query::{CAPTURE_COLUMNS, DETAILS_COLUMNS, OVERRIDDEN_SETTINGS, OVERRIDE_COLUMNS};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One setting and its value as `current_setting()` prints it (`8MB`, `1500ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

/// One row of `pg_prepared_statements`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedStatement {
    pub name: String,
    /// For SQL `PREPARE`: the whole query text that held the PREPARE. For a
    /// protocol-level statement: the text of the Parse message.
    pub statement: String,
    /// True for SQL `PREPARE`, false for a protocol-level (Parse) statement.
    pub from_sql: bool,
    /// Parameter types as schema-qualified, quoted where needed, names
    /// (`pg_catalog.int4`, `"My Schema"."Mood"[]`), to resolve on any server. Filled by
    /// [`SessionSnapshot::apply_details`] for a SQL `PREPARE` with parameters and for a
    /// statement with a type that is not built in; empty for a protocol-level statement
    /// whose types are all built in: its `param_oids` serve on any server.
    #[serde(default)]
    pub param_types: Vec<String>,
    /// The same types as OIDs on the captured server. Those below
    /// [`FIRST_UNSTABLE_OID`] are the same on every server of any version.
    #[serde(default)]
    pub param_oids: Vec<u32>,
}

/// OIDs below this are assigned by hand in PostgreSQL's source (built-in types and
/// the like) and mean the same thing on every server.
pub const FIRST_UNSTABLE_OID: u32 = 10_000;

impl PreparedStatement {
    /// True when replaying the statement needs its parameter types by name.
    fn wants_names(&self) -> bool {
        (self.from_sql && !self.param_oids.is_empty()) || self.param_oids.iter().any(|oid| *oid >= FIRST_UNSTABLE_OID)
    }

    /// The parameter type OIDs when all are built-in, so that any server takes them as
    /// they are; `None` when one needs looking up by name.
    pub fn stable_oids(&self) -> Option<&[u32]> {
        let named = self.param_types.is_empty() || self.param_oids.len() == self.param_types.len();
        (named && self.param_oids.iter().all(|oid| *oid < FIRST_UNSTABLE_OID)).then_some(&self.param_oids)
    }
}

/// Session state that cannot move to another server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unmovable {
    /// Tables, views, sequences, composite types, functions and enum, domain and
    /// range types in the session's temporary schema (indexes not counted).
    pub temp_objects: u64,
    /// Session-level advisory locks this backend holds. The capture does not read them
    /// (see [`super::ADVISORY_HOLDERS_QUERY`]): 0 unless the caller fills it in.
    pub advisory_locks: u64,
    /// Open `WITH HOLD` cursors.
    pub holdable_cursors: u64,
    /// The capture ran inside a transaction that holds an xid: it was not sent at a
    /// transaction boundary.
    pub holds_xid: bool,
}

impl Unmovable {
    /// True when nothing keeps the session from moving.
    pub fn is_empty(&self) -> bool {
        *self == Unmovable::default()
    }

    /// What keeps the session, for people: `2 temp objects, 1 session advisory lock`;
    /// `nothing` when empty.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let counted = [
            (self.temp_objects, "temp object", "temp objects"),
            (self.advisory_locks, "session advisory lock", "session advisory locks"),
            (self.holdable_cursors, "WITH HOLD cursor", "WITH HOLD cursors"),
        ];
        for (count, one, many) in counted {
            match count {
                0 => {}
                1 => parts.push(format!("1 {one}")),
                n => parts.push(format!("{n} {many}")),
            }
        }
        if self.holds_xid {
            parts.push("an open transaction holding an xid".to_string());
        }
        if parts.is_empty() {
            "nothing".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// Everything the capture query read from one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSnapshot {
    /// Backend process id on the server that was captured.
    pub pid: i32,
    /// `current_setting('session_authorization')`.
    pub session_authorization: String,
    /// The role of `SET ROLE`; `None` when no role is set (`none`).
    pub role: Option<String>,
    /// The client's values of the settings the capture overrides for itself
    /// (`jit`, `statement_timeout`; see [`OVERRIDDEN_SETTINGS`]), always replayed.
    pub overridden: Vec<Setting>,
    /// Settings whose value differs from the connection's [`super::Baseline`], by name.
    pub settings: Vec<Setting>,
    /// The asked-for settings (custom ones, and those the client named in a `SET`) that
    /// have a value in the session, in the order asked.
    pub custom_settings: Vec<Setting>,
    /// Named prepared statements, SQL and protocol-level, by name.
    pub prepared: Vec<PreparedStatement>,
    /// Channels the session listens on, exact case, sorted.
    pub listen: Vec<String>,
    /// The session has a temporary schema (it made a temporary object at some point):
    /// [`SessionSnapshot::apply_details`] counts what is in it.
    pub temp_schema: bool,
    pub unmovable: Unmovable,
}

impl SessionSnapshot {
    /// The captured value of a setting, custom or not (names are case-insensitive).
    pub fn setting(&self, name: &str) -> Option<&str> {
        let all = self.overridden.iter().chain(&self.settings).chain(&self.custom_settings);
        all.into_iter().find(|setting| setting.name.eq_ignore_ascii_case(name)).map(|setting| setting.value.as_str())
    }

    /// The protocol-level (Parse) statements: the proxy replays these from its own
    /// record and can check that record against this list.
    pub fn protocol_statements(&self) -> impl Iterator<Item = &PreparedStatement> {
        self.prepared.iter().filter(|statement| !statement.from_sql)
    }

    /// The statements made with SQL `PREPARE`.
    pub fn sql_statements(&self) -> impl Iterator<Item = &PreparedStatement> {
        self.prepared.iter().filter(|statement| statement.from_sql)
    }

    /// What [`super::details_query`] must be asked for this session, if anything: the
    /// parameter type OIDs to name (those of every statement that needs names, in
    /// order) and whether to count temporary objects.
    pub fn details_wanted(&self) -> Option<(Vec<u32>, bool)> {
        let oids: Vec<u32> =
            self.prepared.iter().filter(|s| s.wants_names()).flat_map(|s| s.param_oids.iter().copied()).collect();
        (!oids.is_empty() || self.temp_schema).then_some((oids, self.temp_schema))
    }

    /// Takes the values of every DataRow [`super::details_query`] returned for
    /// [`SessionSnapshot::details_wanted`], in order: the type names go to the statements
    /// that need them, the count to [`Unmovable::temp_objects`].
    pub fn apply_details(&mut self, columns: &[Option<&str>]) -> Result<(), CaptureError> {
        let expected = OVERRIDE_COLUMNS + DETAILS_COLUMNS;
        let [names, temp] = columns.get(OVERRIDE_COLUMNS..).unwrap_or_default() else {
            return Err(CaptureError::ColumnCount { expected, found: columns.len() });
        };
        let mut names = json::<Vec<String>>(*names, "type_names")?.into_iter();
        let wanted: usize = self.prepared.iter().filter(|s| s.wants_names()).map(|s| s.param_oids.len()).sum();
        if names.len() != wanted {
            return Err(CaptureError::Invalid {
                column: "type_names",
                value: format!("{} names", names.len()),
                expected: "one name per type asked for",
            });
        }
        for statement in self.prepared.iter_mut().filter(|s| s.wants_names()) {
            statement.param_types = names.by_ref().take(statement.param_oids.len()).collect();
        }
        self.unmovable.temp_objects = number(*temp, "temp_objects")?;
        Ok(())
    }
}

/// Parses the values of every DataRow the capture query returned, concatenated in
/// the order they arrived ([`CAPTURE_COLUMNS`] values in all), from a connection whose
/// settings before its client ran anything were `baseline`. When
/// [`SessionSnapshot::details_wanted`] says so, the snapshot is complete only after
/// [`SessionSnapshot::apply_details`].
pub fn parse_capture_row(columns: &[Option<&str>], baseline: &Baseline) -> Result<SessionSnapshot, CaptureError> {
    let count_error = || CaptureError::ColumnCount { expected: CAPTURE_COLUMNS, found: columns.len() };
    let (shown, state) = columns.split_at_checked(OVERRIDE_COLUMNS).ok_or_else(count_error)?;
    let [pid, session_authorization, role, settings, custom, prepared, listen, temp_schema, cursors, xid] = state
    else {
        return Err(count_error());
    };
    let overridden = OVERRIDDEN_SETTINGS
        .iter()
        .zip(shown)
        .map(|((name, _), value)| Ok(Setting { name: name.to_string(), value: text(*value, name)?.to_string() }))
        .collect::<Result<Vec<_>, CaptureError>>()?;
    let settings = changed_settings(json(*settings, "settings")?, baseline)?;
    let custom: Vec<(String, Option<String>)> = json(*custom, "custom_settings")?;
    let role = text(*role, "role")?;
    Ok(SessionSnapshot {
        pid: number(*pid, "pid")?,
        session_authorization: text(*session_authorization, "session_authorization")?.to_string(),
        role: (role != "none").then(|| role.to_string()),
        overridden,
        settings,
        custom_settings: custom
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| Setting { name, value }))
            .collect(),
        prepared: json(*prepared, "prepared")?,
        listen: json(*listen, "listen")?,
        temp_schema: number::<u32>(*temp_schema, "temp_schema")? != 0,
        unmovable: Unmovable {
            temp_objects: 0,
            advisory_locks: 0,
            holdable_cursors: number(*cursors, "holdable_cursors")?,
            holds_xid: boolean(*xid, "holds_xid")?,
        },
    })
}

/// The settings whose current value differs from the baseline, given the current values
/// of [`Baseline::compared`] in order.
fn changed_settings(current: Vec<String>, baseline: &Baseline) -> Result<Vec<Setting>, CaptureError> {
    let compared = baseline.compared();
    if current.len() != compared.len() {
        return Err(CaptureError::Invalid {
            column: "settings",
            value: format!("{} values", current.len()),
            expected: "one value per compared setting of the baseline",
        });
    }
    Ok(compared
        .iter()
        .zip(current)
        .filter(|((_, before), now)| before != now)
        .map(|((name, _), value)| Setting { name: name.clone(), value })
        .collect())
}

fn text<'a>(value: Option<&'a str>, column: &'static str) -> Result<&'a str, CaptureError> {
    value.ok_or(CaptureError::Null { column })
}

fn number<T: std::str::FromStr>(value: Option<&str>, column: &'static str) -> Result<T, CaptureError> {
    let value = text(value, column)?;
    value.parse().map_err(|_| CaptureError::Invalid { column, value: value.to_string(), expected: "a number" })
}

fn boolean(value: Option<&str>, column: &'static str) -> Result<bool, CaptureError> {
    match text(value, column)? {
        "t" => Ok(true),
        "f" => Ok(false),
        other => Err(CaptureError::Invalid { column, value: other.to_string(), expected: "t or f" }),
    }
}

fn json<T: DeserializeOwned>(value: Option<&str>, column: &'static str) -> Result<T, CaptureError> {
    serde_json::from_str(text(value, column)?).map_err(|error| CaptureError::Json { column, error })
}
