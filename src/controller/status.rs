//! `pgflip cutover status`: the journal and the next phase, and what both servers hold now:
//! every replication slot with the WAL it keeps (`pg_wal_lsn_diff(pg_current_wal_lsn(),
//! restart_lsn)`), its `wal_status` and `safe_wal_size`, and every subscription with the
//! state of its apply worker. Slots are per cluster, so other plans' slots show too; this
//! plan's are marked. A side that cannot be reached is said so, and the journal is printed
//! all the same. Nothing is locked or changed.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use tokio_postgres::Client;

use super::catchup::human_bytes;
use super::error::CutoverError;
use super::names::LinkNames;
use super::pg;
use super::progress::Progress;
use super::runner::Context;
use super::servers;

/// How long a side gets to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The text `status` prints.
pub async fn status(plan_path: &Path) -> Result<String, CutoverError> {
    let ctx = Context::open(plan_path, Progress::Stdout)?;
    let mut out = String::new();
    let next = ctx.journal.next_phase().map(|p| p.name()).unwrap_or("none (all done)");
    let _ = writeln!(out, "journal: {}", ctx.plan.journal.path.display());
    let _ = writeln!(out, "next phase: {next}");
    let _ = writeln!(out, "replication names: forward {}, reverse {}", ctx.names.forward, ctx.names.reverse);
    if let Some(abandon) = ctx.journal.abandon() {
        let state = if abandon.finished_at.is_some() { "done" } else { "not finished: run abandon again" };
        let _ = writeln!(out, "abandoned since {} ({state})", abandon.started_at);
    }
    for (side, mut config) in [("blue", ctx.plan.blue_config()), ("green", ctx.plan.green_config())] {
        // Slots and subscriptions are seen from any database; green's may not exist yet.
        config.config.dbname("postgres").connect_timeout(CONNECT_TIMEOUT);
        match pg::connect(&config, side).await {
            Ok(client) => match side_status(&client, side, &ctx).await {
                Ok(text) => out.push_str(&text),
                Err(e) => {
                    let _ = writeln!(out, "{side}: cannot be read: {e}");
                }
            },
            Err(e) => {
                let _ = writeln!(out, "{side}: cannot be reached: {e}");
            }
        }
    }
    out.push_str(&serde_json::to_string_pretty(ctx.journal.record()).unwrap_or_default());
    Ok(out)
}

/// One side: its server, its slots, its subscriptions.
async fn side_status(client: &Client, side: &str, ctx: &Context) -> Result<String, CutoverError> {
    let mut out = String::new();
    let identifier = servers::system_identifier(client, side).await?;
    let known = match ctx.journal.server(side) {
        None => "not in the journal yet".to_owned(),
        Some(server) if server.system_identifier == identifier => "as the journal recorded".to_owned(),
        Some(server) => {
            format!("NOT the server the journal recorded ({}): the plan points elsewhere now", server.system_identifier)
        }
    };
    let _ = writeln!(out, "{side}: system identifier {identifier}, {known}");
    let slots = client
        .query(
            "SELECT slot_name::text, COALESCE(database::text, ''), slot_type, active, \
                    pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::bigint, \
                    COALESCE(wal_status, 'unknown'), safe_wal_size \
             FROM pg_catalog.pg_replication_slots ORDER BY slot_name",
            &[],
        )
        .await
        .map_err(CutoverError::sql(format!("reading the replication slots of {side}")))?;
    if slots.is_empty() {
        let _ = writeln!(out, "  no replication slot");
    }
    for row in &slots {
        let name: String = row.get(0);
        let retained: Option<i64> = row.get(4);
        let safe: Option<i64> = row.get(6);
        let _ = writeln!(
            out,
            "  slot {name}{} ({} in {}): {}, retains {} of WAL, wal_status {}, safe_wal_size {}",
            ours(&ctx.names, &name),
            row.get::<_, String>(2),
            database(row.get(1)),
            if row.get(3) { "active" } else { "inactive" },
            retained.map_or("none".to_owned(), human_bytes),
            row.get::<_, String>(5),
            safe.map_or("unlimited".to_owned(), human_bytes),
        );
    }
    let subscriptions = client
        .query(
            "SELECT s.subname::text, d.datname::text, s.subenabled, s.subslotname::text, w.pid, \
                    w.latest_end_lsn::text \
             FROM pg_catalog.pg_subscription s JOIN pg_catalog.pg_database d ON d.oid = s.subdbid \
             LEFT JOIN pg_catalog.pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL \
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(CutoverError::sql(format!("reading the subscriptions of {side}")))?;
    if subscriptions.is_empty() {
        let _ = writeln!(out, "  no subscription");
    }
    for row in &subscriptions {
        let name: String = row.get(0);
        let (enabled, slot, pid) =
            (row.get::<_, bool>(2), row.get::<_, Option<String>>(3), row.get::<_, Option<i32>>(4));
        let state = match (enabled, &slot, pid) {
            (true, _, Some(pid)) => format!(
                "streaming (apply worker pid {pid}, applied up to {})",
                row.get::<_, Option<String>>(5).unwrap_or_else(|| "nothing yet".to_owned())
            ),
            (true, _, None) => "enabled, but no apply worker runs (see the server log)".to_owned(),
            (false, Some(_), _) => "disabled with its slot (an apply error or a person stopped it)".to_owned(),
            (false, None, _) => "detached (disabled, no slot)".to_owned(),
        };
        let slot = slot.map_or("no slot".to_owned(), |s| format!("slot {s}"));
        let _ = writeln!(
            out,
            "  subscription {name}{} (in {}, {slot}): {state}",
            ours(&ctx.names, &name),
            row.get::<_, String>(1)
        );
    }
    Ok(out)
}

fn ours(names: &LinkNames, name: &str) -> &'static str {
    if names.owns(name) {
        ", this plan"
    } else {
        ""
    }
}

fn database(name: String) -> String {
    if name.is_empty() {
        "no database".to_owned()
    } else {
        name
    }
}
