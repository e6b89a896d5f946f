//! The server-wide checks: versions, and the settings logical replication needs on both
//! servers (wal_level, slots, WAL senders, workers, superuser).

use tokio_postgres::{Client, Error};

use super::report::{Report, Severity};

/// `server_version_num` and the readable `server_version` of one server.
pub(super) struct ServerVersion {
    num: i32,
    text: String,
}

impl ServerVersion {
    pub(super) async fn read(client: &Client) -> Result<Self, Error> {
        let sql = "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4, \
                          pg_catalog.split_part(pg_catalog.current_setting('server_version'), ' ', 1)";
        let row = client.query_one(sql, &[]).await?;
        Ok(ServerVersion { num: row.try_get(0)?, text: row.try_get(1)? })
    }

    /// The major version: 15 for 150018, 9 for any 9.x.
    pub(super) fn major(&self) -> i32 {
        self.num / 10000
    }
}

/// The oldest major version blue may run: the sidecar's session capture and the slots'
/// status use functions PostgreSQL 13 brought.
pub const OLDEST_BLUE: i32 = 13;
/// The oldest major version green may run: it publishes column lists and subscribes with
/// options PostgreSQL 15 brought.
pub const OLDEST_GREEN: i32 = 15;

/// The range every version message states.
fn supported() -> String {
    format!(
        "pgflip supports blue on PostgreSQL {OLDEST_BLUE} or later and green on {OLDEST_GREEN} or later, green at \
         least as new as blue"
    )
}

/// Records both versions; returns false when either server is outside the supported range
/// (nothing further is checked then).
pub(super) fn judge_versions(report: &mut Report, blue: &ServerVersion, green: &ServerVersion) -> bool {
    report.fact("blue_server_version_num", blue.num);
    report.fact("green_server_version_num", green.num);
    let message = format!("blue runs PostgreSQL {}, green runs PostgreSQL {}", blue.text, green.text);
    report.add(Severity::Info, "server_version", message, vec![]);
    let mut within = true;
    if blue.major() < OLDEST_BLUE {
        let message = format!("blue runs PostgreSQL {}, older than {OLDEST_BLUE}: {}", blue.text, supported());
        report.add(Severity::Blocker, "server_version", message, vec![]);
        within = false;
    }
    if green.major() < OLDEST_GREEN {
        let message = format!("green runs PostgreSQL {}, older than {OLDEST_GREEN}: {}", green.text, supported());
        report.add(Severity::Blocker, "server_version", message, vec![]);
        within = false;
    }
    if green.major() < blue.major() {
        let message = format!(
            "green runs PostgreSQL {}, older than blue's {}: a dump of blue does not restore into it; {}",
            green.text,
            blue.text,
            supported()
        );
        report.add(Severity::Blocker, "server_version", message, vec![]);
        within = false;
    }
    within
}

/// One server's login role and replication capacity.
#[derive(Debug, Clone)]
pub(super) struct ServerSettings {
    wal_level: String,
    user: String,
    superuser: bool,
    free_slots: i32,
    free_senders: i32,
    logical_workers: i32,
    free_workers: i32,
}

/// Background workers count against max_worker_processes and show in pg_stat_activity
/// under their own backend_type: count every process that is not a known non-worker.
const SETTINGS_SQL: &str = "\
SELECT pg_catalog.current_setting('wal_level'),
       current_user::pg_catalog.text,
       (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user),
       pg_catalog.current_setting('max_replication_slots')::pg_catalog.int4
         - (SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots)::pg_catalog.int4,
       pg_catalog.current_setting('max_wal_senders')::pg_catalog.int4
         - (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
             WHERE a.backend_type = 'walsender')::pg_catalog.int4,
       pg_catalog.current_setting('max_logical_replication_workers')::pg_catalog.int4,
       pg_catalog.current_setting('max_worker_processes')::pg_catalog.int4
         - (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
             WHERE a.backend_type NOT IN ('client backend', 'autovacuum launcher', 'autovacuum worker',
                   'background writer', 'checkpointer', 'walwriter', 'walsender', 'walreceiver', 'startup',
                   'archiver', 'logger', 'stats collector', 'standalone backend', 'wal summarizer',
                   'slotsync worker', 'io worker'))::pg_catalog.int4";

impl ServerSettings {
    pub(super) async fn read(client: &Client) -> Result<Self, Error> {
        let row = client.query_one(SETTINGS_SQL, &[]).await?;
        Ok(ServerSettings {
            wal_level: row.try_get(0)?,
            user: row.try_get(1)?,
            superuser: row.try_get::<_, Option<bool>>(2)?.unwrap_or(false),
            free_slots: row.try_get(3)?,
            free_senders: row.try_get(4)?,
            logical_workers: row.try_get(5)?,
            free_workers: row.try_get(6)?,
        })
    }
}

/// Both servers publish (blue forward, green back for a lossless rollback) and both
/// subscribe, so both need a superuser login, `wal_level = logical`, a free slot, a free WAL
/// sender and a logical replication worker.
pub(super) fn judge_settings(report: &mut Report, server: &str, settings: &ServerSettings) {
    let ServerSettings { wal_level, user, superuser, free_slots, free_senders, logical_workers, free_workers } =
        settings;
    if !superuser {
        let message = format!(
            "{server}: {user} is not a superuser, and CREATE SUBSCRIPTION needs one on PostgreSQL 15: \
             give the plan a superuser URL for {server}"
        );
        report.add(Severity::Blocker, "superuser", message, vec![]);
    }
    if wal_level != "logical" {
        let message = format!(
            "wal_level is '{wal_level}' on {server}; logical replication needs 'logical'. \
             Fix: ALTER SYSTEM SET wal_level = logical; then restart {server}"
        );
        report.add(Severity::Blocker, "wal_level", message, vec![]);
    }
    if *free_slots < 1 {
        let message =
            format!("{server} has no free replication slot: drop one or raise max_replication_slots (restart)");
        report.add(Severity::Blocker, "replication_slots", message, vec![]);
    }
    if *free_senders < 1 {
        let message = format!("{server} has no free WAL sender: raise max_wal_senders (restart)");
        report.add(Severity::Blocker, "wal_senders", message, vec![]);
    }
    if *logical_workers < 1 {
        let message = format!("max_logical_replication_workers is 0 on {server}: set it to at least 1 (restart)");
        report.add(Severity::Blocker, "logical_workers", message, vec![]);
    }
    if *free_workers < 1 {
        let message = format!("{server} has no free background worker for an apply worker: raise max_worker_processes");
        report.add(Severity::Warning, "worker_processes", message, vec![]);
    }
    let message = format!(
        "{server}: {free_slots} free replication slots, {free_senders} free WAL senders, \
         {free_workers} free worker processes, max_logical_replication_workers = {logical_workers}"
    );
    report.add(Severity::Info, "capacity", message, vec![]);
}
