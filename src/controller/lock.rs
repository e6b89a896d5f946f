//! One controller per plan at a time. A command that changes anything (`run`, `rollback`,
//! `promote`, `abandon`) holds, for its whole life:
//!
//! - an exclusive `flock` on `<journal>.lock` beside the journal (the journal itself is replaced
//!   at every save, so it cannot carry the lock), which names its holder: pid, host,
//!   command, since when;
//! - `pg_try_advisory_lock` on blue's and green's `postgres` database, keyed by the plan's
//!   replication names, on a session of its own whose `application_name` names the
//!   controller: a controller on another machine, or one with another journal but the same
//!   names, is kept out too.
//!
//! The same sessions check which servers the plan reaches ([`super::servers`]).
//! `status` and `standby-report` only read, and take neither lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tracing::{info, warn};

use super::error::CutoverError;
use super::journal::Journal;
use super::names::LinkNames;
use super::pg;
use super::plan::Plan;
use super::servers;
use super::target::Target;

/// How long a held advisory lock is tried again before the holder is named.
const LET_GO: Duration = Duration::from_secs(2);

/// Whether a side that cannot be reached stops the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Both sides must answer (`run`, `rollback`, `promote`).
    Both,
    /// A side that does not answer is skipped with a warning (`abandon`: green may be gone).
    Reachable,
}

/// The locks a command holds; dropping it lets them go.
pub struct PlanLock {
    _file: File,
    /// The sessions holding the advisory lock (it lasts as long as they do).
    _sessions: Vec<Client>,
}

impl PlanLock {
    /// Takes the file lock beside `journal_path`; refused, naming the holder, when another
    /// process has it. Taken before the journal is read.
    pub fn file(journal_path: &Path, command: &str) -> Result<File, CutoverError> {
        let path = lock_path(journal_path);
        let io = |what: &str, source| CutoverError::Io { what: format!("{what} {}", path.display()), source };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("opening the lock file", e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "a process that has not written its name yet".to_owned(),
                    text => text.to_owned(),
                };
                return Err(CutoverError::Busy { holder: format!("{holder} (lock file {})", path.display()) });
            }
            Err(e) => return Err(io("locking", e.into())),
        }
        let me = format!("pid {} on {}: pgflip cutover {command}, since {}\n", std::process::id(), host(), now());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| io("writing", e))?;
        Ok(file)
    }

    /// Takes the advisory lock on both servers (after [`PlanLock::file`]) and checks, or
    /// records at first contact, which servers the plan reaches.
    pub async fn servers(
        file: File,
        plan: &Plan,
        journal: &mut Journal,
        names: &LinkNames,
        command: &str,
        reach: Reach,
    ) -> Result<PlanLock, CutoverError> {
        let mut lock = PlanLock { _file: file, _sessions: Vec::new() };
        let key = names.lock_key();
        let application = application_name(command);
        let mut locked: Vec<String> = Vec::new();
        for (side, config) in [("blue", plan.blue_config()), ("green", plan.green_config())] {
            let database = config.config.get_dbname().unwrap_or_default().to_owned();
            let client = match connect(&config, side, &application).await {
                Ok(client) => client,
                Err(e) if reach == Reach::Reachable => {
                    warn!(side, error = %e, "cannot reach {side}: going on without it");
                    continue;
                }
                Err(e) => return Err(e),
            };
            // First: a plan pointed at another server is refused for that, whoever holds what.
            let identifier = servers::check(&client, side, &database, journal).await?;
            if locked.contains(&identifier) {
                // Both sides on one server: the lock taken there covers both.
                continue;
            }
            if !try_advisory_lock(&client, side, key).await? {
                let holder = holder(&client, key).await;
                return Err(CutoverError::Busy {
                    holder: format!("on {side}, {holder} holds the advisory lock of {}", names.forward),
                });
            }
            info!(side, key, "plan lock taken");
            locked.push(identifier);
            lock._sessions.push(client);
        }
        Ok(lock)
    }
}

/// Takes the advisory lock `key` on `client`'s server, trying for [`LET_GO`]: the session
/// of a controller that has just ended (in this process too: the demo runs one command
/// after another) may not have been reaped by the server yet.
async fn try_advisory_lock(client: &Client, side: &str, key: i64) -> Result<bool, CutoverError> {
    let until = Instant::now() + LET_GO;
    loop {
        let taken: bool = client
            .query_one("SELECT pg_catalog.pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(CutoverError::sql(format!("taking the plan's advisory lock on {side}")))?
            .get(0);
        if taken || Instant::now() >= until {
            return Ok(taken);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `<journal>.lock`.
fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    journal.with_file_name(name)
}

/// The `postgres` database of `config`'s server: it exists before green's database does.
async fn connect(target: &Target, side: &str, application: &str) -> Result<Client, CutoverError> {
    let mut target = target.clone();
    target.config.dbname("postgres");
    pg::connect_as(&target, side, application).await
}

/// `pgflip run pid 4242`, within PostgreSQL's 63 bytes.
fn application_name(command: &str) -> String {
    let mut name = format!("pgflip {command} pid {} on {}", std::process::id(), host());
    if name.len() > 63 {
        let mut end = 63;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// Who holds the advisory lock `key`, as pg_stat_activity shows it.
async fn holder(client: &Client, key: i64) -> String {
    let sql = "SELECT a.pid, COALESCE(a.application_name, ''), COALESCE(pg_catalog.host(a.client_addr), 'local'), \
                      a.backend_start::text \
               FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                 AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) \
                 AND l.classid = (($1::bigint >> 32) & 4294967295)::oid AND l.objid = ($1::bigint & 4294967295)::oid";
    match client.query_opt(sql, &[&key]).await {
        Ok(Some(row)) => format!(
            "server pid {} ({:?}, from {}, since {})",
            row.get::<_, i32>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3)
        ),
        Ok(None) => "a session that has just let go".to_owned(),
        Err(e) => format!("a session that cannot be named ({e})"),
    }
}

/// This machine's name, for the lock's holder.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".to_owned())
}

/// Seconds since the epoch, for the lock file.
fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("unix time {secs}")
}
