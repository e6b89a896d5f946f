//! Clusters of other PostgreSQL major versions (server programs from npm, see
//! `support::pgversions`): a 13 and an 18 start like the default cluster, and logical
//! replication runs from the 13 one into the 18 one.

mod support;

use std::time::Duration;
use support::{pgversions, wait_until, Cluster, ClusterOptions};

#[test]
fn logical_replication_from_13_into_18() {
    let (bin13, bin18) = match (pgversions::server_bin(13), pgversions::server_bin(18)) {
        (Ok(bin13), Ok(bin18)) => (bin13, bin18),
        (Err(message), _) | (_, Err(message)) => {
            eprintln!("skipped: {message}");
            return;
        }
    };
    let old = Cluster::start_with(ClusterOptions::default().bin_dir(bin13));
    let new = Cluster::start_with(ClusterOptions::default().bin_dir(bin18));
    for (cluster, major) in [(&old, "13"), (&new, "18")] {
        let version = cluster.psql("SHOW server_version_num");
        assert!(
            version.len() == 6 && version.starts_with(major),
            "PostgreSQL {major} cluster reports server_version_num {version}"
        );
        assert_eq!(cluster.psql("SHOW wal_level"), "logical", "PostgreSQL {major}");
    }

    old.psql("CREATE TABLE items (id int PRIMARY KEY, note text)");
    old.psql("INSERT INTO items VALUES (1, 'before the subscription')");
    old.psql("CREATE PUBLICATION items_pub FOR TABLE items");
    new.psql("CREATE TABLE items (id int PRIMARY KEY, note text)");
    new.psql(&format!(
        "CREATE SUBSCRIPTION items_sub CONNECTION '{}' PUBLICATION items_pub",
        old.conninfo("postgres", "postgres")
    ));

    let copied = wait_until(Duration::from_secs(60), || {
        let rows = new.psql("SELECT note FROM items WHERE id = 1");
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(
        copied.as_deref(),
        Some("before the subscription"),
        "initial copy from 13 into 18; 18's log:\n{}",
        new.log_tail(30)
    );

    old.psql("INSERT INTO items VALUES (2, 'streamed')");
    let streamed = wait_until(Duration::from_secs(60), || {
        let rows = new.psql("SELECT note FROM items WHERE id = 2");
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(
        streamed.as_deref(),
        Some("streamed"),
        "row streamed from 13 into 18; 18's log:\n{}\n13's log:\n{}",
        new.log_tail(30),
        old.log_tail(30)
    );
    new.psql("DROP SUBSCRIPTION items_sub");
}
