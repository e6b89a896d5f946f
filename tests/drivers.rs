//! Real drivers through the sidecar across switches between blue and a green restored from
//! blue's dump (every user type and table has another OID there): psycopg 3 and asyncpg
//! (PyPI), node-postgres (npm), pgjdbc (Debian's package) and tokio-postgres. Each keeps one
//! connection, with no error and no reconnect, through four switches and a fifth asked for
//! while it is inside a transaction, exercising its own statement and type caches, binary
//! results and parameters of an enum, a composite with an enum field, a domain and arrays of
//! each, LISTEN/NOTIFY, COPY, a cancel, and batches or pipelines (see each script in
//! `tests/drivers/`).

mod driver_support;
mod support;

use std::process::Command;

use driver_support::{clusters, node_packages, pgjdbc_jar, proxy, python_packages, run_driver, script};

fn dsn(proxy: &support::Proxy) -> String {
    format!("postgresql://postgres@127.0.0.1:{}/postgres", proxy.port())
}

fn python(file: &str, tag: &str) {
    let Some(packages) = python_packages() else { return };
    clusters();
    let proxy = proxy();
    let mut command = Command::new("python3");
    let path = format!("{}:{}", packages.display(), script("").display());
    command.env("PYTHONPATH", path).arg(script(file)).arg(dsn(&proxy)).arg(tag);
    let sides = run_driver(command, &proxy);
    assert_eq!(sides, ["green", "blue", "green", "blue", "green"]);
}

#[test]
fn asyncpg_keeps_its_caches_across_switches() {
    python("asyncpg_driver.py", "asyncpg");
}

#[test]
fn psycopg_keeps_its_types_across_switches() {
    python("psycopg_driver.py", "psycopg");
}

#[test]
fn node_postgres_keeps_its_statements_across_switches() {
    let Some(packages) = node_packages() else { return };
    clusters();
    let proxy = proxy();
    let mut command = Command::new("node");
    command.env("NODE_PATH", packages.join("node_modules")).arg(script("pg_driver.js")).arg(dsn(&proxy)).arg("nodepg");
    let sides = run_driver(command, &proxy);
    assert_eq!(sides.len(), 5);
}

#[test]
fn pgjdbc_keeps_its_type_oids_across_switches() {
    let Some(jar) = pgjdbc_jar() else { return };
    clusters();
    let proxy = proxy();
    let url = format!("jdbc:postgresql://127.0.0.1:{}/postgres?user=postgres", proxy.port());
    let mut command = Command::new("java");
    command.arg("-cp").arg(jar).arg(script("PgjdbcDriver.java")).arg(url).arg("pgjdbc");
    let sides = run_driver(command, &proxy);
    assert_eq!(sides.len(), 5);
}

mod tokio_driver {
    //! tokio-postgres, in this process: its type cache (it looks types up by OID and keeps
    //! what it learned for the connection), binary results and parameters of the user types,
    //! a statement prepared once and run across switches, LISTEN/NOTIFY, COPY, a cancel,
    //! pipelined queries and a transaction open when a switch is asked for.

    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use postgres_types::{FromSql, ToSql};
    use tokio_postgres::{AsyncMessage, NoTls};

    use super::driver_support::{clusters, home_level_oid, proxy, switch};

    #[derive(Debug, Clone, Copy, PartialEq, Eq, ToSql, FromSql)]
    #[postgres(name = "mood")]
    enum Mood {
        #[postgres(name = "sad")]
        Sad,
        #[postgres(name = "ok")]
        Ok,
        #[postgres(name = "happy")]
        Happy,
    }

    #[derive(Debug, Clone, PartialEq, Eq, ToSql, FromSql)]
    #[postgres(name = "pair")]
    struct Pair {
        m: Mood,
        n: i32,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, ToSql, FromSql)]
    #[postgres(name = "score")]
    struct Score(i32);

    /// A type first met away from home: tokio-postgres looks it up by OID (its typeinfo
    /// statements, an oid parameter) and must learn it under its home OID; the catalogs
    /// answer home OIDs by name and by OID.
    async fn meet_level(client: &tokio_postgres::Client) {
        let home = home_level_oid();
        let row = client.query_one("SELECT 'high'::level, ARRAY['low']::level[]", &[]).await.expect("a level");
        let (level, levels) = (row.columns()[0].type_(), row.columns()[1].type_());
        assert_eq!((level.name(), level.oid()), ("level", home));
        assert_eq!(levels.name(), "_level");
        assert!(matches!(level.kind(), postgres_types::Kind::Enum(labels) if labels == &["low", "high"]), "{level:?}");
        let by_name = "SELECT oid FROM pg_catalog.pg_type WHERE typname = 'level'";
        assert_eq!(client.query_one(by_name, &[]).await.expect("by name").get::<_, u32>(0), home);
        let by_oid = "SELECT typname::text FROM pg_catalog.pg_type WHERE oid = $1";
        assert_eq!(client.query_one(by_oid, &[&home]).await.expect("by OID").get::<_, String>(0), "level");
    }

    #[test]
    fn tokio_postgres_keeps_its_type_cache_across_switches() {
        clusters();
        let proxy = proxy();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let dsn = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", proxy.port());
            let (mut client, mut connection) = tokio_postgres::connect(&dsn, NoTls).await.expect("connect");
            let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(AsyncMessage::Notification(n)) => {
                            let _ = notes_tx.send(n.payload().to_string());
                        }
                        Ok(_) => {}
                        Err(e) => panic!("the connection failed: {e}"),
                    }
                }
            });
            client.batch_execute("LISTEN driver_tokio").await.expect("LISTEN");
            let row_statement =
                client.prepare("SELECT m, p, s, ms, ps, ss FROM readings WHERE id = 1").await.expect("prepare");
            let mut side = "blue";
            for round in 0..4 {
                if round == 1 {
                    meet_level(&client).await;
                }
                let row = client.query_one(&row_statement, &[]).await.expect("the row");
                assert_eq!(row.get::<_, Mood>(0), Mood::Happy);
                assert_eq!(row.get::<_, Pair>(1), Pair { m: Mood::Ok, n: 7 });
                assert_eq!(row.get::<_, Score>(2), Score(3));
                assert_eq!(row.get::<_, Vec<Mood>>(3), [Mood::Sad, Mood::Happy]);
                assert_eq!(row.get::<_, Vec<Pair>>(4), [Pair { m: Mood::Sad, n: 1 }]);
                assert_eq!(row.get::<_, Vec<Score>>(5), [Score(1), Score(2)]);
                let pair = Pair { m: Mood::Happy, n: round };
                let back = client
                    .query_one(
                        "INSERT INTO readings (m, p, s, ms, ps, ss, who) VALUES ($1, $2, $3, $4, $5, $6, 'tokio') RETURNING p, ps",
                        &[&Mood::Ok, &pair, &Score(5), &vec![Mood::Sad], &vec![pair.clone()], &vec![Score(4)]],
                    )
                    .await
                    .expect("insert with user-type parameters");
                assert_eq!((back.get::<_, Pair>(0), back.get::<_, Vec<Pair>>(1)), (pair.clone(), vec![pair]));
                // Pipelined: the queries go out before the first answer comes back.
                let numbers: Vec<i32> = (0..5).collect();
                let params: Vec<[&(dyn ToSql + Sync); 1]> = numbers.iter().map(|n| [n as &(dyn ToSql + Sync)]).collect();
                let insert = "INSERT INTO plain (who, n) VALUES ('tokio', $1)";
                let queries = params.iter().map(|p| client.execute(insert, p));
                for done in futures_util::future::join_all(queries).await {
                    done.expect("pipelined insert");
                }
                let sink = client.copy_in("COPY plain (who, n) FROM STDIN").await.expect("copy in");
                futures_util::pin_mut!(sink);
                sink.send(bytes::Bytes::from(format!("tokio\t{round}\n"))).await.expect("copy data");
                assert_eq!(sink.finish().await.expect("copy done"), 1);
                client.batch_execute(&format!("NOTIFY driver_tokio, 'round {round}'")).await.expect("NOTIFY");
                let token = client.cancel_token();
                let canceller = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    token.cancel_query(NoTls).await
                });
                let err = client.batch_execute("SELECT pg_sleep(5)").await.expect_err("cancelled");
                assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED), "{err}");
                canceller.await.expect("canceller").expect("cancel sent");
                side = if side == "blue" { "green" } else { "blue" };
                switch(&proxy, side);
            }
            // A switch asked for while a transaction is open waits for its end.
            let admin = proxy.admin_port();
            let transaction = client.transaction().await.expect("BEGIN");
            transaction.execute("INSERT INTO plain (who, n) VALUES ('tokio', -1)", &[]).await.expect("insert");
            let switching = tokio::task::spawn_blocking(move || {
                let body = r#"{"to": "green", "drain_timeout_ms": 10000}"#;
                super::support::http::request_to(([127, 0, 0, 1], admin).into(), "POST", "/v1/switch", &[], body)
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            transaction.commit().await.expect("COMMIT");
            let (status, answer) = switching.await.expect("switch task").expect("switch");
            assert_eq!(status, 200, "{answer}");
            assert!(answer.contains("\"failed\":0") && answer.contains("\"moved\":1"), "{answer}");
            let row = client.query_one(&row_statement, &[]).await.expect("the row on green");
            assert_eq!(row.get::<_, Pair>(1), Pair { m: Mood::Ok, n: 7 });
            for round in 0..4 {
                let note = tokio::time::timeout(Duration::from_secs(5), notes.recv()).await.expect("a notification");
                assert_eq!(note.as_deref(), Some(format!("round {round}").as_str()));
            }
        });
    }
}
