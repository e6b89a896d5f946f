//! What preflight says of server and client versions outside what pgflip supports, on real
//! servers of those versions (from npm, see `support::pgversions`): blue on 12, green on
//! 14, a pg_dump older than blue, and an extension blue has that green's server lacks.

mod support;

use std::path::PathBuf;

use pgflip::controller::preflight::{self, ClientTools, PreflightOptions, ProgramVersion, Report, Severity};
use support::{pgversions, shared_cluster, Cluster, ClusterOptions};

/// Preflight of database `database` on `blue` against `green`, judging the system's
/// client programs.
async fn preflight_of(blue: &Cluster, database: &str, green: &Cluster) -> Report {
    let (blue, green) = (blue.client(database).await, green.client("postgres").await);
    let bin = support::pg_bin();
    let options = PreflightOptions {
        app_roles: Vec::new(),
        allow_replica_identity_full: Vec::new(),
        database: database.to_owned(),
        client_tools: Some(ClientTools {
            pg_dump: ProgramVersion::probe(bin.join("pg_dump")).await,
            pg_restore: ProgramVersion::probe(bin.join("pg_restore")).await,
            found: None,
        }),
    };
    preflight::run(&blue, &green, &options).await.expect("preflight queries")
}

fn blockers(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .map(|f| format!("{} {:?}", f.message, f.items))
        .collect()
}

fn server(major: u32) -> Option<PathBuf> {
    match pgversions::server_bin(major) {
        Ok(bin) => Some(bin),
        Err(message) => {
            eprintln!("skipped: {message}");
            None
        }
    }
}

const RANGE: &str = "pgflip supports blue on PostgreSQL 13 or later and green on 15 or later";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_outside_the_supported_range_and_old_client_programs_are_refused() {
    let (Some(bin12), Some(bin14), Some(bin18)) = (server(12), server(14), server(18)) else { return };
    let v12 = Cluster::start_with(ClusterOptions::default().bin_dir(bin12));
    let v14 = Cluster::start_with(ClusterOptions::default().bin_dir(bin14));
    let v18 = Cluster::start_with(ClusterOptions::default().bin_dir(bin18));
    let v15 = shared_cluster();

    let report = preflight_of(&v12, "postgres", v15).await;
    let said = blockers(&report);
    assert!(said.iter().any(|b| b.contains("blue runs PostgreSQL 12.") && b.contains(RANGE)), "{said:?}");

    let report = preflight_of(v15, "postgres", &v14).await;
    let said = blockers(&report);
    assert!(said.iter().any(|b| b.contains("green runs PostgreSQL 14.") && b.contains(RANGE)), "{said:?}");

    // The system's pg_dump (15) cannot dump an 18.
    let report = preflight_of(&v18, "postgres", &v18).await;
    let said = blockers(&report);
    assert!(
        said.iter().any(|b| b.contains("pg_dump (PostgreSQL) 15") && b.contains("older than blue (PostgreSQL 18)")),
        "{said:?}"
    );

    // 15 -> 15 with the system's programs passes; adminpack (gone in 17) on blue cannot go to 18.
    let report = preflight_of(v15, "postgres", v15).await;
    assert!(blockers(&report).is_empty(), "{:?}", blockers(&report));
    v15.create_database("versions_ext");
    v15.psql_db("versions_ext", "CREATE EXTENSION IF NOT EXISTS adminpack");
    let report = preflight_of(v15, "versions_ext", &v18).await;
    let said = blockers(&report);
    assert!(said.iter().any(|b| b.contains("cannot install extensions") && b.contains("adminpack")), "{said:?}");
}
