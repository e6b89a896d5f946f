//! Authentication on both legs: clients against an auth file (SCRAM for SCRAM
//! verifiers and plain secrets, md5 for md5 hashes, 28P01 on any failure), and the
//! proxy against the upstream (secrets file, URL credentials, the client's user).
//! tests/proxy_upstream_auth.rs has what the proxy refuses on either leg.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::wire::startup_packet;
use support::{
    psql, shared_cluster, Cluster, Proxy, ProxyBuilder, RawConn, ReadOutcome, TestCa, MD5_PASSWORD, SCRAM_PASSWORD,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

async fn connect_as(proxy: &Proxy, user: &str, password: Option<&str>) -> Result<Client, tokio_postgres::Error> {
    let mut config = proxy.tokio_config(user, "postgres");
    if let Some(password) = password {
        config.push_str(&format!(" password='{password}'"));
    }
    let (client, connection) = tokio::time::timeout(Duration::from_secs(20), tokio_postgres::connect(&config, NoTls))
        .await
        .unwrap_or_else(|_| panic!("connect as {user}: no answer within 20 s"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn current_user(client: &Client) -> String {
    client.query_one("SELECT current_user::text", &[]).await.expect("SELECT current_user").get(0)
}

async fn expect_invalid_password(proxy: &Proxy, user: &str, password: Option<&str>) {
    match connect_as(proxy, user, password).await {
        Ok(_) => panic!("{user} logged in with a wrong or missing password"),
        Err(err) => assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{user}: expected 28P01, got {err}"),
    }
}

/// The authentication request the proxy sends for `user`: (auth code, rest of body).
fn auth_request(proxy: &Proxy, user: &str) -> (i32, Vec<u8>) {
    let mut conn = RawConn::connect(proxy.port()).expect("connect");
    conn.send(&startup_packet(&[("user", user), ("database", "postgres")])).expect("send startup");
    match conn.next_outcome() {
        ReadOutcome::Message(m) if m.tag == b'R' && m.body.len() >= 4 => {
            let code = i32::from_be_bytes([m.body[0], m.body[1], m.body[2], m.body[3]]);
            (code, m.body[4..].to_vec())
        }
        other => panic!("{user}: expected an authentication request, got {other:?}"),
    }
}

/// A userlist.txt with a SCRAM verifier (alice), an md5 hash (bob) and a plain
/// secret (carol); the verifier and hash are made by the cluster itself.
fn auth_file(cluster: &Cluster) -> String {
    static ROLES: AtomicU32 = AtomicU32::new(0);
    let role = format!("authfile_alice_{}", ROLES.fetch_add(1, Ordering::SeqCst));
    let verifier = cluster.psql(&format!(
        "SET password_encryption = 'scram-sha-256';
         CREATE ROLE {role} PASSWORD 'alice-pw';
         SELECT rolpassword FROM pg_authid WHERE rolname = '{role}';"
    ));
    assert!(verifier.starts_with("SCRAM-SHA-256$"), "{verifier}");
    let md5 = cluster.psql("SELECT 'md5' || md5('bob-pw' || 'bob')");
    format!("\"alice\" \"{verifier}\"\n\"bob\" \"{md5}\"\n\"carol\" \"carol-pw\"\n")
}

fn auth_proxy(cluster: &Cluster) -> Proxy {
    ProxyBuilder::default()
        .upstream("blue", &cluster.url_as("postgres", None))
        .active("blue")
        .auth_file(&auth_file(cluster))
        .spawn()
}

#[tokio::test]
async fn scram_client_auth_against_the_auth_file() {
    let cluster = shared_cluster();
    let proxy = auth_proxy(cluster);

    let (code, body) = auth_request(&proxy, "alice");
    assert_eq!(code, 10, "a SCRAM verifier must lead to AuthenticationSASL");
    assert!(String::from_utf8_lossy(&body).contains("SCRAM-SHA-256"), "mechanisms: {body:?}");
    let (code, _) = auth_request(&proxy, "carol");
    assert_eq!(code, 10, "a plain secret must lead to AuthenticationSASL");

    let alice = connect_as(&proxy, "alice", Some("alice-pw")).await.expect("alice with the right password");
    assert_eq!(current_user(&alice).await, "postgres", "upstream user from the URL");
    let carol = connect_as(&proxy, "carol", Some("carol-pw")).await.expect("carol with the right password");
    assert_eq!(current_user(&carol).await, "postgres");

    expect_invalid_password(&proxy, "alice", Some("wrong")).await;
    expect_invalid_password(&proxy, "carol", Some("alice-pw")).await;
    expect_invalid_password(&proxy, "mallory", Some("alice-pw")).await;

    let again = connect_as(&proxy, "alice", Some("alice-pw")).await.expect("alice again after failed attempts");
    assert_eq!(current_user(&again).await, "postgres");
}

#[tokio::test]
async fn md5_client_auth_against_the_auth_file() {
    let cluster = shared_cluster();
    let proxy = auth_proxy(cluster);
    let (code, body) = auth_request(&proxy, "bob");
    assert_eq!(code, 5, "an md5 hash must lead to AuthenticationMD5Password");
    assert_eq!(body.len(), 4, "md5 salt is four bytes");

    let bob = connect_as(&proxy, "bob", Some("bob-pw")).await.expect("bob with the right password");
    assert_eq!(current_user(&bob).await, "postgres");
    expect_invalid_password(&proxy, "bob", Some("bob-wrong")).await;
}

#[tokio::test]
async fn upstream_scram_and_md5_with_the_secrets_file() {
    let cluster = shared_cluster();
    // md5 over plain TCP needs the URL's opt-in (tests/proxy_upstream_auth.rs has the refusal).
    let proxy = ProxyBuilder::default()
        .upstream("blue", &format!("{}?allow_plaintext_passwords=true", cluster.url()))
        .active("blue")
        .secrets_file(&format!("[blue]\nscramuser = \"{SCRAM_PASSWORD}\"\nmd5user = \"{MD5_PASSWORD}\"\n"))
        .spawn();
    let scram = connect_as(&proxy, "scramuser", None).await.expect("scramuser through the proxy (upstream SCRAM)");
    assert_eq!(current_user(&scram).await, "scramuser");
    let md5 = connect_as(&proxy, "md5user", None).await.expect("md5user through the proxy (upstream md5)");
    assert_eq!(current_user(&md5).await, "md5user");
    let postgres =
        connect_as(&proxy, "postgres", None).await.expect("postgres, not in the secrets file, with no password");
    assert_eq!(current_user(&postgres).await, "postgres");

    let output = proxy.output();
    assert!(
        !output.contains(SCRAM_PASSWORD) && !output.contains(MD5_PASSWORD),
        "the proxy logged an upstream secret:\n{output}"
    );
}

#[tokio::test]
async fn secrets_file_wins_over_the_url_user() {
    let cluster = shared_cluster();
    let proxy = ProxyBuilder::default()
        .upstream("blue", &cluster.url_as("postgres", None))
        .active("blue")
        .secrets_file(&format!("[blue]\nscramuser = \"{SCRAM_PASSWORD}\"\n"))
        .spawn();
    let scram = connect_as(&proxy, "scramuser", None).await.expect("scramuser named in the secrets file");
    assert_eq!(current_user(&scram).await, "scramuser");
    let other = connect_as(&proxy, "md5user", None).await.expect("md5user, not in the secrets file, uses the URL user");
    assert_eq!(current_user(&other).await, "postgres");
}

#[tokio::test]
async fn url_credentials_and_pass_through_defaults() {
    let cluster = shared_cluster();

    let proxy = ProxyBuilder::default()
        .upstream("blue", &cluster.url_as("scramuser", Some(SCRAM_PASSWORD)))
        .active("blue")
        .spawn();
    let client = connect_as(&proxy, "postgres", None).await.expect("URL user with a SCRAM password");
    assert_eq!(current_user(&client).await, "scramuser");
    drop(client);
    drop(proxy);

    let md5_url = format!("{}?allow_plaintext_passwords=true", cluster.url_as("md5user", Some(MD5_PASSWORD)));
    let proxy = ProxyBuilder::default().upstream("blue", &md5_url).active("blue").spawn();
    let client = connect_as(&proxy, "someone", None).await.expect("URL user with an md5 password");
    assert_eq!(current_user(&client).await, "md5user");
    drop(client);
    drop(proxy);

    let proxy = ProxyBuilder::for_cluster(cluster).spawn();
    let client = connect_as(&proxy, "postgres", None).await.expect("no URL user: the client's user passes through");
    assert_eq!(current_user(&client).await, "postgres");
}

#[tokio::test]
async fn wrong_upstream_password_is_an_error_not_a_leak() {
    let cluster = shared_cluster();
    let bad_secret = "not-the-password-3141";
    let mut proxy =
        ProxyBuilder::default().upstream("blue", &cluster.url_as("scramuser", Some(bad_secret))).active("blue").spawn();
    for attempt in 1..=2 {
        match connect_as(&proxy, "postgres", None).await {
            Ok(_) => panic!("attempt {attempt}: session started with a wrong upstream password"),
            Err(err) => {
                let code = err.code().map(|c| c.code().to_string()).unwrap_or_default();
                assert!(
                    code == "28P01" || code.starts_with("08"),
                    "attempt {attempt}: expected 28P01 or class 08, got {err}"
                );
            }
        }
    }
    assert!(proxy.is_running(), "proxy exited after an upstream auth failure");
    let output = proxy.output();
    assert!(!output.contains(bad_secret), "the proxy logged the URL password:\n{output}");
}

#[test]
fn psql_password_auth_plain_and_over_client_tls() {
    let cluster = shared_cluster();
    let ca = TestCa::new("auth");
    let proxy = ProxyBuilder::default()
        .upstream("blue", &cluster.url_as("postgres", None))
        .active("blue")
        .auth_file(&auth_file(cluster))
        .client_tls(&ca.server_cert, &ca.server_key)
        .spawn();
    let plain = |user: &str, password: &str| format!("{} password={password}", proxy.conninfo(user, "postgres"));
    let tls = |user: &str, password: &str| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user={user} password={password} dbname=postgres \
             sslmode=verify-full sslrootcert={}",
            proxy.port(),
            ca.ca_cert.display()
        )
    };
    for (what, conninfo) in [
        ("SCRAM verifier, plain", plain("alice", "alice-pw")),
        ("plain secret, plain", plain("carol", "carol-pw")),
        ("md5 hash, plain", plain("bob", "bob-pw")),
        ("SCRAM verifier, TLS", tls("alice", "alice-pw")),
        ("md5 hash, TLS", tls("bob", "bob-pw")),
    ] {
        let out = psql(&conninfo, "SELECT current_user");
        out.assert_success(&format!("psql login ({what})"));
        assert_eq!(out.lines(), vec!["postgres"], "{what}");
    }
    for (what, conninfo) in [
        ("wrong SCRAM password, plain", plain("alice", "nope")),
        ("wrong SCRAM password, TLS", tls("alice", "nope")),
        ("wrong md5 password, TLS", tls("bob", "nope")),
    ] {
        let out = psql(&conninfo, "SELECT current_user");
        assert!(!out.success(), "{what}: psql logged in:\n{}", out.stdout);
    }
}
