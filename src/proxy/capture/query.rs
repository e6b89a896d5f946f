//! The capture query: one simple Query that reads a session's movable state and
//! what keeps it from moving, in one round trip.

use super::quote::{is_custom_setting_name, quote_literal};

/// Settings the capture overrides for itself with `SET LOCAL` (name, value):
/// `statement_timeout` so that a tiny client timeout cannot cancel it, `jit` because
/// the planner's estimates for these catalog functions cross `jit_above_cost` and JIT
/// compiling would cost 50 to 100 ms, `plan_cache_mode` so that the statement is
/// planned once per connection, not on every capture. `SHOW` reads the client's values
/// before the override (one DataRow each); a move replays them where the new
/// connection's differ.
pub const OVERRIDDEN_SETTINGS: &[(&str, &str)] =
    &[("jit", "off"), ("plan_cache_mode", "force_generic_plan"), ("statement_timeout", "0")];

/// Settings never read into a baseline or a capture's diff: the transaction ones
/// belong to one transaction; identity travels as `SET SESSION AUTHORIZATION`/`SET ROLE`;
/// `lc_messages` fails on replay; the last three only a superuser (or
/// `pg_read_all_settings`) may read, and a session that did `SET ROLE` could not. The
/// [`OVERRIDDEN_SETTINGS`] are in the baseline but not in the diff (their `SHOW` rows
/// have the client's values).
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

/// Name of the prepared statement that reads a session's state, made once per server
/// connection (see [`super::Baseline::prepare_statement`]) and left out of every capture.
pub const CAPTURE_STATEMENT: &str = "pgflip_capture";

/// Values of the capture's `SHOW` DataRows (one column each): the client's values
/// of the [`OVERRIDDEN_SETTINGS`], in that order.
pub const SHOWN_VALUES: usize = OVERRIDDEN_SETTINGS.len();
/// Columns of the capture's last DataRow, the state: pid, session_authorization,
/// role, settings, custom_settings, prepared, listen, temp_objects, holdable_cursors,
/// holds_xid. Session advisory locks are not among them: reading `pg_locks` scans the
/// whole lock table under its partition locks, too dear for every session of a switch;
/// [`ADVISORY_HOLDERS_QUERY`] asks once for all of them.
pub const STATE_COLUMNS: usize = 10;

/// The backend pids that hold advisory locks and how many, one row each (pid, count): run
/// once, on any connection to the server, when every session is parked (a parked
/// session's locks are all session-level, since it is outside any transaction, and
/// cannot change).
pub const ADVISORY_HOLDERS_QUERY: &str = "SELECT k.pid, pg_catalog.count(*) FROM pg_catalog.pg_locks AS k \
WHERE k.locktype OPERATOR(pg_catalog.=) 'advisory' AND k.pid IS NOT NULL GROUP BY k.pid";
/// All values [`super::parse_capture_row`] takes: those of every DataRow, in order.
pub const CAPTURE_COLUMNS: usize = SHOWN_VALUES + STATE_COLUMNS;

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
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(b.name, pg_catalog.current_setting(b.name)) \
ORDER BY b.name), '[]')
     FROM ROWS FROM (pg_catalog.unnest(";

const STATE_BASELINE_VALUES: &str = "), pg_catalog.unnest(";

const STATE_CUSTOM: &str = ")) AS b(name, value)
    WHERE NOT pg_catalog.current_setting(b.name) OPERATOR(pg_catalog.=) b.value) AS settings,
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(c.name, pg_catalog.current_setting(c.name, true)) \
ORDER BY c.ord), '[]')
     FROM pg_catalog.unnest($1) WITH ORDINALITY AS c(name, ord)) AS custom_settings,
";

const STATE_TAIL: &str = "  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
            'name', p.name, 'statement', p.statement, 'from_sql', p.from_sql,
            'param_types', CASE WHEN p.from_sql OR EXISTS (
                SELECT FROM pg_catalog.unnest(p.parameter_types) AS u(typ)
                 WHERE u.typ::pg_catalog.oid OPERATOR(pg_catalog.>=) 10000::pg_catalog.oid)
              THEN (SELECT COALESCE(pg_catalog.json_agg(COALESCE(
                               (SELECT pg_catalog.format(CASE WHEN e.oid IS NULL THEN '%I.%I' ELSE '%I.%I[]' END,
                                                         n.nspname, COALESCE(e.typname, t.typname))
                                  FROM pg_catalog.pg_type AS t
                                  LEFT JOIN pg_catalog.pg_type AS e ON e.oid OPERATOR(pg_catalog.=) t.typelem
                                        AND e.typarray OPERATOR(pg_catalog.=) t.oid
                                  JOIN pg_catalog.pg_namespace AS n
                                    ON n.oid OPERATOR(pg_catalog.=) COALESCE(e.typnamespace, t.typnamespace)
                                 WHERE t.oid OPERATOR(pg_catalog.=) a.typ),
                               a.typ::pg_catalog.oid::pg_catalog.text) ORDER BY a.ord), '[]')
                      FROM pg_catalog.unnest(p.parameter_types) WITH ORDINALITY AS a(typ, ord))
              ELSE '[]' END,
            'param_oids', pg_catalog.to_json(p.parameter_types::pg_catalog.oid[]::pg_catalog.int8[]))
          ORDER BY p.name), '[]')
     FROM pg_catalog.pg_prepared_statements AS p
    WHERE p.name OPERATOR(pg_catalog.<>) 'pgflip_capture') AS prepared,
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
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_cursors AS u WHERE u.is_holdable) AS holdable_cursors,
  pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL AS holds_xid";

/// The text of the prepared statement that reads the state (after `PREPARE name(text[]) AS`):
/// settings are compared with `baseline` (`[name, value]` pairs, the connection's values
/// before its client ran anything); `$1` names further settings to read whatever
/// their value.
pub(super) fn state_select(baseline: &[(String, String)]) -> String {
    let mut sql = String::with_capacity(4096 + 40 * baseline.len());
    sql.push_str(STATE_HEAD);
    let diffed = baseline.iter().filter(|(name, _)| !OVERRIDDEN_SETTINGS.iter().any(|(o, _)| o == name));
    let (names, values): (Vec<&str>, Vec<&str>) = diffed.map(|(n, v)| (n.as_str(), v.as_str())).unzip();
    sql.push_str(&text_array(names.into_iter()));
    sql.push_str(STATE_BASELINE_VALUES);
    sql.push_str(&text_array(values.into_iter()));
    sql.push_str(STATE_CUSTOM);
    sql.push_str(STATE_TAIL);
    sql
}

/// The SQL text to send, as one simple Query, to a session's server while its
/// client is parked at a transaction boundary (ReadyForQuery said `I`).
///
/// It is eight statements in the implicit transaction of one Query message (nine
/// when `prepare` is given: the `PREPARE` of the [`CAPTURE_STATEMENT`] goes just
/// before its `EXECUTE`, for a connection whose statement is missing):
///
/// 1. `SET TRANSACTION ISOLATION LEVEL READ COMMITTED`: no wait for a safe snapshot
///    under a client's serializable, read-only, deferrable defaults.
/// 2. to 4. `SHOW jit`, `SHOW plan_cache_mode`, `SHOW statement_timeout`: **one
///    DataRow each**, one column.
/// 5. to 7. `SET LOCAL jit = off`, `SET LOCAL plan_cache_mode = force_generic_plan`,
///    `SET LOCAL statement_timeout = 0` (see [`OVERRIDDEN_SETTINGS`]).
/// 8. `EXECUTE pgflip_capture(names)`: **the last DataRow**, [`STATE_COLUMNS`] text
///    columns (pid, session_authorization, role, settings JSON, custom_settings JSON,
///    prepared JSON, listen JSON, temp_objects, holdable_cursors, holds_xid).
///
/// Collect the values of every DataRow in order ([`CAPTURE_COLUMNS`] in all) and
/// hand them to [`super::parse_capture_row`]. None of the answer is for the client.
///
/// No explicit BEGIN/COMMIT: if any statement fails, the server rolls the implicit
/// transaction back and the session is again idle (`I`), with nothing to clean up
/// (a `PREPARE` stays: prepared statements are not transactional); and a capture
/// sent by mistake inside a client's transaction cannot commit it (it would run
/// inside it, and `holds_xid` says so when that transaction wrote). `SET LOCAL` and
/// `SET TRANSACTION` do hold for the rest of an implicit transaction (PostgreSQL 15,
/// verified).
///
/// Statements 1 to 7 run under the client's `statement_timeout` and `jit`; they are
/// utility commands (never planned, never JIT-compiled) and take microseconds.
/// Every name in the statement is qualified with `pg_catalog` (functions, tables,
/// types and operators), since the client's `search_path` is in force.
///
/// `settings` (`[name, value]` pairs) are the settings whose value differs from the
/// connection's baseline. `custom_settings` (`[name, value or null]`) are read for
/// `names`: custom settings (`myapp.tenant`) the proxy has seen the client set, which
/// PostgreSQL may not list, and settings the client named in a `SET`, which a move
/// carries even when the value equals this server's default. Names that are neither
/// of the custom shape (see [`super::is_custom_setting_name`]) nor `baseline` names
/// are left out, since reading them could fail; duplicates are read once.
///
/// Side effects: a simple Query drops the client's unnamed prepared statement and
/// unnamed portal (send it only when the client has none pending, or re-Parse it);
/// the query shows in `pg_stat_statements`, `pg_stat_activity` and the server log
/// like any other. lastval/currval, named statements, cursors, LISTENs and settings
/// are left as they were. Values come back in the session's `client_encoding`.
pub fn capture_query(names: &[String], baseline: &super::Baseline, prepare: bool) -> String {
    let mut sql = String::with_capacity(512);
    sql.push_str("SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\n");
    for (name, _) in OVERRIDDEN_SETTINGS {
        sql.push_str(&format!("SHOW {name};\n"));
    }
    for (name, value) in OVERRIDDEN_SETTINGS {
        sql.push_str(&format!("SET LOCAL {name} = {value};\n"));
    }
    if prepare {
        sql.push_str(baseline.prepare_statement());
        sql.push_str(";\n");
    }
    let names = readable_names(names, baseline);
    sql.push_str(&format!("EXECUTE {CAPTURE_STATEMENT}({})", text_array(names)));
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
