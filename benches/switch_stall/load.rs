//! The client load: sessions through the proxy, each running a closed loop of one-row
//! prepared selects and recording when every query started and how long it took.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, Statement};

/// Rows of `t` on both clusters; `v` is always `id * 3`, so every answer can be checked.
pub const ROWS: i32 = 1000;
/// The statement every client runs, prepared once per session.
pub const SELECT: &str = "SELECT v FROM t WHERE id = $1";
/// A query without an answer for this long counts as an error and ends its client.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client waits for its connection task to end once it hung up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// SQL creating the table the clients read, run directly on each cluster.
pub fn table_sql() -> String {
    format!(
        "DROP TABLE IF EXISTS t; CREATE TABLE t(id int PRIMARY KEY, v int NOT NULL); \
         INSERT INTO t SELECT i, i * 3 FROM generate_series(1, {ROWS}) i; ANALYZE t"
    )
}

/// One answered query: when it was sent (since the run's epoch) and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub started: Duration,
    pub latency: Duration,
}

impl Query {
    pub fn finished(&self) -> Duration {
        self.started + self.latency
    }
}

/// A failure one client saw.
#[derive(Debug)]
pub struct ClientError {
    pub client: usize,
    /// When the failing query was sent (since the run's epoch) and how long it waited.
    pub sent: Option<Duration>,
    pub waited: Option<Duration>,
    /// What failed, without client or time, so that equal failures group together.
    pub what: String,
}

impl ClientError {
    fn new(client: usize, what: String) -> ClientError {
        ClientError { client, sent: None, waited: None, what }
    }

    fn of_query(client: usize, sent: Duration, waited: Duration, what: String) -> ClientError {
        ClientError { client, sent: Some(sent), waited: Some(waited), what }
    }
}

/// What one client did.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub queries: Vec<Query>,
    pub errors: Vec<ClientError>,
    /// `inet_server_port()` asked after the loop: the server the session ended on.
    pub final_port: Option<i32>,
}

/// Clients running their loops until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<ClientLog>>,
}

struct Session {
    client: Client,
    select: Statement,
    connection: JoinHandle<Result<(), tokio_postgres::Error>>,
}

/// Connects `count` sessions through `conninfo` and prepares the select on each, then
/// starts every loop at once.
pub async fn start(conninfo: &str, count: usize, epoch: Instant) -> Result<Load, String> {
    let mut sessions = Vec::with_capacity(count);
    for index in 0..count {
        sessions.push(connect(conninfo).await.map_err(|e| format!("client {index}: {e}"))?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let clients = sessions
        .into_iter()
        .enumerate()
        .map(|(index, session)| tokio::spawn(run_client(index, session, stop.clone(), epoch)))
        .collect();
    Ok(Load { stop, clients })
}

impl Load {
    /// Stops every loop after its current query and collects the logs.
    pub async fn finish(self) -> Vec<ClientLog> {
        self.stop.store(true, Ordering::Relaxed);
        let mut logs = Vec::with_capacity(self.clients.len());
        for (index, client) in self.clients.into_iter().enumerate() {
            logs.push(client.await.unwrap_or_else(|e| ClientLog {
                errors: vec![ClientError::new(index, format!("client task ended abnormally: {e}"))],
                ..ClientLog::default()
            }));
        }
        logs
    }
}

async fn connect(conninfo: &str) -> Result<Session, String> {
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(conninfo, NoTls))
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| format!("connect: {e}"))?;
    let connection = tokio::spawn(connection);
    let select = client.prepare(SELECT).await.map_err(|e| format!("prepare {SELECT:?}: {e}"))?;
    Ok(Session { client, select, connection })
}

async fn run_client(index: usize, session: Session, stop: Arc<AtomicBool>, epoch: Instant) -> ClientLog {
    let Session { client, select, mut connection } = session;
    let mut rng = StdRng::seed_from_u64(index as u64);
    let mut log = ClientLog { queries: Vec::with_capacity(16 * 1024), ..ClientLog::default() };
    let mut usable = true;
    while usable && !stop.load(Ordering::Relaxed) {
        let id = rng.random_range(1..=ROWS);
        let started = Instant::now();
        let answer = tokio::time::timeout(QUERY_TIMEOUT, client.query_one(&select, &[&id])).await;
        let latency = started.elapsed();
        let started = started.duration_since(epoch);
        let failure = |what: String| ClientError::of_query(index, started, latency, what);
        match answer {
            Ok(Ok(row)) => {
                match row.try_get::<_, i32>(0) {
                    Ok(v) if v == id * 3 => {}
                    other => log.errors.push(failure(format!("wrong answer: expected v = id * 3, got {other:?}"))),
                }
                log.queries.push(Query { started, latency });
            }
            Ok(Err(e)) => {
                log.errors.push(failure(format!("query failed: {}", describe(&e))));
                let fatal = e.as_db_error().is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"));
                usable = !fatal && !client.is_closed();
            }
            Err(_) => {
                log.errors.push(failure(format!("no answer within {QUERY_TIMEOUT:?}")));
                usable = false;
            }
        }
    }
    if usable {
        match tokio::time::timeout(QUERY_TIMEOUT, client.query_one("SELECT inet_server_port()", &[])).await {
            Ok(Ok(row)) => log.final_port = row.try_get(0).ok(),
            Ok(Err(e)) => {
                log.errors.push(ClientError::new(index, format!("SELECT inet_server_port(): {}", describe(&e))))
            }
            Err(_) => log.errors.push(ClientError::new(index, "SELECT inet_server_port(): no answer".into())),
        }
    }
    drop(client);
    // After a failed query, a connection ending in error is that same failure again.
    let failed_already = !log.errors.is_empty();
    match tokio::time::timeout(CLOSE_TIMEOUT, &mut connection).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(_))) if failed_already => {}
        Ok(Ok(Err(e))) => log.errors.push(ClientError::new(index, format!("connection ended with an error: {e}"))),
        Ok(Err(e)) => log.errors.push(ClientError::new(index, format!("connection task ended abnormally: {e}"))),
        Err(_) => {
            connection.abort();
            log.errors.push(ClientError::new(index, format!("connection did not close within {CLOSE_TIMEOUT:?}")));
        }
    }
    log
}

/// An error with the server's severity, SQLSTATE and message when it came from a server.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => error.to_string(),
    }
}
