//! The write load: sessions through the sidecar, each running pgbench-like transactions
//! (an account's balance raised, a ledger row with the client's own sequence number, the
//! balance read back) in a closed loop. A session whose connection ends connects again, as
//! an application's pool would. Every commit acknowledged, every commit left in doubt
//! (its connection ended during COMMIT) and every error with its time are kept.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, Statement};

/// Rows of `soak_accounts`.
pub const ACCOUNTS: i32 = 100;
/// The application name of the load's sessions, which the backend-killing fault looks for.
pub const APPLICATION: &str = "pgflip-soak";
/// A transaction without an answer for this long counts as an error.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Time between two attempts to connect again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// SQL creating the load's tables, run directly on each cluster. Each transaction adds 1
/// to one balance and one ledger row, so on each cluster the balances sum to its ledger's
/// row count when no transaction was torn.
pub fn tables_sql() -> String {
    format!(
        "DROP TABLE IF EXISTS soak_accounts, soak_ledger; \
         CREATE TABLE soak_accounts(id int PRIMARY KEY, balance bigint NOT NULL); \
         INSERT INTO soak_accounts SELECT i, 0 FROM generate_series(1, {ACCOUNTS}) i; \
         CREATE TABLE soak_ledger(client int, seq bigint, account int NOT NULL, PRIMARY KEY (client, seq))"
    )
}

/// An error one client saw.
#[derive(Debug, Clone)]
pub struct ClientError {
    pub client: usize,
    /// When it was seen, since the run's epoch.
    pub at: Duration,
    /// What kind of failure it was: the severity and SQLSTATE of a server error, or a
    /// short name for a failure of the connection.
    pub kind: String,
    /// The whole message, for the report.
    pub message: String,
}

/// What one client did.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// Sequence numbers whose COMMIT was acknowledged.
    pub acked: Vec<i64>,
    /// Sequence numbers whose COMMIT was sent but not answered.
    pub in_doubt: Vec<i64>,
    pub errors: Vec<ClientError>,
    /// Connections opened after the first.
    pub reconnects: u64,
}

/// Clients running until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    clients: Vec<JoinHandle<ClientLog>>,
}

impl Load {
    /// Connects `count` sessions through `conninfo`, then starts every loop.
    pub async fn start(conninfo: &str, count: usize, epoch: Instant) -> Result<Load, String> {
        let mut sessions = Vec::with_capacity(count);
        for index in 0..count {
            sessions.push(Session::open(conninfo).await.map_err(|e| format!("client {index}: {}", e.message))?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let clients = sessions
            .into_iter()
            .enumerate()
            .map(|(index, session)| {
                let writer = Writer {
                    index,
                    conninfo: conninfo.to_string(),
                    stop: stop.clone(),
                    commits: commits.clone(),
                    epoch,
                };
                tokio::spawn(writer.run(session))
            })
            .collect();
        Ok(Load { stop, commits, clients })
    }

    /// Commits acknowledged so far, by all clients.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stops every loop after its current transaction and collects the logs.
    pub async fn finish(self) -> Vec<ClientLog> {
        self.stop.store(true, Ordering::Relaxed);
        let mut logs = Vec::with_capacity(self.clients.len());
        for (client, handle) in self.clients.into_iter().enumerate() {
            logs.push(handle.await.unwrap_or_else(|e| ClientLog {
                errors: vec![ClientError {
                    client,
                    at: Duration::ZERO,
                    kind: "client task panicked".into(),
                    message: e.to_string(),
                }],
                ..ClientLog::default()
            }));
        }
        logs
    }
}

/// A failure before it is given its client and time.
struct Failure {
    kind: String,
    message: String,
}

impl Failure {
    fn of(error: &tokio_postgres::Error) -> Failure {
        match error.as_db_error() {
            Some(db) => Failure {
                kind: format!("{} {}", db.severity(), db.code().code()),
                message: format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
            },
            None if error.is_closed() => Failure { kind: "connection closed".into(), message: error.to_string() },
            None => Failure { kind: "connection error".into(), message: error.to_string() },
        }
    }
}

struct Session {
    client: Client,
    update: Statement,
    insert: Statement,
    read: Statement,
    connection: JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl Session {
    /// Connects, sets a session setting that must follow every switch, and prepares.
    async fn open(conninfo: &str) -> Result<Session, Failure> {
        let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(conninfo, NoTls))
            .await
            .map_err(|_| Failure { kind: "connect timeout".into(), message: format!("{CONNECT_TIMEOUT:?}") })?
            .map_err(|e| Failure::of(&e))?;
        let connection = tokio::spawn(connection);
        let prepared = async {
            client.batch_execute("SET statement_timeout = '60s'").await?;
            let update = client.prepare("UPDATE soak_accounts SET balance = balance + 1 WHERE id = $1").await?;
            let insert = client.prepare("INSERT INTO soak_ledger(client, seq, account) VALUES ($1, $2, $3)").await?;
            let read = client.prepare("SELECT balance FROM soak_accounts WHERE id = $1").await?;
            Ok::<_, tokio_postgres::Error>((update, insert, read))
        };
        match prepared.await {
            Ok((update, insert, read)) => Ok(Session { client, update, insert, read, connection }),
            Err(e) => {
                connection.abort();
                Err(Failure::of(&e))
            }
        }
    }
}

/// Where a transaction failed: before COMMIT (nothing happened), at it (in doubt), or on
/// a read that answered what no committed state allows (rolled back, and an error).
enum TxnFailure {
    Server { error: tokio_postgres::Error, at_commit: bool },
    WrongAnswer(i64),
}

impl TxnFailure {
    fn before(error: tokio_postgres::Error) -> TxnFailure {
        TxnFailure::Server { error, at_commit: false }
    }

    fn at_commit(error: tokio_postgres::Error) -> TxnFailure {
        TxnFailure::Server { error, at_commit: true }
    }
}

struct Writer {
    index: usize,
    conninfo: String,
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    epoch: Instant,
}

impl Writer {
    async fn run(self, first: Session) -> ClientLog {
        let mut rng = StdRng::seed_from_u64(self.index as u64);
        let mut log = ClientLog::default();
        let mut session = Some(first);
        let mut seq: i64 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let Some(current) = session.as_mut() else {
                match Session::open(&self.conninfo).await {
                    Ok(fresh) => {
                        log.reconnects += 1;
                        session = Some(fresh);
                    }
                    Err(failure) => {
                        self.record(&mut log, failure);
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                    }
                }
                continue;
            };
            seq += 1;
            let account = rng.random_range(1..=ACCOUNTS);
            match tokio::time::timeout(TXN_TIMEOUT, transaction(current, self.index, seq, account)).await {
                Ok(Ok(())) => {
                    log.acked.push(seq);
                    self.commits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(TxnFailure::Server { error, at_commit })) => {
                    if at_commit {
                        log.in_doubt.push(seq);
                    }
                    self.record(&mut log, Failure::of(&error));
                    if unusable(&error, &current.client) {
                        close(&mut session);
                    }
                }
                Ok(Err(TxnFailure::WrongAnswer(balance))) => {
                    let message = format!("account {account} read {balance} right after raising it");
                    self.record(&mut log, Failure { kind: "wrong answer".into(), message });
                }
                Err(_) => {
                    log.in_doubt.push(seq);
                    let message = format!("no answer within {TXN_TIMEOUT:?}");
                    self.record(&mut log, Failure { kind: "transaction timeout".into(), message });
                    close(&mut session);
                }
            }
        }
        if let Some(session) = session {
            drop(session.client);
            let _ = tokio::time::timeout(Duration::from_secs(5), session.connection).await;
        }
        log
    }

    fn record(&self, log: &mut ClientLog, failure: Failure) {
        log.errors.push(ClientError {
            client: self.index,
            at: self.epoch.elapsed(),
            kind: failure.kind,
            message: failure.message,
        });
    }
}

/// One transaction: the balance raised, the ledger row written, the balance read back.
async fn transaction(session: &mut Session, client: usize, seq: i64, account: i32) -> Result<(), TxnFailure> {
    let client_id = client as i32;
    let tx = session.client.transaction().await.map_err(TxnFailure::before)?;
    tx.execute(&session.update, &[&account]).await.map_err(TxnFailure::before)?;
    tx.execute(&session.insert, &[&client_id, &seq, &account]).await.map_err(TxnFailure::before)?;
    let balance: i64 = tx.query_one(&session.read, &[&account]).await.map_err(TxnFailure::before)?.get(0);
    if balance < 1 {
        // The row was just raised in this transaction.
        return Err(TxnFailure::WrongAnswer(balance));
    }
    tx.commit().await.map_err(TxnFailure::at_commit)
}

/// Drops the session, its connection task with it; the next turn opens a new one.
fn close(session: &mut Option<Session>) {
    if let Some(session) = session.take() {
        session.connection.abort();
    }
}

/// Whether the session must be opened again after `error`.
fn unusable(error: &tokio_postgres::Error, client: &Client) -> bool {
    client.is_closed() || error.as_db_error().is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
}
