//! The capture query: one simple Query that reads a session's movable state and
//! what keeps it from moving, in one round trip.

use super::quote::{is_custom_setting_name, quote_literal};

/// Settings the capture overrides for itself with `SET LOCAL` (name, value):
/// `statement_timeout` so that a tiny client timeout cannot cancel it, `jit` because
/// the planner's estimates for these catalog functions cross `jit_above_cost` and JIT
/// compiling would cost 50 to 100 ms. `SHOW` reads the client's values before the
/// override (one DataRow each); whether the client changed them cannot be seen, so
/// they are always replayed.
pub const OVERRIDDEN_SETTINGS: &[(&str, &str)] = &[("jit", "off"), ("statement_timeout", "0")];

/// Settings never taken from `pg_settings` even when they show source `session`:
/// the transaction ones belong to one transaction; identity travels as
/// `SET SESSION AUTHORIZATION`/`SET ROLE`; the rest fail on replay. The
/// [`OVERRIDDEN_SETTINGS`] are left out too (their `SHOW` rows have them).
pub const EXCLUDED_SETTINGS: &[&str] = &[
    "transaction_isolation",
    "transaction_read_only",
    "transaction_deferrable",
    "is_superuser",
    "server_version",
    "session_authorization",
    "role",
    "lc_messages",
];

/// Setting contexts that no session can change with `SET`.
pub const EXCLUDED_CONTEXTS: &[&str] = &["internal", "postmaster", "backend", "superuser-backend"];

/// Values of the capture's `SHOW` DataRows (one column each): the client's values
/// of the [`OVERRIDDEN_SETTINGS`], in that order.
pub const SHOWN_VALUES: usize = OVERRIDDEN_SETTINGS.len();
/// Columns of the capture's last DataRow, the state: pid, session_authorization,
/// role, settings, custom_settings, prepared, listen, temp_objects, advisory_locks,
/// holdable_cursors, holds_xid.
pub const STATE_COLUMNS: usize = 11;
/// All values [`super::parse_capture_row`] takes: those of every DataRow, in order.
pub const CAPTURE_COLUMNS: usize = SHOWN_VALUES + STATE_COLUMNS;

const STATE_HEAD: &str = "SELECT
  pg_catalog.pg_backend_pid() AS pid,
  pg_catalog.current_setting('session_authorization') AS session_authorization,
  pg_catalog.current_setting('role') AS role,
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(s.name, pg_catalog.current_setting(s.name), \
s.source) ORDER BY s.name), '[]')
     FROM pg_catalog.pg_settings AS s
    WHERE s.source OPERATOR(pg_catalog.=) 'session'
      AND s.context OPERATOR(pg_catalog.<>) ALL (";

const STATE_SETTINGS_NAMES: &str = ")
      AND s.name OPERATOR(pg_catalog.<>) ALL (";

const STATE_CUSTOM: &str = ")) AS settings,
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(c.name, pg_catalog.current_setting(c.name, true)) \
ORDER BY c.ord), '[]')
     FROM pg_catalog.unnest(";

const STATE_TAIL: &str = ") WITH ORDINALITY AS c(name, ord)) AS custom_settings,
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
            'name', p.name, 'statement', p.statement, 'from_sql', p.from_sql,
            'param_types', (SELECT COALESCE(pg_catalog.json_agg(COALESCE(
                               (SELECT pg_catalog.format(CASE WHEN e.oid IS NULL THEN '%I.%I' ELSE '%I.%I[]' END,
                                                         n.nspname, COALESCE(e.typname, t.typname))
                                  FROM pg_catalog.pg_type AS t
                                  LEFT JOIN pg_catalog.pg_type AS e ON e.oid OPERATOR(pg_catalog.=) t.typelem
                                        AND e.typarray OPERATOR(pg_catalog.=) t.oid
                                  JOIN pg_catalog.pg_namespace AS n
                                    ON n.oid OPERATOR(pg_catalog.=) COALESCE(e.typnamespace, t.typnamespace)
                                 WHERE t.oid OPERATOR(pg_catalog.=) a.typ),
                               a.typ::pg_catalog.oid::pg_catalog.text) ORDER BY a.ord), '[]')
                              FROM pg_catalog.unnest(p.parameter_types) WITH ORDINALITY AS a(typ, ord)))
          ORDER BY p.name), '[]')
     FROM pg_catalog.pg_prepared_statements AS p) AS prepared,
  (SELECT COALESCE(pg_catalog.json_agg(l.channel ORDER BY l.channel), '[]')
     FROM pg_catalog.pg_listening_channels() AS l(channel)) AS listen,
  CASE WHEN pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.=) 0 THEN 0 ELSE (SELECT pg_catalog.count(*) FROM (
       SELECT FROM pg_catalog.pg_class AS r
        WHERE r.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
          AND r.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,S,f,c}')
       UNION ALL
       SELECT FROM pg_catalog.pg_proc AS f
        WHERE f.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
       UNION ALL
       SELECT FROM pg_catalog.pg_type AS y
        WHERE y.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
          AND y.typtype OPERATOR(pg_catalog.=) ANY ('{e,d,r}')) AS o) END AS temp_objects,
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks AS k
    WHERE k.locktype OPERATOR(pg_catalog.=) 'advisory'
      AND k.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()) AS advisory_locks,
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_cursors AS u WHERE u.is_holdable) AS holdable_cursors,
  pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL AS holds_xid";

/// The SQL text to send, as one simple Query, to a session's server while its
/// client is parked at a transaction boundary (ReadyForQuery said `I`).
///
/// It is six statements in the implicit transaction of one Query message:
///
/// 1. `SET TRANSACTION ISOLATION LEVEL READ COMMITTED`: no wait for a safe snapshot
///    under a client's serializable, read-only, deferrable defaults.
/// 2. and 3. `SHOW jit`, `SHOW statement_timeout`: **one DataRow each**, one column.
/// 4. and 5. `SET LOCAL jit = off`, `SET LOCAL statement_timeout = 0`.
/// 6. `SELECT` of the state: **the last DataRow**, [`STATE_COLUMNS`] text columns
///    (pid, session_authorization, role, settings JSON, custom_settings JSON,
///    prepared JSON, listen JSON, temp_objects, advisory_locks, holdable_cursors,
///    holds_xid).
///
/// Collect the values of every DataRow in order ([`CAPTURE_COLUMNS`] in all) and
/// hand them to [`super::parse_capture_row`]. The reply also carries
/// RowDescriptions, CommandComplete `SET`, `SHOW`, `SHOW`, `SET`, `SET`, `SELECT 1`
/// and ReadyForQuery `I`; none of it is for the client.
///
/// No explicit BEGIN/COMMIT: if any statement fails, the server rolls the implicit
/// transaction back and the session is again idle (`I`), with nothing to clean up;
/// and a capture sent by mistake inside a client's transaction cannot commit it
/// (it would run inside it, and `holds_xid` says so when that transaction wrote).
/// `SET LOCAL` and `SET TRANSACTION` do hold for the rest of an implicit transaction
/// (PostgreSQL 15, verified).
///
/// Statements 1 to 5 run under the client's `statement_timeout` and `jit`; they are
/// utility commands (never planned, never JIT-compiled) and take microseconds.
/// Every name in the SELECT is qualified with `pg_catalog` (functions, tables,
/// types and operators), since the client's `search_path` is in force.
///
/// Side effects: a simple Query drops the client's unnamed prepared statement and
/// unnamed portal (send it only when the client has none pending, or re-Parse it);
/// the query shows in `pg_stat_statements`, `pg_stat_activity` and the server log
/// like any other. lastval/currval, named statements, cursors, LISTENs and settings
/// are left as they were. Values come back in the session's `client_encoding`.
///
/// `custom_settings` are names of custom settings (`myapp.tenant`) that the proxy has
/// seen the client set; they are invisible to `pg_settings`. Names that are not of
/// the custom shape (see [`super::is_custom_setting_name`]) are left out, since no
/// such name can hold a value; duplicates are read once.
pub fn capture_query(custom_settings: &[String]) -> String {
    let mut sql = String::with_capacity(4096);
    sql.push_str("SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n");
    for (name, _) in OVERRIDDEN_SETTINGS {
        sql.push_str(&format!("SHOW {name};\n"));
    }
    for (name, value) in OVERRIDDEN_SETTINGS {
        sql.push_str(&format!("SET LOCAL {name} = {value};\n"));
    }
    sql.push_str(STATE_HEAD);
    sql.push_str(&text_array(EXCLUDED_CONTEXTS.iter().copied()));
    sql.push_str(STATE_SETTINGS_NAMES);
    sql.push_str(&text_array(
        EXCLUDED_SETTINGS.iter().chain(OVERRIDDEN_SETTINGS.iter().map(|(name, _)| name)).copied(),
    ));
    sql.push_str(STATE_CUSTOM);
    sql.push_str(&text_array(custom_names(custom_settings)));
    sql.push_str(STATE_TAIL);
    sql
}

/// The custom names worth reading: of the custom shape, each once (setting names
/// are case-insensitive).
fn custom_names(names: &[String]) -> impl Iterator<Item = &str> {
    names.iter().enumerate().filter_map(move |(i, name)| {
        let first = !names[..i].iter().any(|earlier| earlier.eq_ignore_ascii_case(name));
        (first && is_custom_setting_name(name)).then_some(name.as_str())
    })
}

/// `ARRAY['a', 'b']::pg_catalog.text[]` from quoted literals.
fn text_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let literals: Vec<String> = items.map(quote_literal).collect();
    format!("ARRAY[{}]::pg_catalog.text[]", literals.join(", "))
}
