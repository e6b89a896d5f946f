//! The application the demo runs through the sidecars while the cutover goes on: writers
//! posting balanced sale journals (one connection each, never retried: any error, a
//! reconnect included, counts), readers reading an organisation's account balances, and
//! dashboard readers doing the same through the sidecars' standby listener, which sends
//! them to the database that is not serving.
//! Every operation's start and latency is kept, and every journal whose COMMIT was
//! acknowledged, to be looked up key by key at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use super::error::DemoError;
use super::sidecars::{Sidecar, APP_PASSWORD, APP_USER, READER_PASSWORD, READER_USER};

/// Where a writer posts: an open BAS period and the accounts of a GST sale.
#[derive(Debug, Clone)]
pub struct Target {
    pub organisation: i64,
    pub period: i64,
    pub date: String,
    /// Trade debtors, sales, GST collected.
    pub accounts: [i64; 3],
}

/// The open periods of every organisation, read from blue before the load starts.
pub async fn targets(blue: &Client) -> Result<Vec<Target>, DemoError> {
    let sql = "SELECT p.organisation_id, p.id, p.period_start::text, d.id, s.id, g.id
                 FROM public.bas_periods p
                 JOIN public.bas_gate_states st ON st.period_id = p.id AND st.state = 'open'
                 JOIN public.accounts d ON d.organisation_id = p.organisation_id AND d.code = '1-1200'
                 JOIN public.accounts s ON s.organisation_id = p.organisation_id AND s.code = '4-1000'
                 JOIN public.accounts g ON g.organisation_id = p.organisation_id AND g.code = '2-1310'
                ORDER BY p.id";
    let rows = blue.query(sql, &[]).await.map_err(DemoError::sql("reading the open BAS periods"))?;
    Ok(rows
        .iter()
        .map(|r| Target {
            organisation: r.get(0),
            period: r.get(1),
            date: r.get(2),
            accounts: [r.get(3), r.get(4), r.get(5)],
        })
        .collect())
}

/// One answered operation: when it started (since the load's epoch) and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub started: Duration,
    pub latency: Duration,
}

/// What one client did.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub ops: Vec<Op>,
    /// Journal ids whose COMMIT was acknowledged (writers only).
    pub acked: Vec<i64>,
    /// The error that ended the client, if one did.
    pub error: Option<String>,
    /// A dashboard reader, on the standby listener.
    pub standby: bool,
    /// The ports of the servers a dashboard reader was answered by, each change once.
    pub servers: Vec<u16>,
}

/// A client's log, written by the client as it goes and read by the demo meanwhile.
#[derive(Clone, Default)]
struct SharedLog(Arc<Mutex<ClientLog>>);

impl SharedLog {
    fn lock(&self) -> MutexGuard<'_, ClientLog> {
        // A client that panicked leaves its log as it was.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> ClientLog {
        std::mem::take(&mut *self.lock())
    }
}

pub struct Workload {
    stop: Arc<AtomicBool>,
    clients: Vec<(SharedLog, JoinHandle<()>)>,
    pub epoch: Instant,
}

/// How long [`Workload::longest_wait`] waits for the clients held by a flip to be answered.
const SETTLE: Duration = Duration::from_secs(10);

/// How hard the load pushes: pauses between one client's operations.
const WRITER_PACE: Duration = Duration::from_millis(10);
const READER_PACE: Duration = Duration::from_millis(40);

/// How many clients of each kind.
#[derive(Debug, Clone, Copy)]
pub struct Clients {
    pub writers: usize,
    pub readers: usize,
    /// Dashboard readers, on the standby listener.
    pub dashboards: usize,
}

/// Connects the clients, spread over the sidecars, and starts them.
pub async fn start(sidecars: &[Sidecar], targets: Vec<Target>, counts: Clients) -> Result<Workload, DemoError> {
    let targets = Arc::new(targets);
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let mut clients = Vec::new();
    let Clients { writers, readers, dashboards } = counts;
    for index in 0..writers + readers + dashboards {
        let sidecar = &sidecars[index % sidecars.len()];
        let conninfo = if index < writers + readers {
            format!("host=127.0.0.1 port={} user={APP_USER} password={APP_PASSWORD} dbname=ledger", sidecar.port)
        } else {
            format!(
                "host=127.0.0.1 port={} user={READER_USER} password={READER_PASSWORD} dbname=ledger",
                sidecar.standby_port
            )
        };
        let (client, connection) = tokio_postgres::connect(&conninfo, NoTls)
            .await
            .map_err(DemoError::sql(format!("connecting client {index} through sidecar {}", index % sidecars.len())))?;
        tokio::spawn(connection);
        let (stop, targets, log) = (stop.clone(), targets.clone(), SharedLog::default());
        let task = if index < writers {
            tokio::spawn(write_loop(client, index, targets, stop, epoch, log.clone()))
        } else {
            let standby = index >= writers + readers;
            log.lock().standby = standby;
            tokio::spawn(read_loop(client, index, targets, stop, epoch, log.clone()))
        };
        clients.push((log, task));
    }
    Ok(Workload { stop, clients, epoch })
}

impl Workload {
    /// The longest any operation waited that overlapped `window` (times since the epoch),
    /// in ms, once every client still running has been answered for an operation begun
    /// after the window: then every operation the window held has finished.
    pub async fn longest_wait(&self, window: (Duration, Duration)) -> f64 {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            let settled = self.clients.iter().all(|(log, task)| {
                let log = log.lock();
                task.is_finished() || log.error.is_some() || log.ops.last().is_some_and(|op| op.started > window.1)
            });
            if settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let logs: Vec<_> = self.clients.iter().map(|(log, _)| log.lock()).collect();
        super::report::max_stall(logs.iter().flat_map(|log| log.ops.iter()), window)
    }

    /// Stops every client after its current operation and collects the logs.
    pub async fn finish(self) -> Vec<ClientLog> {
        self.stop.store(true, Ordering::Relaxed);
        let mut logs = Vec::new();
        for (log, task) in self.clients {
            let ended = task.await;
            let mut log = log.take();
            if let Err(e) = ended {
                log.error = Some(format!("client task ended abnormally: {e}"));
            }
            logs.push(log);
        }
        logs
    }
}

async fn write_loop(
    mut client: Client,
    writer: usize,
    targets: Arc<Vec<Target>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    log: SharedLog,
) {
    let prepared = async {
        let journal = client
            .prepare(
                "INSERT INTO public.journals (organisation_id, period_id, journal_date, description) \
                 VALUES ($1, $2, $3::text::date, $4) RETURNING id",
            )
            .await?;
        let lines = client
            .prepare(
                "INSERT INTO public.ledger_lines (journal_id, account_id, tax_code, amount_cents) \
                 VALUES ($1, $2, 'N-T', $3), ($1, $4, 'GST', $5), ($1, $6, 'N-T', $7)",
            )
            .await?;
        Ok::<_, tokio_postgres::Error>((journal, lines))
    };
    let (journal, lines) = match prepared.await {
        Ok(statements) => statements,
        Err(e) => {
            log.lock().error = Some(format!("writer {writer}: preparing: {e}"));
            return;
        }
    };
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let target = &targets[(writer + seq as usize) % targets.len()];
        let net = 1_000 * (1 + (seq as i64 * 7 + writer as i64) % 500);
        let gst = net / 10;
        let description = format!("pgflip demo: writer {writer} sale {seq}");
        let started = Instant::now();
        let result = async {
            let tx = client.transaction().await?;
            let row =
                tx.query_one(&journal, &[&target.organisation, &target.period, &target.date, &description]).await?;
            let id: i64 = row.get(0);
            let [debtors, sales, gst_account] = target.accounts;
            tx.execute(&lines, &[&id, &debtors, &(net + gst), &sales, &-net, &gst_account, &-gst]).await?;
            tx.commit().await?;
            Ok::<i64, tokio_postgres::Error>(id)
        }
        .await;
        match result {
            Ok(id) => {
                let mut log = log.lock();
                log.acked.push(id);
                log.ops.push(Op { started: started - epoch, latency: started.elapsed() });
            }
            Err(e) => {
                log.lock().error = Some(format!("writer {writer}, sale {seq}: {e}"));
                return;
            }
        }
        tokio::time::sleep(WRITER_PACE).await;
    }
}

async fn read_loop(
    client: Client,
    reader: usize,
    targets: Arc<Vec<Target>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    log: SharedLog,
) {
    let standby = log.lock().standby;
    let balances = match client
        .prepare(
            "SELECT a.code, sum(l.amount_cents)::bigint FROM public.accounts a \
             JOIN public.ledger_lines l ON l.account_id = a.id WHERE a.organisation_id = $1 GROUP BY a.code",
        )
        .await
    {
        Ok(statement) => statement,
        Err(e) => {
            log.lock().error = Some(format!("{} {reader}: preparing: {e}", kind(standby)));
            return;
        }
    };
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let organisation = targets[(reader + round) % targets.len()].organisation;
        let started = Instant::now();
        let read = async {
            client.query(&balances, &[&organisation]).await?;
            let server = match standby {
                true => Some(client.query_one("SELECT pg_catalog.inet_server_port()", &[]).await?.get::<_, i32>(0)),
                false => None,
            };
            Ok::<_, tokio_postgres::Error>(server)
        };
        match read.await {
            Ok(server) => {
                let mut log = log.lock();
                log.ops.push(Op { started: started - epoch, latency: started.elapsed() });
                if let Some(port) = server.and_then(|p| u16::try_from(p).ok()) {
                    if log.servers.last() != Some(&port) {
                        log.servers.push(port);
                    }
                }
            }
            Err(e) => {
                log.lock().error = Some(format!("{} {reader}, read {round}: {e}", kind(standby)));
                return;
            }
        }
        tokio::time::sleep(READER_PACE).await;
    }
}

fn kind(standby: bool) -> &'static str {
    if standby {
        "dashboard reader (standby listener)"
    } else {
        "reader"
    }
}

/// The acknowledged journals missing from `database`, or without their three lines.
pub async fn lost_journals(database: &Client, acked: &[i64]) -> Result<Vec<i64>, DemoError> {
    let sql = "SELECT k.id FROM pg_catalog.unnest($1::int8[]) AS k(id)
                WHERE NOT EXISTS (SELECT 1 FROM public.journals j WHERE j.id = k.id)
                   OR (SELECT count(*) FROM public.ledger_lines l WHERE l.journal_id = k.id) <> 3
                ORDER BY k.id";
    let rows = database.query(sql, &[&acked]).await.map_err(DemoError::sql("looking up the acknowledged journals"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
