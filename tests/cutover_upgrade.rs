//! Major-version upgrades with no restart: blue on PostgreSQL 13 to green on 17, and 15 to
//! 18 (every server from npm; the client programs are the system's), writers through the sidecars
//! across catch-up, cutover, rollback, a second cutover and promote, every acknowledged
//! write checked key by key; a session's setting and prepared statement carried across
//! every version change.

mod flip_support;
mod support;

use flip_support::{controller, pace, rows, text, wait_for_progress, writers, Fleet, DB};
use support::{pgversions, ClusterOptions};

fn upgrade(blue: u32, green: u32) {
    let (blue_bin, green_bin) = match (pgversions::server_bin(blue), pgversions::server_bin(green)) {
        (Ok(b), Ok(g)) => (b, g),
        (Err(message), _) | (_, Err(message)) => return eprintln!("skipped: {message}"),
    };
    let fleet =
        Fleet::start_on(2, ClusterOptions::default().bin_dir(blue_bin), ClusterOptions::default().bin_dir(green_bin));
    for (cluster, major) in [(&fleet.blue, blue), (&fleet.green, green)] {
        let version = cluster.psql("SHOW server_version_num");
        assert!(version.starts_with(&major.to_string()), "PostgreSQL {major} reports {version}");
    }
    let plan = fleet.plan(&[], "");
    let writers = writers(&fleet);
    wait_for_progress(&writers, 3);
    // A session with its own setting and a prepared statement, kept across every flip.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let conninfo = fleet.sidecars[1].conninfo(flip_support::APP, DB);
    let (session, prepared) = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute("SET work_mem = '7MB'").await.expect("SET");
        let prepared =
            client.prepare("SELECT $1::int + 1, current_setting('server_version_num')").await.expect("prepare");
        (client, prepared)
    });
    let check = |expected_major: u32| {
        runtime.block_on(async {
            let work_mem: String = session.query_one("SHOW work_mem", &[]).await.expect("SHOW").get(0);
            assert_eq!(work_mem, "7MB", "the session's setting after the flip to {expected_major}");
            let row = session.query_one(&prepared, &[&41i32]).await.expect("the prepared statement");
            assert_eq!(row.get::<_, i32>(0), 42);
            let version: String = row.get(1);
            assert!(version.starts_with(&expected_major.to_string()), "served by {version}");
        })
    };
    check(blue);
    for (args, serving) in
        [(&["run", "--until", "cutover"][..], green), (&["rollback"], blue), (&["run", "--until", "cutover"], green)]
    {
        pace(&writers, 400);
        let out = controller(&plan, args);
        pace(&writers, 100);
        assert!(out.status.success(), "{blue} -> {green}, {args:?}:\n{}", text(&out));
        check(serving);
        wait_for_progress(&writers, 3);
    }
    assert_eq!(fleet.actives(), ["green", "green"]);
    let out = controller(&plan, &["promote"]);
    assert!(out.status.success(), "promote:\n{}", text(&out));
    wait_for_progress(&writers, 2);
    let stopped: Vec<(Vec<i32>, Vec<String>)> = writers.into_iter().map(|w| w.stop()).collect();
    let on_green = rows(&fleet.green);
    for (i, (acked, errors)) in stopped.into_iter().enumerate() {
        assert!(errors.is_empty(), "writer {i} saw errors: {errors:?}");
        let missing: Vec<i32> = acked.iter().copied().filter(|seq| !on_green.contains(&(i as i32, *seq))).collect();
        assert!(
            missing.is_empty(),
            "{blue} -> {green}: writer {i}: acknowledged {} commits, {missing:?} not on green",
            acked.len()
        );
    }
}

#[test]
fn blue_13_to_green_17() {
    upgrade(13, 17);
}

#[test]
fn blue_15_to_green_18() {
    upgrade(15, 18);
}
