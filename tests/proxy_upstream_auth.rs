//! What the proxy refuses at login, on either leg: an upstream whose SCRAM signature does
//! not verify or is missing (a relay in front of a real server changes or drops it), a
//! cleartext or md5 password asked for over plain TCP without the URL's opt-in, a login or
//! cancel that would wait on a silent upstream; and on the client leg, user names cannot
//! be told apart by what the proxy asks.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use support::wire::{cancel_packet, frame, startup_packet};
use support::{
    metric_sum, wait_until, Cluster, ClusterOptions, PgError, Proxy, ProxyBuilder, RawConn, TestCa, MD5_PASSWORD,
    SCRAM_PASSWORD,
};
use tokio_postgres::NoTls;

/// Password of `cleartextuser`, whom pg_hba asks for a cleartext password.
const CLEARTEXT_PASSWORD: &str = "cleartext-secret";

/// One cluster with TLS on (plain TCP works too) and a `password` (cleartext) pg_hba
/// line for `cleartextuser`; `md5user` gets md5 and `scramuser` SCRAM, as everywhere.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let ca = TestCa::new("upstream-auth");
        let cluster = Cluster::start_with(ClusterOptions::default().ssl(&ca));
        cluster.psql(&format!("CREATE ROLE cleartextuser LOGIN PASSWORD '{CLEARTEXT_PASSWORD}'"));
        let hba = cluster.dir().join("data/pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        std::fs::write(&hba, format!("host all cleartextuser 127.0.0.1/32 password\n{rest}")).expect("pg_hba.conf");
        cluster.psql("SELECT pg_reload_conf()");
        // The reload is done when the server asks cleartextuser for a cleartext password.
        let asks_cleartext = || {
            let mut conn = RawConn::connect(cluster.port()).ok()?;
            conn.send(&startup_packet(&[("user", "cleartextuser"), ("database", "postgres")])).ok()?;
            let m = conn.read_message().ok()??;
            (m.tag == b'R' && m.body == [0, 0, 0, 3]).then_some(())
        };
        wait_until(Duration::from_secs(10), asks_cleartext).expect("pg_hba.conf reloaded");
        cluster
    })
}

/// Logs in through the proxy as `user` (no password: the proxy needs none from local
/// clients) and runs `SELECT current_user`.
async fn login(proxy: &Proxy, user: &str) -> Result<String, tokio_postgres::Error> {
    let config = proxy.tokio_config(user, "postgres");
    let (client, connection) = tokio::time::timeout(Duration::from_secs(20), tokio_postgres::connect(&config, NoTls))
        .await
        .unwrap_or_else(|_| panic!("login as {user}: no answer within 20 s"))?;
    tokio::spawn(connection);
    Ok(client.query_one("SELECT current_user::text", &[]).await?.get(0))
}

async fn login_error(proxy: &Proxy, user: &str) -> (String, String) {
    match login(proxy, user).await {
        Ok(current) => panic!("{user} logged in (as {current}); the proxy should have refused"),
        Err(err) => {
            let db = err.as_db_error().unwrap_or_else(|| panic!("{user}: expected an ErrorResponse, got {err}"));
            (db.code().code().to_owned(), db.message().to_owned())
        }
    }
}

fn auth_errors(proxy: &Proxy) -> f64 {
    let (_, text) = proxy.admin_get("/metrics").expect("GET /metrics");
    metric_sum(&text, "pgflip_upstream_errors_total", "kind=\"auth\"")
}

/// What a relay does to the server's side of the connections it carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tamper {
    Nothing,
    /// Changes one base64 digit of the SCRAM server signature (`v=...` in SASLFinal).
    FlipSignature,
    /// Leaves SASLFinal out: AuthenticationOk follows our proof directly.
    DropSaslFinal,
    /// Carries the first connection; accepts later ones and never answers them.
    SilentAfterFirst,
}

/// A TCP relay in front of `port` on 127.0.0.1 that tampers with what the server sends.
fn relay(port: u16, tamper: Tamper) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let relay_port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            if tamper == Tamper::SilentAfterFirst && accepted.fetch_add(1, Ordering::SeqCst) > 0 {
                // Hold the connection, answer nothing, until the proxy gives up on it.
                thread::spawn(move || std::io::copy(&mut &client, &mut std::io::sink()));
                continue;
            }
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else { continue };
            let (mut client_in, mut server_out) = (client.try_clone().expect("dup"), server.try_clone().expect("dup"));
            thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
                let _ = server_out.shutdown(std::net::Shutdown::Write);
            });
            thread::spawn(move || match tamper {
                Tamper::Nothing | Tamper::SilentAfterFirst => {
                    let _ = std::io::copy(&mut &server, &mut &client);
                }
                Tamper::FlipSignature | Tamper::DropSaslFinal => {
                    let _ = server_to_client(server, client, tamper);
                }
            });
        }
    });
    relay_port
}

/// Copies whole server messages, tampering with SASLFinal (with sslmode=disable the proxy
/// sends no SSLRequest, so every message has a tag).
fn server_to_client(mut server: TcpStream, mut client: TcpStream, tamper: Tamper) -> std::io::Result<()> {
    loop {
        let mut header = [0u8; 5];
        server.read_exact(&mut header)?;
        let len = u32::from_be_bytes(header[1..5].try_into().expect("4 bytes")) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        server.read_exact(&mut body)?;
        let sasl_final = header[0] == b'R' && body.starts_with(&[0, 0, 0, 12]);
        if sasl_final {
            assert!(body[4..].starts_with(b"v="), "SASLFinal: {body:?}");
            match tamper {
                Tamper::FlipSignature => body[6] = if body[6] == b'A' { b'B' } else { b'A' },
                Tamper::DropSaslFinal => continue,
                Tamper::Nothing | Tamper::SilentAfterFirst => unreachable!("copied as bytes"),
            }
        }
        client.write_all(&header)?;
        client.write_all(&body)?;
    }
}

fn proxy_via(port: u16, user: &str, password: &str, params: &str) -> Proxy {
    let url = format!("postgres://{user}:{password}@127.0.0.1:{port}/postgres?{params}");
    ProxyBuilder::default().upstream("blue", &url).active("blue").arg("--connect-timeout").arg("2s").spawn()
}

#[tokio::test]
async fn scram_server_signature_must_verify() {
    let cluster = cluster();
    let untouched = proxy_via(relay(cluster.port(), Tamper::Nothing), "scramuser", SCRAM_PASSWORD, "");
    assert_eq!(login(&untouched, "app").await.expect("login through an honest relay"), "scramuser");

    for (tamper, expected) in [
        (Tamper::FlipSignature, "SCRAM signature is wrong"),
        (Tamper::DropSaslFinal, "AuthenticationOk without proving that it knows the password"),
    ] {
        let mut proxy = proxy_via(relay(cluster.port(), tamper), "scramuser", SCRAM_PASSWORD, "");
        let (code, message) = login_error(&proxy, "app").await;
        assert_eq!(code, "08006", "{tamper:?}: {message}");
        assert!(message.contains(expected) && message.contains("\"blue\""), "{tamper:?}: {message}");
        assert!(auth_errors(&proxy) >= 1.0, "{tamper:?}: pgflip_upstream_errors_total{{kind=\"auth\"}} not counted");
        assert!(proxy.is_running(), "{tamper:?}: the proxy exited");
        assert!(!proxy.output().contains(SCRAM_PASSWORD), "{tamper:?}: the password was logged");
    }
}

#[tokio::test]
async fn cleartext_and_md5_passwords_need_tls_or_the_opt_in() {
    let cluster = cluster();
    let secrets = format!(
        "[blue]\ncleartextuser = \"{CLEARTEXT_PASSWORD}\"\nmd5user = \"{MD5_PASSWORD}\"\nscramuser = \"{SCRAM_PASSWORD}\"\n"
    );
    let proxy = |params: &str| {
        let url = format!("postgres://127.0.0.1:{}/postgres?{params}", cluster.port());
        ProxyBuilder::default().upstream("blue", &url).active("blue").secrets_file(&secrets).spawn()
    };

    let plain = proxy("sslmode=disable");
    for (user, method) in [("cleartextuser", "cleartext"), ("md5user", "md5")] {
        let (code, message) = login_error(&plain, user).await;
        assert_eq!(code, "28000", "{user}: {message}");
        let why = format!("asks for the password with method {method} over a connection without TLS");
        assert!(message.contains(&why), "{user}: {message}");
        assert!(message.contains("allow_plaintext_passwords=true"), "{user}: {message}");
    }
    assert!(auth_errors(&plain) >= 2.0);
    // SCRAM sends no password: plain TCP is fine.
    assert_eq!(login(&plain, "scramuser").await.expect("SCRAM over plain TCP"), "scramuser");

    for params in ["sslmode=disable&allow_plaintext_passwords=true", "sslmode=require"] {
        let proxy = proxy(params);
        for user in ["cleartextuser", "md5user"] {
            assert_eq!(login(&proxy, user).await.unwrap_or_else(|e| panic!("{user} with {params}: {e}")), user);
        }
    }
}

#[tokio::test]
async fn connect_timeout_zero_waits_and_cancels_do_not() {
    let cluster = cluster();
    // A URL's connect_timeout=0 is libpq's "no bound": a login slower than the sidecar's
    // own bound (1 s) still succeeds, where the sidecar's bound refuses it.
    let slow = slow_relay(cluster.port(), Duration::from_millis(1500));
    let url = |params: &str| format!("postgres://postgres@127.0.0.1:{slow}/postgres?{params}");
    for (params, ok) in [("connect_timeout=0", true), ("sslmode=disable", false)] {
        let proxy =
            ProxyBuilder::default().upstream("blue", &url(params)).active("blue").arg("--connect-timeout").arg("1s");
        let proxy = proxy.spawn();
        match login(&proxy, "postgres").await {
            Ok(user) => assert!(ok, "{params}: logged in as {user} past the sidecar's bound"),
            Err(e) => assert!(!ok && e.code().is_some_and(|c| c.code() == "08001"), "{params}: {e}"),
        }
    }

    // A cancel whose upstream never answers (TLS: the SSLRequest waits) is given up.
    let silent = relay(cluster.port(), Tamper::SilentAfterFirst);
    let url = format!("postgres://postgres@127.0.0.1:{silent}/postgres?sslmode=require&connect_timeout=1");
    let proxy = ProxyBuilder::default().upstream("blue", &url).active("blue").spawn();
    let mut conn = RawConn::connect_startup(proxy.port(), "postgres", "postgres").expect("login");
    let (pid, key) = conn.backend_key.expect("BackendKeyData");
    let errors = |proxy: &Proxy| {
        let (_, text) = proxy.admin_get("/metrics").expect("GET /metrics");
        metric_sum(&text, "pgflip_upstream_errors_total", "kind=\"connect\"")
    };
    assert_eq!(errors(&proxy), 0.0);
    let mut cancel = RawConn::connect(proxy.port()).expect("cancel connection");
    cancel.send(&cancel_packet(pid, key)).expect("send CancelRequest");
    wait_until(Duration::from_secs(15), || (errors(&proxy) >= 1.0).then_some(()))
        .expect("the cancel towards a silent upstream timed out and was counted");
    assert_eq!(conn.query_value("SELECT 1").expect("the session still works"), Some("1".to_owned()));
}

/// A relay whose connections wait `delay` before the server's first bytes reach the proxy.
fn slow_relay(port: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let relay_port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else { continue };
            let (mut client_in, mut server_out) = (client.try_clone().expect("dup"), server.try_clone().expect("dup"));
            thread::spawn(move || std::io::copy(&mut client_in, &mut server_out));
            let (mut server_in, mut client_out) = (server, client);
            thread::spawn(move || {
                let mut first = [0u8; 1];
                if server_in.read(&mut first).unwrap_or(0) == 1 {
                    thread::sleep(delay);
                    let _ = client_out.write_all(&first);
                    let _ = std::io::copy(&mut server_in, &mut client_out);
                }
            });
        }
    });
    relay_port
}

/// What a client trying `password` as `user` is shown: the authentication codes in order,
/// the SCRAM salt (base64) and iteration count, and the final error.
#[derive(Debug)]
struct Attempt {
    codes: Vec<i32>,
    salt: String,
    iterations: u32,
    error: PgError,
}

fn scram_attempt(proxy: &Proxy, user: &str, password: &str) -> Attempt {
    let mut conn = RawConn::connect(proxy.port()).expect("connect");
    conn.send(&startup_packet(&[("user", user), ("database", "postgres")])).expect("startup");
    let mut codes = Vec::new();
    let mut next = |conn: &mut RawConn| match conn.read_message().expect("read").expect("open") {
        m if m.tag == b'R' => {
            codes.push(i32::from_be_bytes(m.body[..4].try_into().expect("code")));
            Ok(m.body[4..].to_vec())
        }
        m if m.tag == b'E' => Err(PgError::parse(&m.body)),
        m => panic!("{user}: unexpected {:?}", m.tag as char),
    };
    let mechanisms = next(&mut conn).expect("AuthenticationSASL");
    assert!(mechanisms.starts_with(b"SCRAM-SHA-256\0"), "{user}: {mechanisms:?}");
    let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    let mut initial = b"SCRAM-SHA-256\0".to_vec();
    initial.extend_from_slice(&(client.message().len() as i32).to_be_bytes());
    initial.extend_from_slice(client.message());
    conn.send(&frame(b'p', &initial)).expect("SASLInitialResponse");
    let server_first = next(&mut conn).expect("AuthenticationSASLContinue");
    let text = String::from_utf8(server_first.clone()).expect("UTF-8");
    let attr = |key: &str| text.split(',').find_map(|a| a.strip_prefix(key)).expect(key).to_owned();
    let (salt, iterations) = (attr("s="), attr("i=").parse().expect("count"));
    client.update(&server_first).expect("server-first-message");
    conn.send(&frame(b'p', client.message())).expect("SASLResponse");
    let error = next(&mut conn).expect_err("the proof of a wrong password or unknown user is refused");
    Attempt { codes, salt, iterations, error }
}

#[test]
fn unknown_users_are_asked_and_refused_like_known_ones() {
    let cluster = cluster();
    let verifier = cluster.psql(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE probe_alice PASSWORD 'alice-pw';
         SELECT rolpassword FROM pg_authid WHERE rolname = 'probe_alice'",
    );
    let proxy = ProxyBuilder::for_cluster(cluster)
        .auth_file(&format!("\"alice\" \"{verifier}\"\n\"carol\" \"carol-pw\"\n"))
        .spawn();

    let alice = scram_attempt(&proxy, "alice", "wrong");
    let mallory = scram_attempt(&proxy, "mallory", "wrong");
    let again = scram_attempt(&proxy, "mallory", "other");
    assert_eq!(alice.codes, vec![10, 11], "{alice:?}");
    assert_eq!(mallory.codes, alice.codes, "{mallory:?}");
    assert_eq!(mallory.iterations, alice.iterations, "the real users' count");
    assert_eq!(mallory.salt.len(), alice.salt.len(), "the real users' salt length");
    assert_eq!(again.salt, mallory.salt, "an unknown user's salt changes between attempts");
    assert_ne!(mallory.salt, scram_attempt(&proxy, "trudy", "wrong").salt);
    assert_eq!(scram_attempt(&proxy, "alice", "again").salt, alice.salt);

    assert_eq!((alice.error.code(), mallory.error.code()), ("28P01", "28P01"));
    assert_eq!(alice.error.severity(), mallory.error.severity());
    assert_eq!(alice.error.message().replace("alice", "USER"), mallory.error.message().replace("mallory", "USER"));
}
