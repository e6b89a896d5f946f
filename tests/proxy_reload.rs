//! The config file carries the durable target (active upstream and generation). A running
//! sidecar that sees it change, the way a mounted ConfigMap changes (the kubelet swaps the
//! `..data` symlink), or gets SIGHUP, switches when the file's generation is higher.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::{shared_cluster, temp_dir, wait_until, Cluster, Proxy, ProxyBuilder, RawConn};

fn green() -> &'static Cluster {
    static GREEN: OnceLock<Cluster> = OnceLock::new();
    GREEN.get_or_init(|| {
        let green = Cluster::start();
        green.psql("CREATE TABLE marker(side text); INSERT INTO marker VALUES ('green')");
        shared_cluster()
            .psql("CREATE TABLE IF NOT EXISTS marker(side text); TRUNCATE marker; INSERT INTO marker VALUES ('blue')");
        green
    })
}

/// Publishes `contents` as a new ConfigMap version: a new directory, then an atomic
/// rename of the `..data` symlink onto it.
fn publish(mount: &Path, version: &str, contents: &str) {
    let dir = mount.join(format!("..{version}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("proxy.toml"), contents).unwrap();
    let tmp = mount.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, mount.join("..data")).unwrap();
}

fn status(proxy: &Proxy) -> Value {
    serde_json::from_str(&proxy.admin_get("/v1/status").unwrap().1).unwrap()
}

fn wait_for(proxy: &Proxy, active: &str, generation: u64) -> bool {
    wait_until(Duration::from_secs(8), || {
        let st = status(proxy);
        (st["active"] == active && st["generation"] == generation).then_some(())
    })
    .is_some()
}

#[test]
fn a_newer_target_in_a_swapped_configmap_switches_and_a_stale_one_does_not() {
    let green = green();
    let mount = temp_dir("pgflip-configmap-");
    let mount = mount.path();
    std::fs::create_dir(mount.join("..v1")).unwrap();
    std::fs::write(mount.join("..v1/proxy.toml"), "active = \"blue\"\ngeneration = 1\n").unwrap();
    symlink("..v1", mount.join("..data")).unwrap();
    symlink("..data/proxy.toml", mount.join("proxy.toml")).unwrap();
    let config = mount.join("proxy.toml");

    let proxy = ProxyBuilder::for_cluster(shared_cluster())
        .upstream("green", &green.url())
        .arg("--config")
        .arg(config.to_str().unwrap())
        .spawn();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("startup");
    assert_eq!(conn.query_value("SELECT side FROM marker").unwrap().as_deref(), Some("blue"));

    publish(mount, "v2", "active = \"green\"\ngeneration = 2\n");
    assert!(wait_for(&proxy, "green", 2), "the newer target was not applied: {}", status(&proxy));
    assert_eq!(conn.query_value("SELECT side FROM marker").unwrap().as_deref(), Some("green"));

    publish(mount, "v3", "active = \"blue\"\ngeneration = 1\n");
    std::thread::sleep(Duration::from_millis(2500));
    let st = status(&proxy);
    assert_eq!((st["active"].as_str(), st["generation"].as_u64()), (Some("green"), Some(2)), "a stale file switched");
    assert_eq!(conn.query_value("SELECT side FROM marker").unwrap().as_deref(), Some("green"));

    // SIGHUP reads the file at once.
    std::fs::write(mount.join("..v3/proxy.toml"), "active = \"blue\"\ngeneration = 7\n").unwrap();
    Command::new("kill").arg("-HUP").arg(proxy.pid().to_string()).status().unwrap();
    assert!(wait_for(&proxy, "blue", 7), "SIGHUP did not apply the file: {}", status(&proxy));
    assert_eq!(conn.query_value("SELECT side FROM marker").unwrap().as_deref(), Some("blue"));
}
