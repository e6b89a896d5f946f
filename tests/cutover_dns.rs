//! Finding the sidecars by DNS: a real DNS server (dnsmasq) on a loopback port serves
//! several addresses for one name, as a Kubernetes headless Service does; the controller
//! resolves them through `sidecars_dns_server` and flips every sidecar found that way.

mod flip_support;
mod support;

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flip_support::{controller, text, Fleet, ADMIN_TOKEN};
use support::ProxyBuilder;

const NAME: &str = "sidecars.pgflip.test";
const SIDECAR_HOSTS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

/// dnsmasq answering for [`NAME`] from a hosts file, on 127.0.0.1:`port`; killed on drop.
struct Dns {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dnsmasq() -> PathBuf {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("dnsmasq is not installed (apt-get install -y dnsmasq-base; .ci/run installs it)")
}

fn start_dns(records: &[&str]) -> Dns {
    let dir = tempfile::tempdir().expect("temp dir");
    let hosts = dir.path().join("hosts");
    let lines: Vec<String> = records.iter().map(|ip| format!("{ip} {NAME}")).collect();
    std::fs::write(&hosts, lines.join("\n") + "\n").expect("hosts file");
    let port = free_udp_and_tcp_port();
    let child = Command::new(dnsmasq())
        .arg("--keep-in-foreground")
        .arg(format!("--port={port}"))
        .args(["--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts"])
        .args(["--conf-file=/dev/null", "--pid-file=", "--user=", "--log-facility=-"])
        .arg(format!("--addn-hosts={}", hosts.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    let dns = Dns { child, port, _dir: dir };
    wait_listening(port);
    dns
}

fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "dnsmasq did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port free on every one of `hosts`.
fn port_free_on(hosts: &[&str]) -> u16 {
    loop {
        let port = support::free_port();
        if hosts.iter().all(|host| TcpListener::bind((*host, port)).is_ok()) {
            return port;
        }
    }
}

#[tokio::test]
async fn one_name_resolves_to_every_address_a_and_aaaa() {
    let dns = start_dns(&["127.0.0.2", "127.0.0.3", "127.0.0.4", "fd00::7"]);
    let server = SocketAddr::from(([127, 0, 0, 1], dns.port));
    let addrs = pgflip::controller::discovery::resolve(NAME, Some(server)).await.expect("resolve");
    let expected: Vec<IpAddr> =
        ["127.0.0.2", "127.0.0.3", "127.0.0.4", "fd00::7"].iter().map(|a| a.parse().unwrap()).collect();
    assert_eq!(addrs, expected);
    let missing = pgflip::controller::discovery::resolve("nobody.pgflip.test", Some(server)).await;
    let message = missing.expect_err("an unknown name is an error").to_string();
    assert!(message.contains("[cutover] sidecars_dns") && message.contains("nobody.pgflip.test"), "{message}");
}

fn active_at(host: &str, port: u16) -> String {
    let addr: SocketAddr = format!("{host}:{port}").parse().unwrap();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (status, body) =
        support::http::request_to(addr, "GET", "/v1/status", &[("Authorization", &auth)], "").expect("sidecar status");
    assert_eq!(status, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    status["active"].as_str().unwrap_or_default().to_string()
}

#[test]
fn the_controller_flips_the_sidecars_it_finds_by_dns() {
    let dns = start_dns(&SIDECAR_HOSTS);
    let fleet = Fleet::start(0);
    let admin_port = port_free_on(&SIDECAR_HOSTS);
    let app_url = |port: u16| {
        format!("postgres://{}:{}@127.0.0.1:{port}/{}", flip_support::APP, flip_support::APP_PASSWORD, flip_support::DB)
    };
    let sidecars: Vec<support::Proxy> = SIDECAR_HOSTS
        .iter()
        .map(|host| {
            ProxyBuilder::default()
                .upstream("blue", &app_url(fleet.blue.port()))
                .upstream("green", &app_url(fleet.green.port()))
                .active("blue")
                .admin_host(host)
                .admin_port(admin_port)
                .admin_token(ADMIN_TOKEN)
                .spawn()
        })
        .collect();
    let cutover = format!("sidecars_dns = \"{NAME}:{admin_port}\"\nsidecars_dns_server = \"127.0.0.1:{}\"", dns.port);
    let plan: PathBuf = fleet.plan_with(&[], &cutover, "");
    let output = controller(&plan, &["run"]);
    assert!(output.status.success(), "{}", text(&output));
    for host in SIDECAR_HOSTS {
        assert_eq!(active_at(host, admin_port), "green", "the sidecar at {host}: {}", text(&output));
    }
    drop(sidecars);
}
