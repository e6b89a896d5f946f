//! Sequences at a flip move only forward: the side taking over gets the old side's
//! position unless it is further along already (a smoke test drew values there), in the
//! direction of each sequence's increment; a cycling sequence takes the old side's value.

mod support;

use pgflip::controller::sequences::{self, Copied};
use support::blue_and_green;
use tokio_postgres::NoTls;

const SEQUENCES: &str = "
DROP SCHEMA IF EXISTS seqs CASCADE;
CREATE SCHEMA seqs;
CREATE SEQUENCE seqs.behind;
CREATE SEQUENCE seqs.ahead;
CREATE SEQUENCE seqs.down INCREMENT BY -1 MINVALUE -1000000 MAXVALUE -1 START WITH -1;
CREATE SEQUENCE seqs.untouched;
CREATE SEQUENCE seqs.cycling MAXVALUE 10 CYCLE;
";

fn values(cluster: &support::Cluster) -> String {
    let names = ["ahead", "behind", "cycling", "down", "untouched"];
    names
        .iter()
        .map(|n| {
            format!("{n}={}", cluster.psql(&format!("SELECT last_value || '/' || is_called FROM seqs.{n}")).trim())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn sequences_move_only_forward() {
    let (blue, green) = blue_and_green();
    for cluster in [blue, green] {
        cluster.psql(SEQUENCES);
    }
    // Blue served: it drew 100 from behind and ahead, 50 downwards, 7 cycling.
    blue.psql("SELECT nextval('seqs.behind'), nextval('seqs.ahead') FROM generate_series(1, 100)");
    blue.psql("SELECT nextval('seqs.down') FROM generate_series(1, 50)");
    blue.psql("SELECT nextval('seqs.cycling') FROM generate_series(1, 7)");
    // Green: a smoke test drew 500 from ahead, 3 from behind, 9 cycling.
    green.psql("SELECT nextval('seqs.ahead') FROM generate_series(1, 500)");
    green.psql("SELECT nextval('seqs.behind') FROM generate_series(1, 3)");
    green.psql("SELECT nextval('seqs.cycling') FROM generate_series(1, 9)");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let copied: Copied = runtime.block_on(async {
        let connect = |conninfo: String| async move {
            let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await.expect("connect");
            tokio::spawn(connection);
            client
        };
        let old = connect(blue.conninfo("postgres", "postgres")).await;
        let new = connect(green.conninfo("postgres", "postgres")).await;
        sequences::copy(&old, "blue", &new, "green").await.expect("sequences")
    });
    assert_eq!(copied.kept_ahead, ["seqs.ahead"]);
    assert_eq!(copied.cycling, ["seqs.cycling"]);
    assert_eq!(copied.advanced, 2, "behind and down: {copied:?}");
    assert_eq!(
        values(green),
        "ahead=500/true behind=100/true cycling=7/true down=-50/true untouched=1/false",
        "green after the flip (blue: {})",
        values(blue)
    );
    // The next insert on green does not collide with anything blue handed out.
    assert_eq!(green.psql("SELECT nextval('seqs.behind')").trim(), "101");
    assert_eq!(green.psql("SELECT nextval('seqs.ahead')").trim(), "501");
    assert_eq!(green.psql("SELECT nextval('seqs.down')").trim(), "-51");
}
