//! What the capture tests share: the cluster with their roles, schemas and enum, tokio-postgres
//! connections that know their baseline, and a raw connection's simple Query.

use std::sync::OnceLock;
use std::time::Duration;

use pgflip::proxy::capture::{
    baseline_query, capture_query, details_query, parse_capture_row, Baseline, SessionSnapshot,
};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::support::{self, shared_cluster, RawConn};

pub const APP_USER: &str = "capture_app";
pub const APP_PASSWORD: &str = "capture-secret";
pub const SEARCH_PATH: &str = r#""we""ird, sch", "My Schema", "$user", public"#;
pub const CUSTOM: [&str; 3] = ["myapp.tenant", "myapp.region", "myapp.unset"];

/// Roles, schemas and the enum type, made once per test process.
pub fn setup() -> &'static support::Cluster {
    static DONE: OnceLock<()> = OnceLock::new();
    let cluster = shared_cluster();
    DONE.get_or_init(|| {
        cluster.psql(&format!(
            r#"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';
               CREATE ROLE "Tenant Role";
               GRANT "Tenant Role" TO {APP_USER};
               CREATE SCHEMA "we""ird, sch";
               CREATE SCHEMA "My Schema";
               CREATE TYPE "My Schema"."Mood" AS ENUM ('sad', 'ok', 'happy');
               GRANT USAGE ON SCHEMA "we""ird, sch", "My Schema" TO PUBLIC;
               CREATE SCHEMA shadow;
               CREATE FUNCTION shadow.current_setting(pg_catalog.text) RETURNS pg_catalog.text
                   LANGUAGE sql AS $$ SELECT 'shadowed'::pg_catalog.text $$;
               CREATE FUNCTION shadow.never(pg_catalog.text, pg_catalog.text) RETURNS pg_catalog.bool
                   LANGUAGE sql AS $$ SELECT false $$;
               CREATE OPERATOR shadow.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text,
                   FUNCTION = shadow.never);
               CREATE DOMAIN shadow.text AS pg_catalog.int4;
               GRANT USAGE ON SCHEMA shadow TO PUBLIC;"#
        ));
    });
    cluster
}

/// A client connection and its settings before it ran anything (as the proxy reads them
/// on every connection it opens).
pub struct Conn {
    pub client: Client,
    pub baseline: Baseline,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

pub async fn connect(cluster: &support::Cluster) -> Conn {
    let conninfo = format!("{} password={APP_PASSWORD}", cluster.conninfo(APP_USER, "postgres"));
    connect_with(&conninfo).await
}

pub async fn connect_with(conninfo: &str) -> Conn {
    let (client, connection) = tokio::time::timeout(Duration::from_secs(20), tokio_postgres::connect(conninfo, NoTls))
        .await
        .expect("connect: no answer within 20 s")
        .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let baseline = all_values(&client, &baseline_query()).await;
    let baseline = Baseline::parse(baseline[0].as_deref()).expect("parse the baseline");
    Conn { client, baseline }
}

/// Runs `sql` as one simple Query; the values of every row of every result, in order.
pub async fn all_values(client: &Client, sql: &str) -> Vec<Option<String>> {
    let messages = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut values = Vec::new();
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            values.extend((0..row.len()).map(|i| row.get(i).map(str::to_string)));
        }
    }
    values
}

pub async fn value(client: &Client, sql: &str) -> String {
    all_values(client, sql).await.into_iter().next().flatten().unwrap_or_else(|| panic!("{sql}: no value"))
}

pub async fn capture(conn: &Conn) -> SessionSnapshot {
    let custom: Vec<String> = CUSTOM.iter().map(|s| s.to_string()).collect();
    let values = all_values(conn, &capture_query(&custom, &conn.baseline)).await;
    let columns: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
    let mut snapshot = parse_capture_row(&columns, &conn.baseline).expect("parse the capture");
    if let Some((oids, temp_schema)) = snapshot.details_wanted() {
        let values = all_values(conn, &details_query(&oids, temp_schema)).await;
        let columns: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        snapshot.apply_details(&columns).expect("parse the details");
    }
    snapshot
}

/// Reads one backend message body per call from a raw connection: (tag, body).
pub fn read(conn: &mut RawConn) -> (u8, Vec<u8>) {
    let message = conn.read_message().expect("read").expect("connection open");
    (message.tag, message.body)
}

/// Sends `sql` as a simple Query on a raw connection: the values of all DataRows,
/// the first error message, and the ReadyForQuery status.
pub fn raw_query(conn: &mut RawConn, sql: &str) -> (Vec<Option<String>>, Option<String>, u8) {
    conn.send(&support::wire::query_packet(sql)).expect("send query");
    let (mut values, mut error) = (Vec::new(), None);
    loop {
        match read(conn) {
            (b'D', body) => values.extend(support::wire::parse_data_row(&body)),
            (b'E', body) => {
                error.get_or_insert(support::PgError::parse(&body).to_string());
            }
            (b'Z', body) => return (values, error, body[0]),
            _ => {}
        }
    }
}

/// The baseline of a raw connection, read now.
pub fn raw_baseline(conn: &mut RawConn) -> Baseline {
    let (values, error, _) = raw_query(conn, &baseline_query());
    assert_eq!(error, None);
    Baseline::parse(values[0].as_deref()).expect("parse the baseline")
}
