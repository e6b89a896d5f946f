//! Unit tests of the plan file: defaults, paths, URLs and the errors that name keys.

use super::*;
use std::str::FromStr;
use std::time::Duration;

use crate::controller::target::Transport;
use tokio_postgres::Config;

const MINIMAL: &str = r#"
[blue]
url = "postgres://admin:s3cret@blue.internal:5432/shop?sslmode=disable"

[green]
url = "postgres://admin:s3cret@green.internal:5433"

[app]
roles = ["shop"]
"#;

fn parse(text: &str) -> Result<Plan, PlanError> {
    Plan::parse(text, Path::new("/plans"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn minimal_plan_takes_the_defaults() {
    let plan = parse(MINIMAL).unwrap();
    assert_eq!(plan.database(), "shop");
    assert_eq!(plan.green_config().config.get_dbname(), Some("shop"));
    assert_eq!(plan.green.url, "postgres://admin:s3cret@green.internal:5433/shop");
    assert_eq!(plan.blue.url, "postgres://admin:s3cret@blue.internal:5432/shop?sslmode=disable");
    assert_eq!(plan.app.roles, ["shop"]);
    assert_eq!(plan.migrate.command, None);
    assert_eq!(plan.catchup, CatchupSection::default());
    assert_eq!(plan.catchup.max_lag_bytes, 1_048_576);
    assert_eq!(plan.journal.path, Path::new("/plans/pgflip-journal.json"));
    assert_eq!(plan.snapshot, SnapshotSection { dump_dir: "/plans/pgflip-dump".into(), jobs: 2 });
    assert_eq!(plan.restore.jobs, 2);
    assert_eq!(plan.metrics.listen, None);
    assert!(plan.preflight.allow_replica_identity_full.is_empty());
    assert_eq!(plan.tools.bin_dir, None);
}

#[test]
fn every_key_is_read() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
[migrate]
command = "./migrate.sh up"
[smoke]
command = "./smoke.sh"
[catchup]
max_lag_bytes = 4096
max_lag_seconds = 0.5
stable_seconds = 10
timeout_seconds = 60
[journal]
path = "state/journal.json"
[metrics]
listen = "127.0.0.1:9187"
[snapshot]
dump_dir = "/var/tmp/dump"
jobs = 8
[restore]
jobs = 4
[preflight]
allow_replica_identity_full = ["public.events"]
[tools]
bin_dir = "pg16/bin"
"#
    );
    let plan = parse(&text).unwrap();
    assert_eq!(plan.migrate.command.as_deref(), Some("./migrate.sh up"));
    assert_eq!(plan.smoke.command.as_deref(), Some("./smoke.sh"));
    let catchup = CatchupSection {
        max_lag_bytes: 4096,
        max_lag: Duration::from_millis(500),
        stable: Duration::from_secs(10),
        timeout: Duration::from_secs(60),
    };
    assert_eq!(plan.catchup, catchup);
    assert_eq!(plan.journal.path, Path::new("/plans/state/journal.json"));
    assert_eq!(plan.metrics.listen, Some("127.0.0.1:9187".parse().unwrap()));
    assert_eq!(plan.snapshot, SnapshotSection { dump_dir: "/var/tmp/dump".into(), jobs: 8 });
    assert_eq!(plan.restore.jobs, 4);
    assert_eq!(plan.preflight.allow_replica_identity_full, ["public.events"]);
    assert_eq!(plan.tools.bin_dir.as_deref(), Some(Path::new("/plans/pg16/bin")));
}

#[test]
fn load_names_the_file_and_resolves_paths_next_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(Plan::load(&path).unwrap().journal.path, dir.path().join("pgflip-journal.json"));

    std::fs::write(&path, format!("{MINIMAL}[catchup]\nmax_lag_seconds = -1\n")).unwrap();
    let err = Plan::load(&path).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: [catchup] max_lag_seconds: ", path.display())), "{err}");
    assert!(err.contains("negative"), "{err}");

    let missing = dir.path().join("nope.toml");
    assert!(Plan::load(&missing).unwrap_err().to_string().contains(&missing.display().to_string()));
}

#[test]
fn unknown_keys_are_named_with_their_table() {
    let err = error(&MINIMAL.replace("[green]\nurl", "[green]\nurll"));
    assert!(err.starts_with("plan file: unknown key [green] urll (line 6, column 1)"), "{err}");
    assert!(err.ends_with("expected `url`"), "{err}");
    let err = error(&format!("{MINIMAL}[catchup]\nmax_lag = 1\n"));
    assert!(err.starts_with("plan file: unknown key [catchup] max_lag "), "{err}");
    let err = error(&format!("{MINIMAL}[cutover]\nx = 1\n"));
    assert!(err.starts_with("plan file: unknown key [cutover] "), "{err}");
}

#[test]
fn bad_values_are_named_with_their_key() {
    let err = error(&format!("{MINIMAL}[catchup]\nmax_lag_bytes = -5\n"));
    assert!(err.starts_with("plan file: [catchup] max_lag_bytes: invalid value: integer `-5`"), "{err}");
    let err = error(&format!("{MINIMAL}[metrics]\nlisten = \"localhost\"\n"));
    assert!(err.starts_with("plan file: [metrics] listen: invalid socket address"), "{err}");
    for (extra, expected) in [
        ("[catchup]\nmax_lag_seconds = 0", "[catchup] max_lag_seconds must be greater than 0, got 0"),
        ("[catchup]\ntimeout_seconds = 0", "[catchup] timeout_seconds must be greater than 0, got 0"),
        ("[snapshot]\njobs = 0", "[snapshot] jobs must be at least 1, got 0"),
        ("[restore]\njobs = 0", "[restore] jobs must be at least 1, got 0"),
        ("[migrate]\ncommand = \" \"", "[migrate] command must not be empty"),
        ("[preflight]\nallow_replica_identity_full = [\"events\"]", "must list schema.table names, got \"events\""),
    ] {
        let err = error(&format!("{MINIMAL}{extra}\n"));
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn required_keys() {
    let err = error(&MINIMAL.replace("roles = [\"shop\"]", ""));
    assert!(err.starts_with("plan file: [app] roles is required: "), "{err}");
    assert!(parse(&MINIMAL.replace("[\"shop\"]", "[]")).unwrap().app.roles.is_empty());
    assert!(error(&MINIMAL.replace("[\"shop\"]", "[\"\"]")).contains("[app] roles must not contain an empty name"));
    assert!(error("[app]\nroles = []\n").starts_with("plan file: [blue] url is required"));
}

#[test]
fn urls_must_name_user_host_and_the_same_database() {
    let with_blue = |url: &str| MINIMAL.replace("postgres://admin:s3cret@blue.internal:5432/shop?sslmode=disable", url);
    let err = error(&with_blue("postgres://admin:s3cret@blue.internal/shop?sslmode=verify-full"));
    assert!(err.starts_with("plan file: [blue] url has sslmode=verify-full without sslrootcert"), "{err}");
    let err = error(&with_blue("postgres://admin:s3cret@blue.internal/shop?sslmode=sometimes"));
    assert!(err.starts_with("plan file: [blue] url has sslmode=\"sometimes\""), "{err}");
    let err = error(&with_blue("postgres://admin:s3cret@blue.internal?nonsense=1"));
    assert!(err.starts_with("plan file: [blue] url is not a valid connection URL: "), "{err}");
    assert!(error(&with_blue("postgres://admin:s3cret@blue.internal")).contains("[blue] url must name the database"));
    assert!(error(&with_blue("postgres://blue.internal/shop")).contains("[blue] url must name a user"));
    assert!(error(&with_blue("postgres://admin@/shop")).contains("[blue] url must name a host"));
    let err = error(&MINIMAL.replace("green.internal:5433", "green.internal:5433/other"));
    assert!(err.contains("[green] url names database \"other\" but [blue] url names \"shop\""), "{err}");
}

#[test]
fn passwords_stay_out_of_debug_and_errors() {
    let plan = parse(MINIMAL).unwrap();
    let debug = format!("{plan:?}");
    assert!(!debug.contains("s3cret") && debug.contains("admin:***@blue.internal"), "{debug}");
    assert_eq!(plan.green.redacted(), "postgres://admin:***@green.internal:5433/shop");
    // A syntax error on the URL's line: the toml crate would quote the line.
    let err = error(&MINIMAL.replace("5432/shop?sslmode=disable\"", "5432/shop"));
    assert!(err.contains("line 3") && !err.contains("s3cret"), "{err}");
    let err = error(&MINIMAL.replace("5432/shop?sslmode=disable", "5432/shop?sslmode=verify-full"));
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn green_url_for_another_database_keeps_the_connection() {
    let text = MINIMAL.replace(
            "postgres://admin:s3cret@green.internal:5433",
            "postgres://ad%20min:p%40ss%2Fw:rd@[::1]:5433,green.internal?sslmode=prefer&application_name=pgflip&connect_timeout=7",
        );
    let plan = parse(&text).unwrap();
    let url = plan.green_url_for("postgres");
    assert_eq!(
        url,
        "postgres://ad%20min:p%40ss%2Fw%3Ard@[::1]:5433,green.internal:5432/postgres\
             ?application_name=pgflip&connect_timeout=7&sslmode=prefer"
    );
    let config = Config::from_str(&url).unwrap();
    assert_eq!(config.get_password(), Some(&b"p@ss/w:rd"[..]));
    assert_eq!(config.get_user(), Some("ad min"));
    assert_eq!(config.get_dbname(), Some("postgres"));
    assert_eq!(config.get_hosts(), plan.green_config().config.get_hosts());
    assert_eq!(config.get_ports(), plan.green_config().config.get_ports());
    assert_eq!(plan.green_config_for("postgres").config.get_dbname(), Some("postgres"));
    assert_eq!(plan.green_url(), plan.green_url_for("shop"));
}

#[cfg(unix)]
#[test]
fn unix_socket_hosts_survive_the_rebuild() {
    let plan = parse(&MINIMAL.replace("green.internal:5433", "%2Fvar%2Frun%2Fpostgresql")).unwrap();
    let url = plan.green_url_for("postgres");
    assert_eq!(url, "postgres://admin:s3cret@%2Fvar%2Frun%2Fpostgresql:5432/postgres");
    assert_eq!(Config::from_str(&url).unwrap().get_hosts(), plan.green_config().config.get_hosts());
}

#[test]
fn the_example_plan_in_deploy_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/cutover-plan.toml");
    let plan = Plan::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.database(), "ledger");
    assert_eq!(plan.app.roles, ["ledger_app"]);
    assert_eq!(plan.snapshot.jobs, 4);
    assert!(plan.journal.path.ends_with("deploy/examples/pgflip-journal.json"), "{:?}", plan.journal.path);
    let bas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/plan.toml");
    let plan = Plan::load(&bas).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.app.roles, ["ledger_app"]);
    assert_eq!(plan.validate.checks.len(), 4, "{:?}", plan.validate.checks);
}

#[test]
fn every_libpq_sslmode_is_taken() {
    for (mode, transport) in [
        ("disable", Transport::Plain),
        ("allow", Transport::PlainThenTls),
        ("prefer", Transport::TlsIfOffered),
        ("require", Transport::Tls),
    ] {
        let text = format!(
            "[blue]\nurl = \"postgres://postgres@127.0.0.1:5432/app?sslmode={mode}\"\n\
             [green]\nurl = \"postgres://postgres@127.0.0.1:5433\"\n[app]\nroles = []\n"
        );
        let plan = Plan::parse(&text, std::path::Path::new("/tmp")).expect(mode);
        assert_eq!(plan.blue_config().transport().unwrap(), transport, "{mode}");
        assert_eq!(plan.blue.program_env(), vec![("PGSSLMODE", mode.to_owned())]);
    }
}

#[test]
fn flip_sections_take_their_defaults_and_resolve_paths() {
    let plan = parse(MINIMAL).unwrap();
    assert!(plan.cutover.sidecars.is_empty());
    assert_eq!(plan.cutover.drain_timeout, std::time::Duration::from_secs(5));
    assert_eq!((plan.cutover.green_upstream.as_str(), plan.cutover.blue_upstream.as_str()), ("green", "blue"));
    assert_eq!(plan.validate.window, std::time::Duration::from_secs(60));
    assert!(plan.validate.auto_rollback && plan.validate.table_checksums && plan.validate.consistent_point);
    let live = parse(&format!("{MINIMAL}\n[validate]\nconsistent_point = false\n")).unwrap();
    assert!(!live.validate.consistent_point);
    let text = format!(
        "{MINIMAL}\n[cutover]\nsidecars = [\"http://10.0.0.1:9187/\"]\nsidecar_config = \"proxy.toml\"\n\
         [[validate.check]]\nname = \"balances\"\nsql = \"SELECT 1\"\nmode = \"compare\"\n[retire]\narchive_dir = \"old\"\n"
    );
    let plan = parse(&text).unwrap();
    assert_eq!(plan.cutover.sidecars, ["http://10.0.0.1:9187"]);
    assert_eq!(plan.cutover.sidecar_config.as_deref(), Some(Path::new("/plans/proxy.toml")));
    assert_eq!(plan.validate.checks[0].mode, CheckMode::Compare);
    assert_eq!(plan.retire.archive_dir.as_deref(), Some(Path::new("/plans/old")));
}

#[test]
fn flip_section_errors_name_their_keys() {
    let bad = |extra: &str| error(&format!("{MINIMAL}\n{extra}\n"));
    assert!(bad("[cutover]\nsidecars = [\"10.0.0.1:9187\"]").contains("[cutover] sidecars"));
    assert!(bad("[cutover]\nsidecars_dns = \"sidecars\"").contains("[cutover] sidecars_dns"));
    let dns = "[cutover]\nsidecars_dns = \"sidecars:9187\"\nsidecars_dns_server";
    assert!(bad(&format!("{dns} = \"kube-dns\"")).contains("[cutover] sidecars_dns_server"));
    assert!(bad("[cutover]\nsidecars_dns_server = \"10.96.0.10:53\"").contains("needs sidecars_dns"));
    assert!(bad("[kubernetes]\nconfigmap = \"pgflip-sidecar\"").contains("NAMESPACE/NAME"));
    assert!(bad("[kubernetes]\nkey = \"proxy.toml\"").contains("[kubernetes] configmap"));
    let kube = "[kubernetes]\nconfigmap = \"ledger/pgflip-sidecar\"\napi";
    assert!(bad(&format!("{kube} = \"ftp://k8s\"")).contains("[kubernetes] api"));
    let plan = parse(&format!("{MINIMAL}\n{kube} = \"https://10.96.0.1:443/\"\n")).unwrap();
    let section = plan.kubernetes.expect("the section");
    assert_eq!((section.namespace.as_str(), section.configmap.as_str()), ("ledger", "pgflip-sidecar"));
    assert_eq!((section.key.as_str(), section.api.as_str()), ("proxy.toml", "https://10.96.0.1:443"));
    let plan = parse(&format!("{MINIMAL}\n{dns} = \"10.96.0.10:53\"\n")).unwrap();
    assert_eq!(plan.cutover.sidecars_dns_server, Some("10.96.0.10:53".parse().unwrap()));
    assert!(bad("[cutover]\ndrain_timeout = 0").contains("[cutover] drain_timeout"));
    assert!(bad("[cutover]\ngreen_upstream = \"blue\"").contains("[cutover] green_upstream"));
    assert!(bad("[validate]\nmax_error_rate = 2").contains("[validate] max_error_rate"));
    assert!(bad("[[validate.check]]\nname = \"x\"\nsql = \" \"\nmode = \"empty\"").contains("[[validate.check]] sql"));
    assert!(bad("[[validate.check]]\nname = \"x\"\nsql = \"SELECT 1\"\nmode = \"same\"").contains("mode"));
    assert!(bad("[retire]\ncommand = \"\"").contains("[retire] command"));
}

#[test]
fn durations_take_seconds_or_a_unit() {
    let text = format!(
        "{MINIMAL}\n[catchup]\nmax_lag_seconds = \"500ms\"\nstable_seconds = \"2s\"\ntimeout_seconds = \"1h\"\n\
         [cutover]\ndrain_timeout = \"5s\"\ncatchup_timeout = \"2m\"\nmax_write_pause = 1.5\n[validate]\nwindow = \"3s\"\n"
    );
    let plan = parse(&text).unwrap();
    assert_eq!(plan.catchup.max_lag, Duration::from_millis(500));
    assert_eq!(plan.catchup.stable, Duration::from_secs(2));
    assert_eq!(plan.catchup.timeout, Duration::from_secs(3600));
    assert_eq!(plan.cutover.drain_timeout, Duration::from_secs(5));
    assert_eq!(plan.cutover.catchup_timeout, Duration::from_secs(120));
    assert_eq!(plan.cutover.max_write_pause, Duration::from_millis(1500));
    assert_eq!(plan.validate.window, Duration::from_secs(3));
    let zero = parse(&format!("{MINIMAL}\n[validate]\nwindow = 0\n")).unwrap();
    assert_eq!(zero.validate.window, Duration::ZERO);

    let err = error(&format!("{MINIMAL}\n[cutover]\ndrain_timeout = \"5 parsecs\"\n"));
    assert!(err.starts_with("plan file: [cutover] drain_timeout: "), "{err}");
    assert!(err.contains("\"5 parsecs\" has an unknown unit \"parsecs\""), "{err}");
    let err = error(&format!("{MINIMAL}\n[validate]\nwindow = \"soon\"\n"));
    assert!(err.starts_with("plan file: [validate] window: "), "{err}");
    let err = error(&format!("{MINIMAL}\n[catchup]\nstable_seconds = -2\n"));
    assert!(err.starts_with("plan file: [catchup] stable_seconds: "), "{err}");
}

#[test]
fn a_password_crosses_tcp_only_under_tls_unless_the_plan_allows_it() {
    let plan = parse(MINIMAL).unwrap();
    let err = plan.blue_config().transport().unwrap_err().to_string();
    assert!(err.starts_with("[blue] url has a password and sslmode=disable"), "{err}");
    assert!(err.contains("[security] allow_plaintext_passwords = true") && !err.contains("s3cret"), "{err}");
    // prefer (the default) insists on TLS, and client programs are told to require it.
    assert_eq!(plan.green_config().transport().unwrap(), Transport::Tls);
    assert_eq!(plan.green.program_env(), vec![("PGSSLMODE", "require".to_owned())]);
    let (url, _) = plan.green.for_program("shop");
    assert_eq!(url, "postgres://admin@green.internal:5433/shop?sslmode=require");
    let allowed = parse(&format!("{MINIMAL}\n[security]\nallow_plaintext_passwords = true\n")).unwrap();
    assert_eq!(allowed.blue_config().transport().unwrap(), Transport::Plain);
    assert_eq!(allowed.green_config().transport().unwrap(), Transport::TlsIfOffered);
    assert_eq!(allowed.green.program_env(), vec![("PGSSLMODE", "prefer".to_owned())]);
    // No password, or a Unix-domain socket: nothing to guard.
    let no_password = parse(&MINIMAL.replace("admin:s3cret@blue", "admin@blue")).unwrap();
    assert_eq!(no_password.blue_config().transport().unwrap(), Transport::Plain);
    let socket = parse(&MINIMAL.replace("blue.internal:5432", "%2Frun%2Fpostgresql")).unwrap();
    assert_eq!(socket.blue_config().transport().unwrap(), Transport::Plain);
}

#[test]
fn tls_parameters_stay_as_written_for_servers_and_resolved_for_programs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), test_ca()).unwrap();
    let text = MINIMAL.replace("5432/shop?sslmode=disable", "5432/shop?sslmode=verify-full&sslrootcert=ca.pem");
    let plan = Plan::parse(&text, dir.path()).unwrap();
    assert_eq!(plan.blue.url, "postgres://admin:s3cret@blue.internal:5432/shop?sslmode=verify-full&sslrootcert=ca.pem");
    assert_eq!(plan.blue_config().transport().unwrap(), Transport::Tls);
    let ca = dir.path().join("ca.pem").display().to_string();
    assert_eq!(plan.blue.program_env(), vec![("PGSSLMODE", "verify-full".to_owned()), ("PGSSLROOTCERT", ca.clone())]);
    let (url, _) = plan.blue.for_program("postgres");
    let encoded = ca.replace('/', "%2F");
    assert_eq!(url, format!("postgres://admin@blue.internal:5432/postgres?sslmode=verify-full&sslrootcert={encoded}"));
    let green = text.replace("green.internal:5433", "green.internal:5433?sslmode=verify-ca&sslrootcert=ca.pem");
    let plan = Plan::parse(&green, dir.path()).unwrap();
    assert_eq!(plan.green.url, "postgres://admin:s3cret@green.internal:5433/shop?sslmode=verify-ca&sslrootcert=ca.pem");
    let err = Plan::parse(&text.replace("sslrootcert=ca.pem", "sslrootcert=missing.pem"), dir.path()).unwrap_err();
    assert!(err.to_string().contains("[blue] url sslrootcert: cannot read certificates"), "{err}");
}

/// A self-signed CA certificate, PEM.
fn test_ca() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn replication_name_and_ddl_limits() {
    let plan = parse(MINIMAL).unwrap();
    assert_eq!(plan.cutover.name, None);
    assert_eq!(plan.ddl, DdlSection { lock_timeout: Duration::from_secs(2), attempts: 5 });
    let plan =
        parse(&format!("{MINIMAL}[cutover]\nname = \"shop_eu\"\n[ddl]\nlock_timeout = \"500ms\"\nattempts = 2\n"))
            .unwrap();
    assert_eq!(plan.cutover.name.as_deref(), Some("shop_eu"));
    assert_eq!(plan.ddl, DdlSection { lock_timeout: Duration::from_millis(500), attempts: 2 });
    for (extra, expected) in [
        ("[cutover]\nname = \" \"", "[cutover] name must not be empty"),
        ("[ddl]\nlock_timeout = 0", "[ddl] lock_timeout must be greater than 0, got 0"),
        ("[ddl]\nattempts = 0", "[ddl] attempts must be at least 1, got 0"),
    ] {
        let err = error(&format!("{MINIMAL}{extra}\n"));
        assert!(err.contains(expected), "{err}");
    }
}
