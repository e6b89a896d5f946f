//! Finding the sidecars by DNS: an authoritative DNS server, run by the test itself on a
//! loopback port, serves several addresses for one name, as a Kubernetes headless Service
//! does; the controller resolves them through `sidecars_dns_server` and flips every sidecar
//! found that way.

mod flip_support;
mod support;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, AAAA, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;

use flip_support::{controller, text, Fleet, ADMIN_TOKEN};
use support::ProxyBuilder;

const ZONE: &str = "pgflip.test.";
const NAME: &str = "sidecars.pgflip.test";
const SIDECAR_HOSTS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

/// An authoritative server for [`ZONE`] answering A and AAAA queries for [`NAME`] over UDP
/// and TCP on 127.0.0.1:`port`, on a thread of its own; stopped on drop.
struct Dns {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The zone: its SOA record and one A or AAAA record per address.
fn zone(addresses: &[&str]) -> InMemoryAuthority {
    let origin = Name::from_str(ZONE).expect("zone name");
    let name = Name::from_str(&format!("{NAME}.")).expect("record name");
    let serial = 1;
    let mut authority = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
    let soa = SOA::new(
        Name::from_str("ns.pgflip.test.").expect("mname"),
        Name::from_str("hostmaster.pgflip.test.").expect("rname"),
        serial,
        3600,
        600,
        86_400,
        60,
    );
    assert!(authority.upsert_mut(Record::from_rdata(origin, 60, RData::SOA(soa)), serial));
    for address in addresses {
        let rdata = match address.parse::<IpAddr>().expect("an IP address") {
            IpAddr::V4(ip) => RData::A(A(ip)),
            IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
        };
        assert!(authority.upsert_mut(Record::from_rdata(name.clone(), 60, rdata), serial));
    }
    authority
}

fn start_dns(addresses: &[&str]) -> Dns {
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::from_str(ZONE).expect("zone name"), vec![Arc::new(zone(addresses))]);
    let (udp, tcp) = udp_and_tcp_on_one_port();
    let port = udp.local_addr().expect("udp address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, is_ready) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("DNS runtime");
        runtime.block_on(async move {
            let mut server = ServerFuture::new(catalog);
            server.register_socket(tokio::net::UdpSocket::from_std(udp).expect("udp socket"));
            server
                .register_listener(tokio::net::TcpListener::from_std(tcp).expect("tcp socket"), Duration::from_secs(5));
            ready.send(()).expect("test waits");
            let _ = stopped.await;
            let _ = server.shutdown_gracefully().await;
        });
    });
    is_ready.recv().expect("the DNS server started");
    Dns { port, stop: Some(stop), thread: Some(thread) }
}

/// A UDP and a TCP socket bound to the same free loopback port, non-blocking for tokio.
fn udp_and_tcp_on_one_port() -> (std::net::UdpSocket, TcpListener) {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            udp.set_nonblocking(true).expect("non-blocking udp");
            tcp.set_nonblocking(true).expect("non-blocking tcp");
            return (udp, tcp);
        }
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
