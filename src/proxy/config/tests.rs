use super::*;
use crate::api::StandbyFallback;

fn args(upstreams: &[&str]) -> ProxyArgs {
    ProxyArgs { upstream: upstreams.iter().map(|s| s.to_string()).collect(), ..ProxyArgs::default() }
}

#[test]
fn one_upstream_is_active_by_default() {
    let c = ProxyConfig::load(&args(&["blue=postgres://app@127.0.0.1:5432/db"])).unwrap();
    assert_eq!(c.active, "blue");
    assert_eq!(c.listen.to_string(), "127.0.0.1:6432");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9187");
}

#[test]
fn errors_name_the_key() {
    let e = ProxyConfig::load(&args(&["blue=postgres://h:0"])).unwrap_err();
    assert_eq!(e.key, "upstream.blue");
    let e = ProxyConfig::load(&args(&["blue=postgres://h", "green=postgres://h"])).unwrap_err();
    assert_eq!(e.key, "active");
    let mut a = args(&["blue=postgres://h"]);
    a.active = Some("green".into());
    assert_eq!(ProxyConfig::load(&a).unwrap_err().key, "active");
    let mut a = args(&["blue=postgres://h"]);
    a.admin_listen = Some("0.0.0.0:9187".into());
    let e = ProxyConfig::load(&a).unwrap_err();
    assert_eq!(e.key, "admin_listen");
    assert!(e.to_string().contains("--admin-token-file"), "{e}");
}

#[test]
fn file_keys_match_flags_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:7000\"\nactive = \"green\"\nshutdown_grace = 2.5\n[upstream]\nblue = \"postgres://b\"\ngreen = \"postgres://g\"\n",
    )
    .unwrap();
    let mut a = ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() };
    let c = ProxyConfig::load(&a).unwrap();
    assert_eq!((c.listen.port(), c.active.as_str(), c.upstreams.len()), (7000, "green", 2));
    assert_eq!(c.shutdown_grace, Duration::from_millis(2500));
    a.listen = Some("127.0.0.1:7001".into());
    a.active = Some("blue".into());
    let c = ProxyConfig::load(&a).unwrap();
    assert_eq!((c.listen.port(), c.active.as_str()), (7001, "blue"));

    std::fs::write(&path, "listn = \"127.0.0.1:7000\"\n").unwrap();
    let e = ProxyConfig::load(&ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() }).unwrap_err();
    assert_eq!(e.key, "listn", "{e}");

    std::fs::write(&path, "shutdown_grace = \"soon\"\n[upstream]\nblue = \"postgres://b\"\n").unwrap();
    let e = ProxyConfig::load(&ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() }).unwrap_err();
    assert_eq!(e.key, "shutdown_grace", "{e}");

    std::fs::write(&path, "[upstream]\nblue = 5\n").unwrap();
    let e = ProxyConfig::load(&ProxyArgs { config: Some(path), ..ProxyArgs::default() }).unwrap_err();
    assert_eq!(e.key, "upstream.blue", "{e}");
}

#[test]
fn standby_listener_keys() {
    let two = ["blue=postgres://app@127.0.0.1:5432/db", "green=postgres://app@127.0.0.1:5433/db"];
    let mut a = args(&two);
    a.active = Some("blue".into());
    assert_eq!(ProxyConfig::load(&a).unwrap().standby, None, "no standby listener unless asked");
    a.listen_standby = Some("127.0.0.1:6433".into());
    let standby = ProxyConfig::load(&a).unwrap().standby.expect("configured");
    assert_eq!(standby.listen.to_string(), "127.0.0.1:6433");
    assert_eq!(standby.fallback, StandbyFallback::Active);
    assert_eq!(standby.max_lag, None);
    a.standby_fallback = Some("refuse".into());
    a.max_standby_lag = Some(Duration::from_millis(2500));
    let standby = ProxyConfig::load(&a).unwrap().standby.expect("configured");
    assert_eq!(standby.fallback, StandbyFallback::Refuse);
    assert_eq!(standby.max_lag, Some(Duration::from_millis(2500)));
    for (change, key) in [
        (
            &(|a: &mut ProxyArgs| a.standby_fallback = Some("primary".into())) as &dyn Fn(&mut ProxyArgs),
            "standby_fallback",
        ),
        (&|a: &mut ProxyArgs| a.max_standby_lag = Some(Duration::ZERO), "max_standby_lag"),
        (&|a: &mut ProxyArgs| a.listen_standby = Some("127.0.0.1:6432".into()), "listen_standby"),
        (&|a: &mut ProxyArgs| a.listen_standby = Some("nowhere".into()), "listen_standby"),
    ] {
        let mut bad = a.clone();
        change(&mut bad);
        assert_eq!(ProxyConfig::load(&bad).unwrap_err().key, key);
    }
    let mut orphan = args(&two);
    orphan.active = Some("blue".into());
    orphan.max_standby_lag = Some(Duration::from_secs(5));
    assert_eq!(ProxyConfig::load(&orphan).unwrap_err().key, "max_standby_lag");
}

#[test]
fn durations_take_seconds_or_a_unit_and_a_bad_one_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let load = |text: &str| {
        std::fs::write(&path, format!("{text}\n[upstream]\nblue = \"postgres://b\"\ngreen = \"postgres://g\"\n"))
            .unwrap();
        ProxyConfig::load(&ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() })
    };
    let c = load("active = \"blue\"\nshutdown_grace = \"2m\"\nconnect_timeout = \"500ms\"\nlisten_standby = \"127.0.0.1:6433\"\nmax_standby_lag = \"1m30s\"").unwrap();
    assert_eq!(c.shutdown_grace, Duration::from_secs(120));
    assert_eq!(c.connect_timeout, Duration::from_millis(500));
    assert_eq!(c.standby.expect("standby").max_lag, Some(Duration::from_secs(90)));
    let c = load("active = \"blue\"\nshutdown_grace = 7").unwrap();
    assert_eq!(c.shutdown_grace, Duration::from_secs(7));
    for (text, key) in [
        ("shutdown_grace = \"5 parsecs\"", "shutdown_grace"),
        ("connect_timeout = -1", "connect_timeout"),
        ("connect_timeout = \"2d\"", "connect_timeout"),
        ("listen_standby = \"127.0.0.1:6433\"\nmax_standby_lag = \"0s\"", "max_standby_lag"),
    ] {
        let e = load(&format!("active = \"blue\"\n{text}")).unwrap_err();
        assert_eq!(e.key, key, "{text}: {e}");
    }
    let e = load("active = \"blue\"\nshutdown_grace = \"5 parsecs\"").unwrap_err();
    assert!(e.to_string().contains("parsecs") && e.to_string().contains("unit"), "{e}");
}

#[test]
fn the_unix_socket_is_named_like_postgresql_s_and_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:7000\"\nlisten_unix = \"run\"\n[upstream]\nblue = \"postgres://b\"\n")
        .unwrap();
    let c = ProxyConfig::load(&ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() }).unwrap();
    let unix = c.listen_unix.expect("configured");
    assert_eq!(unix.path, dir.path().join("run/.s.PGSQL.7000"));
    assert_eq!(unix.mode, 0o777);
    let mut a = args(&["blue=postgres://h"]);
    a.listen_unix = Some("/run/pgflip".into());
    a.unix_socket_mode = Some("0700".into());
    let unix = ProxyConfig::load(&a).unwrap().listen_unix.expect("configured");
    assert_eq!((unix.path.to_str(), unix.mode), (Some("/run/pgflip/.s.PGSQL.6432"), 0o700));
    a.unix_socket_mode = Some("rw-------".into());
    assert_eq!(ProxyConfig::load(&a).unwrap_err().key, "unix_socket_mode");
    let mut orphan = args(&["blue=postgres://h"]);
    orphan.unix_socket_mode = Some("0700".into());
    assert_eq!(ProxyConfig::load(&orphan).unwrap_err().key, "unix_socket_mode");
}

#[test]
fn admin_tls_takes_a_certificate_and_its_key_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let upstream = "[upstream]\nblue = \"postgres://b\"\n";
    std::fs::write(&path, format!("admin_tls_cert = \"admin.crt\"\nadmin_tls_key = \"admin.key\"\n{upstream}"))
        .unwrap();
    let c = ProxyConfig::load(&ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() }).unwrap();
    assert_eq!(c.admin_tls, Some((dir.path().join("admin.crt"), dir.path().join("admin.key"))));
    assert_eq!(c.client_tls, None);
    std::fs::write(&path, format!("admin_tls_cert = \"admin.crt\"\n{upstream}")).unwrap();
    let e = ProxyConfig::load(&ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() }).unwrap_err();
    assert_eq!(e.key, "admin_tls_key", "{e}");
    std::fs::write(&path, format!("admin_tls_key = \"admin.key\"\n{upstream}")).unwrap();
    let e = ProxyConfig::load(&ProxyArgs { config: Some(path), ..ProxyArgs::default() }).unwrap_err();
    assert_eq!(e.key, "admin_tls_cert", "{e}");
}

#[test]
fn client_limits_have_defaults_file_keys_and_flags() {
    let c = ProxyConfig::load(&args(&["blue=postgres://h"])).unwrap();
    assert_eq!(c.client_limits, ClientLimits::default());
    assert_eq!(c.client_limits.login_timeout, Duration::from_secs(10));
    assert_eq!((c.client_limits.max_logging_in, c.client_limits.max_clients), (1000, 1000));
    assert_eq!(c.client_limits.max_parked_bytes, 1 << 20);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let load = |text: &str| {
        std::fs::write(&path, format!("{text}\n[upstream]\nblue = \"postgres://b\"\n")).unwrap();
        ProxyConfig::load(&ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() })
    };
    let c = load(
        "client_login_timeout = \"2500ms\"\nmax_clients_logging_in = 50\nmax_client_connections = 3\nmax_parked_bytes = 65536",
    )
    .unwrap();
    let expected = ClientLimits {
        login_timeout: Duration::from_millis(2500),
        max_logging_in: 50,
        max_clients: 3,
        max_parked_bytes: 65536,
    };
    assert_eq!(c.client_limits, expected);
    let mut a = ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() };
    a.limits.max_client_connections = Some(7);
    a.limits.client_login_timeout = Some(Duration::from_secs(1));
    let c = ProxyConfig::load(&a).unwrap();
    assert_eq!((c.client_limits.max_clients, c.client_limits.login_timeout), (7, Duration::from_secs(1)));
    assert_eq!(c.client_limits.max_logging_in, 50, "the file's value where no flag is given");

    for (text, key) in [
        ("client_login_timeout = 0", "client_login_timeout"),
        ("client_login_timeout = \"2d\"", "client_login_timeout"),
        ("client_login_timeout = \"soon\"", "client_login_timeout"),
        ("max_clients_logging_in = 0", "max_clients_logging_in"),
        ("max_client_connections = 0", "max_client_connections"),
        ("max_client_connections = -1", "max_client_connections"),
        ("max_parked_bytes = 100", "max_parked_bytes"),
    ] {
        let e = load(text).unwrap_err();
        assert_eq!(e.key, key, "{text}: {e}");
    }
}

#[test]
fn admin_plane_keys_have_defaults_file_keys_and_flags_over_them() {
    let c = ProxyConfig::load(&args(&["blue=postgres://app@db.internal:5432/db"])).unwrap();
    assert_eq!(c.admin_token, None, "made at start");
    let admin = c.admin;
    assert_eq!(admin.allowed_upstream_hosts.to_string(), "db.internal", "the configured upstreams' hosts");
    assert!(!admin.secrets_follow_readdress && !admin.show_queries);
    assert_eq!(admin.max_pause_lease, Duration::from_secs(300));
    assert_eq!((admin.header_timeout, admin.body_timeout), (Duration::from_secs(10), Duration::from_secs(10)));
    assert_eq!(admin.max_connections, 64);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        "allowed_upstream_hosts = [\"green.internal\", \"10.0.0.0/8\"]\nsecrets_follow_readdress = true\n\
         max_pause_lease = \"2m\"\nadmin_show_queries = true\nadmin_header_timeout = \"3s\"\n\
         admin_body_timeout = 4\nadmin_max_connections = 8\n[upstream]\nblue = \"postgres://b\"\n",
    )
    .unwrap();
    let mut a = ProxyArgs { config: Some(path.clone()), ..ProxyArgs::default() };
    let admin = ProxyConfig::load(&a).unwrap().admin;
    assert_eq!(admin.allowed_upstream_hosts.to_string(), "green.internal, 10.0.0.0/8");
    assert!(admin.secrets_follow_readdress && admin.show_queries);
    assert_eq!(admin.max_pause_lease, Duration::from_secs(120));
    assert_eq!((admin.header_timeout, admin.body_timeout), (Duration::from_secs(3), Duration::from_secs(4)));
    assert_eq!(admin.max_connections, 8);
    a.admin.allowed_upstream_hosts = Some(vec!["192.0.2.7".into()]);
    a.admin.max_pause_lease = Some(Duration::from_secs(60));
    a.admin.admin_max_connections = Some(2);
    let admin = ProxyConfig::load(&a).unwrap().admin;
    assert_eq!(admin.allowed_upstream_hosts.to_string(), "192.0.2.7");
    assert_eq!((admin.max_pause_lease, admin.max_connections), (Duration::from_secs(60), 2));

    for (change, key) in [
        (
            &(|a: &mut ProxyArgs| a.admin.allowed_upstream_hosts = Some(vec!["10.0.0.0/40".into()]))
                as &dyn Fn(&mut ProxyArgs),
            "allowed_upstream_hosts",
        ),
        (&|a: &mut ProxyArgs| a.admin.max_pause_lease = Some(Duration::ZERO), "max_pause_lease"),
        (&|a: &mut ProxyArgs| a.admin.admin_header_timeout = Some(Duration::from_secs(90_000)), "admin_header_timeout"),
        (&|a: &mut ProxyArgs| a.admin.admin_body_timeout = Some(Duration::ZERO), "admin_body_timeout"),
        (&|a: &mut ProxyArgs| a.admin.admin_max_connections = Some(0), "admin_max_connections"),
    ] {
        let mut bad = args(&["blue=postgres://b"]);
        change(&mut bad);
        assert_eq!(ProxyConfig::load(&bad).unwrap_err().key, key);
    }
    std::fs::write(&path, "allowed_upstream_hosts = \"10.0.0.1\"\n[upstream]\nblue = \"postgres://b\"\n").unwrap();
    let e = ProxyConfig::load(&ProxyArgs { config: Some(path), ..ProxyArgs::default() }).unwrap_err();
    assert_eq!(e.key, "allowed_upstream_hosts", "a list, not a string: {e}");
}
