//! The capture query: one simple Query that reads a session's movable state and
//! what keeps it from moving, in one round trip, and leaves no statement behind.

use super::quote::{is_custom_setting_name, quote_literal};

/// Settings the capture overrides for itself with `SET LOCAL` (name, value):
/// `statement_timeout` so that a tiny client timeout cannot cancel it, `jit` because
/// the planner's estimates for these catalog functions cross `jit_above_cost` and JIT
/// compiling would cost 50 to 100 ms. `jit` comes first: it is read with `SHOW` and set
/// with `SET LOCAL`, utility statements that are never planned, so that a client's
/// `jit_above_cost = 0` cannot JIT-compile the statement reading the others, which reads
/// the client's values before it overrides them (`current_setting` is evaluated before
/// `set_config`: a target list is computed left to right). A move replays the client's
/// values where the new connection's differ.
pub const OVERRIDDEN_SETTINGS: &[(&str, &str)] = &[("jit", "off"), ("statement_timeout", "0")];

/// Settings never read into a baseline or a capture's diff: the transaction ones
/// belong to one transaction; identity travels as `SET SESSION AUTHORIZATION`/`SET ROLE`;
/// `lc_messages` fails on replay; the last three only a superuser (or
/// `pg_read_all_settings`) may read, and a session that did `SET ROLE` could not. The
/// [`OVERRIDDEN_SETTINGS`] are in the baseline but not compared (the capture's first row
/// has the client's values).
pub const EXCLUDED_SETTINGS: &[&str] = &[
    "transaction_isolation",
    "transaction_read_only",
    "transaction_deferrable",
    "is_superuser",
    "server_version",
    "session_authorization",
    "role",
    "lc_messages",
    "session_preload_libraries",
    "dynamic_library_path",
    "extension_destdir",
];

/// The only setting contexts a session can change with `SET`; the baseline holds these.
pub const SETTABLE_CONTEXTS: &[&str] = &["user", "superuser"];

/// The client's values of the [`OVERRIDDEN_SETTINGS`], in that order: the first values of
/// the capture's answer.
pub const SHOWN_VALUES: usize = OVERRIDDEN_SETTINGS.len();
/// Values of the capture's answer before the state row: the [`SHOWN_VALUES`], then the
/// values that the overrides after `jit` set (of no use: `set_config` returns them).
pub const OVERRIDE_COLUMNS: usize = 2 * OVERRIDDEN_SETTINGS.len() - 1;
/// Columns of the capture's last DataRow, the state: pid, session_authorization,
/// role, settings, custom_settings, prepared, listen, temp_schema, holdable_cursors,
/// holds_xid. What only some sessions have is read by [`details_query`], so that the
/// capture of the others plans and runs no catalog join: the names of parameter types
/// and the objects in a temporary schema. Session advisory locks are not among them:
/// reading `pg_locks` scans the whole lock table under its partition locks, too dear
/// for every session of a switch; [`ADVISORY_HOLDERS_QUERY`] asks once for all of them.
pub const STATE_COLUMNS: usize = 10;

/// The backend pids that hold advisory locks and how many, one row each (pid, count): run
/// once, on any connection to the server, when every session is parked (a parked
/// session's locks are all session-level, since it is outside any transaction, and
/// cannot change).
pub const ADVISORY_HOLDERS_QUERY: &str = "SELECT k.pid, pg_catalog.count(*) FROM pg_catalog.pg_locks AS k \
WHERE k.locktype OPERATOR(pg_catalog.=) 'advisory' AND k.pid IS NOT NULL GROUP BY k.pid";
/// All values [`super::parse_capture_row`] takes: those of both DataRows, in order.
pub const CAPTURE_COLUMNS: usize = OVERRIDE_COLUMNS + STATE_COLUMNS;
/// Columns of the last DataRow of [`details_query`]: type_names, temp_objects.
pub const DETAILS_COLUMNS: usize = 2;

/// The query that reads a fresh connection's settings, before its client runs
/// anything: one row, one column, a JSON array of `[name, value]` pairs sorted by
/// name, for [`super::Baseline::parse`].
pub fn baseline_query() -> String {
    format!(
        "SELECT pg_catalog.json_agg(pg_catalog.json_build_array(s.name, pg_catalog.current_setting(s.name)) \
ORDER BY s.name)
  FROM pg_catalog.pg_settings AS s
 WHERE s.context OPERATOR(pg_catalog.=) ANY ({})
   AND s.name OPERATOR(pg_catalog.<>) ALL ({})",
        text_array(SETTABLE_CONTEXTS.iter().copied()),
        text_array(EXCLUDED_SETTINGS.iter().copied())
    )
}

const STATE_HEAD: &str = "SELECT
  pg_catalog.pg_backend_pid() AS pid,
  pg_catalog.current_setting('session_authorization') AS session_authorization,
  pg_catalog.current_setting('role') AS role,
  pg_catalog.array_to_json(ARRAY[";

const STATE_CUSTOM: &str = "]::pg_catalog.text[]) AS settings,
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(c.name, pg_catalog.current_setting(c.name, true)) \
ORDER BY c.ord), '[]')
     FROM pg_catalog.unnest($1) WITH ORDINALITY AS c(name, ord)) AS custom_settings,
";

const STATE_TAIL: &str = "  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
            'name', p.name, 'statement', p.statement, 'from_sql', p.from_sql,
            'param_oids', pg_catalog.to_json(p.parameter_types::pg_catalog.oid[]::pg_catalog.int8[]))
          ORDER BY p.name), '[]')
     FROM pg_catalog.pg_prepared_statements AS p
  ) AS prepared,
  (SELECT COALESCE(pg_catalog.json_agg(l.channel ORDER BY l.channel), '[]')
     FROM pg_catalog.pg_listening_channels() AS l(channel)) AS listen,
  pg_catalog.pg_my_temp_schema()::pg_catalog.int8 AS temp_schema,
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_cursors AS u WHERE u.is_holdable) AS holdable_cursors,
  pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL AS holds_xid";

/// The names of the types `$1` (an `oid[]`) holds, as a JSON array in that order, each
/// schema-qualified and quoted where needed (`pg_catalog.int4`, `"My Schema"."Mood"[]`);
/// an OID the server does not know stays a number.
const TYPE_NAMES: &str = "(SELECT COALESCE(pg_catalog.json_agg(COALESCE(
           (SELECT pg_catalog.format(CASE WHEN e.oid IS NULL THEN '%I.%I' ELSE '%I.%I[]' END,
                                     n.nspname, COALESCE(e.typname, t.typname))
              FROM pg_catalog.pg_type AS t
              LEFT JOIN pg_catalog.pg_type AS e ON e.oid OPERATOR(pg_catalog.=) t.typelem
                    AND e.typarray OPERATOR(pg_catalog.=) t.oid
              JOIN pg_catalog.pg_namespace AS n
                ON n.oid OPERATOR(pg_catalog.=) COALESCE(e.typnamespace, t.typnamespace)
             WHERE t.oid OPERATOR(pg_catalog.=) a.typ),
           a.typ::pg_catalog.text) ORDER BY a.ord), '[]')
     FROM pg_catalog.unnest($1::pg_catalog.oid[]) WITH ORDINALITY AS a(typ, ord)) AS type_names";

/// Tables, views, sequences, composite types, functions and enum, domain and range types
/// in the session's temporary schema.
const TEMP_OBJECTS: &str = "CASE WHEN pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.=) 0 THEN 0 \
ELSE (SELECT pg_catalog.count(*) FROM (
       SELECT FROM pg_catalog.pg_class AS r
        WHERE r.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
          AND r.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,S,f,c}')
       UNION ALL
       SELECT FROM pg_catalog.pg_proc AS f
        WHERE f.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
       UNION ALL
       SELECT FROM pg_catalog.pg_type AS y
        WHERE y.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
          AND y.typtype OPERATOR(pg_catalog.=) ANY ('{e,d,r}')) AS o) END AS temp_objects";

/// The SELECT that reads the state: `settings` is the current value of every
/// [`super::Baseline::compared`] setting, in that order, as a JSON array, one function call
/// each in a single array expression (cheaper than comparing row by row on the server: the
/// proxy compares); `$1`, a `text[]` the caller puts in its place, names further settings
/// to read whatever their value.
pub(super) fn state_select(compared: &[(String, String)]) -> String {
    let mut sql = String::with_capacity(4096 + 40 * compared.len());
    sql.push_str(STATE_HEAD);
    let calls: Vec<String> =
        compared.iter().map(|(name, _)| format!("pg_catalog.current_setting({})", quote_literal(name))).collect();
    sql.push_str(&calls.join(", "));
    sql.push_str(STATE_CUSTOM);
    sql.push_str(STATE_TAIL);
    sql
}

/// The SQL text to send, as one simple Query, to a session's server while its
/// client is parked at a transaction boundary (ReadyForQuery said `I`).
///
/// It is five statements in the implicit transaction of one Query message:
///
/// 1. `SET TRANSACTION ISOLATION LEVEL READ COMMITTED`: no wait for a safe snapshot
///    under a client's serializable, read-only, deferrable defaults.
/// 2. `SHOW jit`: **one DataRow**, one column, the client's value.
/// 3. `SET LOCAL jit = off`.
/// 4. `SELECT current_setting('statement_timeout'), set_config('statement_timeout', '0',
///    true)`: **one DataRow**, the client's values of the other [`OVERRIDDEN_SETTINGS`],
///    then the overrides (`set_config(..., true)` is `SET LOCAL`).
/// 5. The state SELECT, with `names` in it: **the last DataRow**, [`STATE_COLUMNS`] text
///    columns (pid, session_authorization, role, settings JSON, custom_settings JSON,
///    prepared JSON, listen JSON, temp_schema, holdable_cursors, holds_xid). It is sent
///    in full each time rather than prepared once per connection, which would cost a
///    planning less but leave a statement of the proxy's own in the client's session
///    (`pg_prepared_statements`).
///
/// Collect the values of every DataRow in order ([`CAPTURE_COLUMNS`] in all) and
/// hand them to [`super::parse_capture_row`]. None of the answer is for the client.
///
/// No explicit BEGIN/COMMIT: if any statement fails, the server rolls the implicit
/// transaction back and the session is again idle (`I`), with nothing to clean up; and a capture
/// sent by mistake inside a client's transaction cannot commit it (it would run
/// inside it, and `holds_xid` says so when that transaction wrote). `SET LOCAL` and
/// `SET TRANSACTION` do hold for the rest of an implicit transaction (PostgreSQL 15,
/// verified). Few statements, since each costs the server a parse and a snapshot: a
/// switch captures every session at once.
///
/// Statements 1 to 4 run under the client's `statement_timeout`; they take
/// microseconds (a timeout of a millisecond can still cancel one: capture again).
/// Every name in the statement is qualified with `pg_catalog` (functions, tables,
/// types and operators), since the client's `search_path` is in force.
///
/// `settings` holds the current values of the baseline's settings;
/// [`super::parse_capture_row`] keeps those that differ from the connection's
/// baseline. `custom_settings` (`[name, value or null]`) are read for
/// `names`: custom settings (`myapp.tenant`) the proxy has seen the client set, which
/// PostgreSQL may not list, and settings the client named in a `SET`, which a move
/// carries even when the value equals this server's default. Names that are neither
/// of the custom shape (see [`super::is_custom_setting_name`]) nor `baseline` names
/// are left out, since reading them could fail; duplicates are read once.
///
/// Side effects: a simple Query drops the client's unnamed prepared statement and
/// unnamed portal (the caller parses the client's unnamed statement again afterwards);
/// the query shows in `pg_stat_statements`, `pg_stat_activity` and the server log
/// like any other. lastval/currval, named statements, cursors, LISTENs and settings
/// are left as they were. Values come back in the session's `client_encoding`.
pub fn capture_query(names: &[String], baseline: &super::Baseline) -> String {
    let mut sql = prelude();
    let (head, tail) = baseline.state_select();
    sql.push_str(head);
    sql.push_str(&text_array(readable_names(names, baseline)));
    sql.push_str(tail);
    sql
}

/// The second question a capture asks, only of a session that needs it (see
/// [`super::SessionSnapshot::details_wanted`]): the names of parameter types of its
/// prepared statements, and the objects in its temporary schema. Like
/// [`capture_query`], one simple Query whose statements before the last are the same
/// four (the overrides' values come back first, [`OVERRIDE_COLUMNS`] of them), then
/// one SELECT returning [`DETAILS_COLUMNS`] values: a JSON array of type names for
/// `type_oids`, in order, and the number of temporary objects (0 unless `temp_schema`).
/// It is sent while the session is still parked, so it sees the state the capture saw.
/// Hand the values to [`super::SessionSnapshot::apply_details`].
pub fn details_query(type_oids: &[u32], temp_schema: bool) -> String {
    let mut sql = prelude();
    let oids: Vec<String> = type_oids.iter().map(u32::to_string).collect();
    let types = TYPE_NAMES.replace("$1", &format!("'{{{}}}'", oids.join(",")));
    let temp = if temp_schema { TEMP_OBJECTS } else { "0 AS temp_objects" };
    sql.push_str(&format!("SELECT {types},\n  {temp}"));
    sql
}

/// The statements before a capture's last one: read committed, then the client's values
/// of the [`OVERRIDDEN_SETTINGS`] read and overridden (see [`capture_query`]).
fn prelude() -> String {
    let mut sql = String::with_capacity(512);
    sql.push_str("SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n");
    let ((jit, jit_value), others) = OVERRIDDEN_SETTINGS.split_first().expect("jit is overridden");
    sql.push_str(&format!("SHOW {jit};\nSET LOCAL {jit} = {jit_value};\nSELECT "));
    let shown = others.iter().map(|(name, _)| format!("pg_catalog.current_setting('{name}')"));
    let set = others.iter().map(|(name, value)| format!("pg_catalog.set_config('{name}', '{value}', true)"));
    sql.push_str(&shown.chain(set).collect::<Vec<_>>().join(", "));
    sql.push_str(";\n");
    sql
}

/// The names worth reading: of the custom shape or in the baseline (but not one the
/// capture overrides, whose `SHOW` has it), each once (names are case-insensitive).
fn readable_names<'a>(names: &'a [String], baseline: &'a super::Baseline) -> impl Iterator<Item = &'a str> {
    names.iter().enumerate().filter_map(move |(i, name)| {
        let first = !names[..i].iter().any(|earlier| earlier.eq_ignore_ascii_case(name));
        let overridden = OVERRIDDEN_SETTINGS.iter().any(|(o, _)| name.eq_ignore_ascii_case(o));
        let readable = is_custom_setting_name(name) || baseline.value(name).is_some();
        (first && readable && !overridden).then_some(name.as_str())
    })
}

/// `ARRAY['a', 'b']::pg_catalog.text[]` from quoted literals.
fn text_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let literals: Vec<String> = items.map(quote_literal).collect();
    format!("ARRAY[{}]::pg_catalog.text[]", literals.join(", "))
}
