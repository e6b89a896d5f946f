//! tokio-postgres through the proxy: extended protocol, reused prepared statements,
//! COPY, LISTEN/NOTIFY, cancel, 16 MB values, pipelining and transactions.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::time::Duration;
use support::{shared_cluster, Proxy};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};

/// Awaits `fut`, panicking after `seconds` so a stuck proxy fails the test instead
/// of hanging it.
async fn within<T>(seconds: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {seconds} s"))
}

async fn connect(proxy: &Proxy) -> Client {
    let (client, connection) =
        within(20, "connect", tokio_postgres::connect(&proxy.tokio_config("postgres", "postgres"), NoTls))
            .await
            .expect("connect through the proxy");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A client whose notifications are delivered on the returned channel.
async fn connect_listening(proxy: &Proxy) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Notification>) {
    let (client, mut connection) =
        within(20, "connect", tokio_postgres::connect(&proxy.tokio_config("postgres", "postgres"), NoTls))
            .await
            .expect("connect through the proxy");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    (client, rx)
}

#[tokio::test]
async fn extended_protocol_parameters_and_types() {
    let proxy = Proxy::start(shared_cluster());
    let client = connect(&proxy).await;
    let row = within(
        20,
        "typed query",
        client.query_one(
            "SELECT $1::text || '!', $2::int8 * 2, $3::float8 / 2, NOT $4::bool, \
             $5::bytea, $6::text IS NULL",
            &[&"héllo", &21i64, &5.0f64, &false, &vec![0u8, 1, 2, 255], &None::<&str>],
        ),
    )
    .await
    .expect("typed query");
    assert_eq!(row.get::<_, String>(0), "héllo!");
    assert_eq!(row.get::<_, i64>(1), 42);
    assert_eq!(row.get::<_, f64>(2), 2.5);
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, Vec<u8>>(4), vec![0u8, 1, 2, 255]);
    assert!(row.get::<_, bool>(5));

    let rows = within(
        20,
        "multi-row query",
        client.query("SELECT g, g * $1::int4 FROM generate_series(1, 1000) g ORDER BY g", &[&3i32]),
    )
    .await
    .expect("multi-row query");
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[999].get::<_, i32>(1), 3000);

    let err = within(20, "bad query", client.query("SELECT * FROM no_such_table", &[]))
        .await
        .expect_err("query on a missing table must fail");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    let row = within(20, "after error", client.query_one("SELECT 7::int4", &[])).await.expect("query after an error");
    assert_eq!(row.get::<_, i32>(0), 7);
}

#[tokio::test]
async fn named_prepared_statements_are_reused() {
    let proxy = Proxy::start(shared_cluster());
    let client = connect(&proxy).await;
    let add = within(20, "prepare", client.prepare("SELECT $1::int4 + 1")).await.expect("prepare add");
    let concat = within(20, "prepare", client.prepare("SELECT $1::text || $2::text")).await.expect("prepare concat");
    for i in 0..500i32 {
        let row = within(20, "execute add", client.query_one(&add, &[&i])).await.expect("execute add");
        assert_eq!(row.get::<_, i32>(0), i + 1);
        let suffix = i.to_string();
        let row =
            within(20, "execute concat", client.query_one(&concat, &[&"n", &suffix])).await.expect("execute concat");
        assert_eq!(row.get::<_, String>(0), format!("n{i}"));
    }
    let prepared: i64 = within(
        20,
        "count prepared",
        client.query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement IN \
             ('SELECT $1::int4 + 1', 'SELECT $1::text || $2::text')",
            &[],
        ),
    )
    .await
    .expect("count prepared statements")
    .get(0);
    assert_eq!(prepared, 2, "both named statements live on the server");
}

#[tokio::test]
async fn copy_in_and_out() {
    const ROWS: i64 = 20_000;
    let cluster = shared_cluster();
    cluster.psql("CREATE TABLE tp_copy (id int8 PRIMARY KEY, v text NOT NULL)");
    let proxy = Proxy::start(cluster);
    let client = connect(&proxy).await;

    let mut data = String::new();
    for id in 1..=ROWS {
        data.push_str(&format!("{id}\tvalue {id}\n"));
    }
    let sink = within(20, "copy in", client.copy_in("COPY tp_copy FROM STDIN")).await.expect("start COPY FROM STDIN");
    futures_util::pin_mut!(sink);
    for chunk in data.as_bytes().chunks(64 * 1024) {
        within(20, "copy send", sink.send(bytes::Bytes::copy_from_slice(chunk))).await.expect("send copy data");
    }
    let copied = within(20, "copy finish", sink.finish()).await.expect("finish COPY");
    assert_eq!(copied, ROWS as u64);

    let row = within(20, "check", client.query_one("SELECT count(*), sum(id)::int8 FROM tp_copy", &[]))
        .await
        .expect("count copied rows");
    assert_eq!(row.get::<_, i64>(0), ROWS);
    assert_eq!(row.get::<_, i64>(1), ROWS * (ROWS + 1) / 2);

    let stream = within(20, "copy out", client.copy_out("COPY (SELECT id, v FROM tp_copy ORDER BY id) TO STDOUT"))
        .await
        .expect("start COPY TO STDOUT");
    futures_util::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = within(20, "copy out data", stream.next()).await {
        out.extend_from_slice(&chunk.expect("copy out chunk"));
    }
    assert!(out == data.as_bytes(), "COPY TO STDOUT differs from the input");

    let sink =
        within(20, "copy in", client.copy_in("COPY tp_copy FROM STDIN")).await.expect("start a second COPY FROM STDIN");
    futures_util::pin_mut!(sink);
    within(20, "copy send", sink.send(bytes::Bytes::from_static(b"999999\tok\nnot-a-number\tbad\n")))
        .await
        .expect("send bad copy data");
    let err = within(20, "bad copy finish", sink.finish()).await.expect_err("COPY of a non-number into int8 must fail");
    assert_eq!(err.code(), Some(&SqlState::INVALID_TEXT_REPRESENTATION));
    let count: i64 = within(20, "count", client.query_one("SELECT count(*) FROM tp_copy", &[]))
        .await
        .expect("query after a failed COPY")
        .get(0);
    assert_eq!(count, ROWS, "the failed COPY added nothing");
}

#[tokio::test]
async fn listen_notify_is_delivered_to_an_idle_session() {
    let proxy = Proxy::start(shared_cluster());
    let (listener, mut notifications) = connect_listening(&proxy).await;
    within(20, "listen", listener.batch_execute("LISTEN pgflip_chan")).await.expect("LISTEN");
    let notifier = connect(&proxy).await;
    let long_payload = "x".repeat(7000);
    within(
        20,
        "notify",
        notifier.batch_execute(&format!(
            "NOTIFY pgflip_chan, 'first'; SELECT pg_notify('pgflip_chan', 'second'); \
             NOTIFY other_chan, 'ignored'; NOTIFY pgflip_chan, '{long_payload}'"
        )),
    )
    .await
    .expect("NOTIFY");
    let mut received = Vec::new();
    for _ in 0..3 {
        let n = within(10, "notification", notifications.recv()).await.expect("notification channel closed");
        assert_eq!(n.channel(), "pgflip_chan");
        received.push(n.payload().to_string());
    }
    assert_eq!(received, vec!["first".to_string(), "second".into(), long_payload]);

    within(20, "unlisten", listener.batch_execute("UNLISTEN pgflip_chan")).await.expect("UNLISTEN");
    within(20, "notify", notifier.batch_execute("NOTIFY pgflip_chan, 'after unlisten'")).await.expect("NOTIFY");
    within(20, "ping", listener.batch_execute("SELECT 1")).await.expect("query after UNLISTEN");
    assert!(notifications.try_recv().is_err(), "no notification after UNLISTEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_a_running_query() {
    let proxy = Proxy::start(shared_cluster());
    let client = connect(&proxy).await;
    let watcher = connect(&proxy).await;
    let token = client.cancel_token();
    let pid: i32 =
        within(20, "pid", client.query_one("SELECT pg_backend_pid()", &[])).await.expect("pg_backend_pid").get(0);
    let running = tokio::spawn(async move {
        let result = client.simple_query("SELECT pg_sleep(30)").await;
        (client, result)
    });
    let started = within(20, "wait for pg_sleep", async {
        loop {
            let active: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 \
                     AND state = 'active' AND query = 'SELECT pg_sleep(30)'",
                    &[&pid],
                )
                .await
                .expect("poll pg_stat_activity")
                .get(0);
            if active == 1 {
                break true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(started);
    within(10, "cancel request", token.cancel_query(NoTls)).await.expect("send CancelRequest through the proxy");
    let (client, result) = within(10, "cancelled query", running).await.expect("query task");
    let err = result.expect_err("the cancelled query must fail");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    let row = within(20, "after cancel", client.query_one("SELECT 5::int4", &[])).await.expect("query after cancel");
    assert_eq!(row.get::<_, i32>(0), 5);
}

#[tokio::test]
async fn sixteen_megabyte_bytea_parameter_and_result() {
    const SIZE: usize = 16 * 1024 * 1024;
    let pattern = |i: usize| ((i * 31 + 7) % 256) as u8;
    let proxy = Proxy::start(shared_cluster());
    let client = connect(&proxy).await;
    let big: Vec<u8> = (0..SIZE).map(pattern).collect();

    let row = within(
        60,
        "bytea parameter",
        client.query_one(
            "SELECT length($1::bytea), get_byte($1::bytea, 123457), get_byte($1::bytea, $2)",
            &[&big, &((SIZE - 1) as i32)],
        ),
    )
    .await
    .expect("16 MB parameter");
    assert_eq!(row.get::<_, i32>(0), SIZE as i32);
    assert_eq!(row.get::<_, i32>(1), pattern(123_457) as i32);
    assert_eq!(row.get::<_, i32>(2), pattern(SIZE - 1) as i32);

    let row = within(
        60,
        "bytea result",
        client.query_one("SELECT decode(repeat('0123456789abcdef', $1), 'hex')", &[&((SIZE / 8) as i32)]),
    )
    .await
    .expect("16 MB result");
    let result: Vec<u8> = row.get(0);
    assert_eq!(result.len(), SIZE);
    let unit = [0x01u8, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    assert!(result.chunks(8).all(|chunk| chunk == unit), "16 MB result content");

    let row = within(60, "bytea echo", client.query_one("SELECT $1::bytea", &[&big])).await.expect("16 MB echo");
    let echoed: Vec<u8> = row.get(0);
    assert!(echoed == big, "16 MB value changed on the round trip");
}

#[tokio::test]
async fn pipelined_queries_on_one_client() {
    let proxy = Proxy::start(shared_cluster());
    let client = connect(&proxy).await;
    let double = within(20, "prepare", client.prepare("SELECT $1::int4 * 2")).await.expect("prepare");
    let queries = (0..50i32).map(|i| {
        let (client, double) = (&client, &double);
        async move { client.query_one(double, &[&i]).await }
    });
    let rows = within(30, "pipelined", futures_util::future::try_join_all(queries)).await.expect("pipelined queries");
    let values: Vec<i32> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(values, (0..50).map(|i| i * 2).collect::<Vec<_>>());

    let divide = within(20, "prepare", client.prepare("SELECT 100 / $1::int4")).await.expect("prepare");
    let queries = (0..10i32).map(|i| {
        let (client, divide) = (&client, &divide);
        async move { client.query_one(divide, &[&i]).await }
    });
    let results = within(30, "pipelined", futures_util::future::join_all(queries)).await;
    let err = results[0].as_ref().expect_err("100 / 0 must fail");
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    for (i, result) in results.iter().enumerate().skip(1) {
        let row = result.as_ref().expect("pipelined query after the failed one");
        assert_eq!(row.get::<_, i32>(0), 100 / i as i32);
    }

    let (a, b, c) = within(30, "try_join", async {
        tokio::try_join!(
            client.query_one("SELECT pg_sleep(0.2)::text || 'a'", &[]),
            client.simple_query("SELECT 'b'"),
            client.query_one("SELECT 'c'::text", &[]),
        )
    })
    .await
    .expect("concurrent queries");
    assert_eq!(a.get::<_, String>(0), "a");
    match &b[1] {
        tokio_postgres::SimpleQueryMessage::Row(row) => assert_eq!(row.get(0), Some("b")),
        other => panic!("expected a row, got {other:?}"),
    }
    assert_eq!(c.get::<_, String>(0), "c");
}

#[tokio::test]
async fn transactions_commit_and_roll_back() {
    let cluster = shared_cluster();
    cluster.psql("CREATE TABLE tp_tx (id int PRIMARY KEY)");
    let proxy = Proxy::start(cluster);
    let mut client = connect(&proxy).await;

    let tx = client.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO tp_tx VALUES (1)", &[]).await.expect("insert");
    tx.rollback().await.expect("ROLLBACK");
    assert_eq!(read_ids(&client).await, Vec::<i32>::new());

    let tx = client.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO tp_tx VALUES (2)", &[]).await.expect("insert");
    tx.commit().await.expect("COMMIT");
    assert_eq!(read_ids(&client).await, vec![2]);

    let mut tx = client.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO tp_tx VALUES (3)", &[]).await.expect("insert");
    let savepoint = tx.transaction().await.expect("SAVEPOINT");
    savepoint.execute("INSERT INTO tp_tx VALUES (4)", &[]).await.expect("insert in savepoint");
    savepoint.rollback().await.expect("ROLLBACK TO SAVEPOINT");
    tx.commit().await.expect("COMMIT");
    assert_eq!(read_ids(&client).await, vec![2, 3]);

    let tx = client.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO tp_tx VALUES (5)", &[]).await.expect("insert");
    let err = tx.execute("INSERT INTO tp_tx VALUES (2)", &[]).await.expect_err("duplicate key");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let err = tx.execute("SELECT 1", &[]).await.expect_err("statement in a failed transaction");
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    tx.rollback().await.expect("ROLLBACK");
    assert_eq!(read_ids(&client).await, vec![2, 3]);
}

async fn read_ids(client: &Client) -> Vec<i32> {
    within(20, "read ids", client.query("SELECT id FROM tp_tx ORDER BY id", &[]))
        .await
        .expect("read tp_tx")
        .iter()
        .map(|row| row.get::<_, i32>(0))
        .collect()
}
