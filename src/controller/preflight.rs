//! Preflight of `pgflip cutover`: read-only checks on blue (the serving server, source of the
//! logical replication) and green (the target) that run before anything is changed.
//!
//! Each check is one SQL query; its verdicts are [`Finding`]s. A [`Severity::Blocker`] means
//! the cutover must not start. Both servers publish and subscribe in turn (blue forward, green
//! backward for a lossless rollback), so the replication settings are judged on both.

mod client_tools;
mod report;
mod settings;

use client_tools::judge_client_tools;
pub use client_tools::{ClientTools, ProgramVersion};
pub use report::{Finding, Report, Severity};
use settings::{judge_settings, judge_versions, ServerSettings, ServerVersion};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error};

/// What the plan says, for the checks that the servers alone cannot answer.
#[derive(Debug, Clone, Default)]
pub struct PreflightOptions {
    /// Roles the application logs in as; the cutover fences them on blue.
    pub app_roles: Vec<String>,
    /// Tables without a primary key that may get `REPLICA IDENTITY FULL`, as `schema.table`
    /// with unquoted names (`public.events`).
    pub allow_replica_identity_full: Vec<String>,
    /// The application's database: blue's connection must be to it; green may lack it.
    pub database: String,
    /// The pg_dump and pg_restore the controller will run; `None`: not judged.
    pub client_tools: Option<ClientTools>,
}

/// Runs every check. Each client must be idle (not inside a transaction): the checks run in
/// a `READ ONLY` transaction on each, which is rolled back at the end, also after an error.
/// Blue's client must be connected to `options.database`; green's to any database.
pub async fn run(blue: &Client, green: &Client, options: &PreflightOptions) -> Result<Report, Error> {
    let outcome = match begin_read_only(blue).await.and(begin_read_only(green).await) {
        Ok(()) => run_checks(blue, green, options).await,
        Err(error) => Err(error),
    };
    let blue_end = blue.batch_execute("ROLLBACK").await;
    let green_end = green.batch_execute("ROLLBACK").await;
    let report = outcome?;
    blue_end?;
    green_end?;
    Ok(report)
}

/// The server enforces that the checks write nothing; a fixed search_path makes the
/// operators in the queries pg_catalog's; lock_timeout keeps a size query from hanging.
async fn begin_read_only(client: &Client) -> Result<(), Error> {
    client
        .batch_execute("BEGIN READ ONLY; SET LOCAL search_path = pg_catalog, pg_temp; SET LOCAL lock_timeout = '10s'")
        .await
}

async fn run_checks(blue: &Client, green: &Client, options: &PreflightOptions) -> Result<Report, Error> {
    let mut report = Report::default();
    let blue_version = ServerVersion::read(blue).await?;
    let green_version = ServerVersion::read(green).await?;
    if !judge_versions(&mut report, &blue_version, &green_version) {
        // Outside the supported range the catalogs and replication differ: stop here.
        return Ok(report);
    }
    if let Some(tools) = &options.client_tools {
        judge_client_tools(&mut report, tools, blue_version.major(), green_version.major());
    }
    extensions(&mut report, blue, green).await?;
    judge_settings(&mut report, "blue", &ServerSettings::read(blue).await?);
    judge_settings(&mut report, "green", &ServerSettings::read(green).await?);
    database_size(&mut report, blue, &options.database).await?;
    green_database(&mut report, green, &options.database).await?;
    replica_identity(&mut report, blue, &options.allow_replica_identity_full).await?;
    large_objects(&mut report, blue).await?;
    writer_roles(&mut report, blue, &options.app_roles).await?;
    for list in LIST_CHECKS {
        let items = names(blue, list.sql, &[]).await?;
        report.add_list(list.severity, list.check, list.message, items);
    }
    Ok(report)
}

/// Blue's extensions (for the record), and those green's server cannot install.
async fn extensions(report: &mut Report, blue: &Client, green: &Client) -> Result<(), Error> {
    let on_blue = names(
        blue,
        "SELECT e.extname::text || ' ' || e.extversion FROM pg_catalog.pg_extension e \
          WHERE e.extname <> 'plpgsql' ORDER BY 1",
        &[],
    )
    .await?;
    report.add_list(Severity::Info, "extensions", "blue's extensions", on_blue.clone());
    let available = names(green, "SELECT name::text FROM pg_catalog.pg_available_extensions", &[]).await?;
    let missing: Vec<String> = on_blue
        .iter()
        .filter_map(|e| e.split(' ').next())
        .filter(|name| !available.iter().any(|a| a == name))
        .map(str::to_owned)
        .collect();
    report.add_list(
        Severity::Blocker,
        "extensions",
        "green's server cannot install extensions blue has (they are not in its pg_available_extensions): install \
         them on green's server first",
        missing,
    );
    Ok(())
}

/// Runs a query whose rows have one text column.
async fn names(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<String>, Error> {
    client.query(sql, params).await?.iter().map(|row| row.try_get(0)).collect()
}

async fn database_size(report: &mut Report, blue: &Client, database: &str) -> Result<(), Error> {
    let sql = "SELECT d.name, pg_catalog.pg_database_size(d.name), \
                      pg_catalog.pg_size_pretty(pg_catalog.pg_database_size(d.name)) \
                 FROM (SELECT pg_catalog.current_database()::pg_catalog.text AS name) d";
    let row = blue.query_one(sql, &[]).await?;
    let (current, bytes, pretty): (String, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    report.fact("database_size_bytes", bytes);
    if current != database {
        let message = format!("blue's connection is to database {current}, but the plan names {database}");
        report.add(Severity::Blocker, "database", message, vec![]);
    }
    report.add(Severity::Info, "database_size", format!("database {current} is {pretty} on blue"), vec![]);
    Ok(())
}

async fn green_database(report: &mut Report, green: &Client, database: &str) -> Result<(), Error> {
    let sql = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database d WHERE d.datname = $1)";
    let exists: bool = green.query_one(sql, &[&database]).await?.try_get(0)?;
    report.fact("green_database_exists", exists);
    let message = if exists {
        format!("database {database} exists on green; the restore goes into it")
    } else {
        format!("database {database} does not exist on green; the controller creates it")
    };
    report.add(Severity::Info, "green_database", message, vec![]);
    Ok(())
}

/// SQL condition on `n.nspname` (the namespace alias of every query) that keeps the schemas
/// of the application: not the catalogs, not TOAST or temporary schemas, and not pgflip's
/// own schema (its tables are made by the controller, with primary keys).
macro_rules! user_schema {
    () => {
        "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'pgflip') \
         AND n.nspname !~ '^pg_(toast_)?temp_'"
    };
}

/// A query listing the application's relations (`schema.name`) that meet `$condition`
/// (on `c`, their pg_class row).
macro_rules! relations_where {
    ($condition:literal) => {
        concat!(
            "SELECT pg_catalog.format('%s.%s', n.nspname, c.relname) FROM pg_catalog.pg_class c ",
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE ",
            user_schema!(),
            " AND ",
            $condition,
            " ORDER BY 1"
        )
    };
}

/// Published tables whose UPDATE and DELETE would fail on blue: no usable replica identity
/// (default without a primary key, NOTHING, or USING INDEX of a dropped index).
const NO_IDENTITY_SQL: &str = relations_where!(
    "c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND NOT CASE c.relreplident
       WHEN 'f' THEN true
       WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
       WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)
       ELSE false END"
);

async fn replica_identity(report: &mut Report, blue: &Client, allowed: &[String]) -> Result<(), Error> {
    let (full, missing): (Vec<String>, Vec<String>) =
        names(blue, NO_IDENTITY_SQL, &[]).await?.into_iter().partition(|table| allowed.contains(table));
    report.fact("replica_identity_full", full.clone());
    report.add_list(
        Severity::Blocker,
        "replica_identity",
        "tables without a primary key or replica identity: UPDATE and DELETE on them fail on blue once \
         they are published. Add a primary key, set REPLICA IDENTITY USING INDEX, or list them in the \
         plan's allow_replica_identity_full",
        missing,
    );
    report.add_list(
        Severity::Info,
        "replica_identity",
        "REPLICA IDENTITY FULL will be set on these tables (allowed by the plan): UPDATE and DELETE then \
         log whole old rows, and if green adds columns to one of them it cannot replicate back for a rollback",
        full,
    );
    Ok(())
}

async fn large_objects(report: &mut Report, blue: &Client) -> Result<(), Error> {
    let sql = "SELECT pg_catalog.count(*) FROM pg_catalog.pg_largeobject_metadata";
    let count: i64 = blue.query_one(sql, &[]).await?.try_get(0)?;
    if count > 0 {
        let message = format!(
            "blue holds large objects ({count}), which logical replication does not carry: move them \
             into bytea columns or remove them (lo_unlink) before the cutover"
        );
        report.add(Severity::Blocker, "large_objects", message, vec![]);
    }
    Ok(())
}

/// Login roles, other than the plan's app roles and the controller's own, that may write to
/// some table of this database (superusers may write everywhere).
const WRITER_ROLES_SQL: &str = concat!(
    "SELECT r.rolname::pg_catalog.text || CASE WHEN r.rolsuper THEN ' (superuser)' ELSE '' END
       FROM pg_catalog.pg_roles r
      WHERE r.rolcanlogin AND r.rolname <> current_user
        AND r.rolname::pg_catalog.text <> ALL ($1::pg_catalog.text[])
        AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind IN ('r', 'p') AND ",
    user_schema!(),
    "                  AND pg_catalog.has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))
      ORDER BY 1"
);

async fn writer_roles(report: &mut Report, blue: &Client, app_roles: &[String]) -> Result<(), Error> {
    report.add_list(
        Severity::Warning,
        "writer_roles",
        "login roles outside the plan's app roles can write: the fence does not stop them, so their \
         writes after the fence would be lost. Add them to the app roles or revoke their write privileges",
        names(blue, WRITER_ROLES_SQL, &[&app_roles]).await?,
    );
    Ok(())
}

/// A check whose query lists objects in one text column; it finds something when the list
/// is not empty.
struct ListCheck {
    check: &'static str,
    severity: Severity,
    message: &'static str,
    sql: &'static str,
}

const LIST_CHECKS: &[ListCheck] = &[
    ListCheck {
        check: "unlogged_tables",
        severity: Severity::Warning,
        message: "unlogged tables are not replicated: green keeps their rows as of the snapshot",
        sql: relations_where!("c.relkind IN ('r', 'p') AND c.relpersistence = 'u'"),
    },
    ListCheck {
        check: "materialized_views",
        severity: Severity::Warning,
        message: "materialized views are not replicated: REFRESH them on green before it serves",
        sql: relations_where!("c.relkind = 'm'"),
    },
    // Enabled user triggers that fire only on the origin (not ENABLE ALWAYS or REPLICA).
    ListCheck {
        check: "triggers",
        severity: Severity::Warning,
        message: "triggers do not fire while green applies blue's changes (only their effects on blue \
                  replicate): a trigger that green's migration adds or changes misses those changes",
        sql: concat!(
            "SELECT pg_catalog.format('%s.%s: %s', n.nspname, c.relname, t.tgname) FROM pg_catalog.pg_trigger t
               JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT t.tgisinternal AND t.tgenabled = 'O' AND ",
            user_schema!(),
            " ORDER BY 1"
        ),
    },
    // Enums, domains, ranges, base types and standalone composites (not the row types of
    // tables, not the array type made for each type).
    ListCheck {
        check: "user_types",
        severity: Severity::Info,
        message: "user-defined types: OIDs will differ after restore; sidecars translate them so that \
                  moved sessions keep seeing their home side's OIDs (binary COPY is not translated)",
        sql: concat!(
            "SELECT pg_catalog.format('%s.%s (%s)', n.nspname, t.typname, CASE t.typtype WHEN 'e' THEN 'enum'
                    WHEN 'c' THEN 'composite' WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range' ELSE 'base' END)
               FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
              WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r') AND ",
            user_schema!(),
            " AND (t.typtype <> 'c' OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                                WHERE c.oid = t.typrelid AND c.relkind = 'c'))
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem AND e.typarray = t.oid)
              ORDER BY 1"
        ),
    },
    ListCheck {
        check: "largest_tables",
        severity: Severity::Info,
        message: "largest tables on blue (with indexes and TOAST)",
        sql: concat!(
            "SELECT pg_catalog.format('%s.%s: %s', n.nspname, c.relname,
                    pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid)))
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm') AND ",
            user_schema!(),
            " ORDER BY pg_catalog.pg_total_relation_size(c.oid) DESC, 1 LIMIT 5"
        ),
    },
];
