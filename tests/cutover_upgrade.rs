//! Major-version upgrades with no restart: blue on PostgreSQL 13 to green on 17, and 15 to
//! 18 (every server from npm; the client programs are the system's), writers through the sidecars
//! across catch-up, cutover, rollback, a second cutover and promote, every acknowledged
//! write checked key by key; the settings and prepared statements of a psql session and
//! of a tokio-postgres session carried across every version change. A session that set a
//! setting green lacks (`force_parallel_mode`, gone in 16) holds the cutover up, by name,
//! before anything is fenced, until it resets it.

mod flip_support;
mod support;

use flip_support::{controller, pace, rows, text, wait_for_progress, writers, Fleet, DB};
use support::{pgversions, ClusterOptions, PsqlSession};

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
    let mut psql = PsqlSession::start(&fleet.sidecars[0].conninfo(flip_support::APP, DB));
    psql.run(
        "SET work_mem = '3MB';\nSET search_path = pg_catalog, public;\n\
         PREPARE next_of(int) AS SELECT $1 + 1, current_setting('server_version_num');",
    );
    let check_psql = |psql: &mut PsqlSession, major: u32| {
        let out = psql.run("SHOW work_mem;\nSHOW search_path;\nEXECUTE next_of(41);");
        assert_eq!(out.len(), 3, "psql on {major}: {out:?}; stderr:\n{}", psql.errors());
        assert_eq!(out[..2], ["3MB", "pg_catalog, public"], "psql's settings on {major}");
        assert!(out[2].starts_with(&format!("42|{major}")), "psql's prepared statement on {major}: {}", out[2]);
        assert_eq!(psql.errors(), "", "psql on {major}");
    };
    check(blue);
    check_psql(&mut psql, blue);

    // A session with a setting green lacks keeps the flip from starting, by name.
    let mut holdout = PsqlSession::start(&fleet.sidecars[1].conninfo(flip_support::APP, DB));
    holdout.run("SET force_parallel_mode = on;");
    let out = controller(&plan, &["run", "--until", "cutover"]);
    assert!(!out.status.success(), "the cutover went ahead:\n{}", text(&out));
    assert!(text(&out).contains("force_parallel_mode"), "{}", text(&out));
    assert_eq!(fleet.actives(), ["blue", "blue"]);
    holdout.run("RESET force_parallel_mode;");

    for (args, serving) in
        [(&["run", "--until", "cutover"][..], green), (&["rollback"], blue), (&["run", "--until", "cutover"], green)]
    {
        pace(&writers, 400);
        let out = controller(&plan, args);
        pace(&writers, 100);
        assert!(out.status.success(), "{blue} -> {green}, {args:?}:\n{}", text(&out));
        check(serving);
        check_psql(&mut psql, serving);
        assert_eq!(holdout.run("SELECT current_setting('server_version_num')::int / 10000;"), [serving.to_string()]);
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
