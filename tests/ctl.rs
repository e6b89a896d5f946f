//! `pgflip ctl` against a real sidecar: status, pause and resume, switch, the generation
//! check, the admin token, and the exit codes when there is no usable answer.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::{free_port, shared_cluster, temp_dir, Cluster, Proxy, ProxyBuilder};

const TOKEN: &str = "ctl-s3cret";

/// How one `pgflip ctl` run ended.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// `pgflip ctl ARGS` with `PGFLIP_*` variables set only as `env` says.
fn ctl_env(env: &[(&str, &str)], args: &[&str]) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgflip"));
    cmd.env_remove("PGFLIP_ADMIN_URL").env_remove("PGFLIP_ADMIN_TOKEN_FILE").envs(env.iter().copied());
    let out = cmd.arg("ctl").args(args).output().expect("run pgflip ctl");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ctl(args: &[&str]) -> Ran {
    ctl_env(&[], args)
}

/// A sidecar that requires [`TOKEN`], and a file holding it.
struct Sidecar {
    /// Stopped on drop.
    _proxy: Proxy,
    url: String,
    token_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    fn start(builder: ProxyBuilder) -> Sidecar {
        let proxy = builder.admin_token(TOKEN).spawn();
        let dir = temp_dir("pgflip-ctl-");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("  {TOKEN}\n")).expect("write token file");
        let url = format!("http://127.0.0.1:{}", proxy.admin_port());
        Sidecar { _proxy: proxy, url, token_file, _dir: dir }
    }

    /// `pgflip ctl --admin-url URL --token-file FILE ARGS`.
    fn ctl(&self, args: &[&str]) -> Ran {
        let token = self.token_file.to_str().expect("UTF-8 temp path");
        let mut all = vec!["--admin-url", self.url.as_str(), "--token-file", token];
        all.extend_from_slice(args);
        ctl(&all)
    }

    fn status(&self) -> Value {
        let ran = self.ctl(&["status"]);
        assert_eq!(ran.code, Some(0), "{ran:?}");
        ran.json()
    }
}

/// A second cluster for switch tests.
fn green() -> &'static Cluster {
    static GREEN: OnceLock<Cluster> = OnceLock::new();
    GREEN.get_or_init(Cluster::start)
}

#[test]
fn status_prints_the_pretty_json_and_exits_zero() {
    let sidecar = Sidecar::start(ProxyBuilder::for_cluster(shared_cluster()));
    let ran = sidecar.ctl(&["status"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stdout.contains("\"active\": \"blue\""), "{ran:?}");
    assert!(ran.stdout.lines().count() > 5, "pretty-printed: {ran:?}");
    let status = ran.json();
    assert_eq!(status["generation"], 1);
    assert_eq!(status["paused"], false);
    assert!(ran.stderr.is_empty(), "{ran:?}");

    // The same through the environment, with a trailing slash on the URL.
    let url = format!("{}/", sidecar.url);
    let token = sidecar.token_file.to_str().unwrap();
    let ran = ctl_env(&[("PGFLIP_ADMIN_URL", &url), ("PGFLIP_ADMIN_TOKEN_FILE", token)], &["status"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.json()["active"], "blue");
}

#[test]
fn pause_then_resume_exit_zero_and_status_shows_the_gate() {
    let sidecar = Sidecar::start(ProxyBuilder::for_cluster(shared_cluster()));
    let ran = sidecar.ctl(&["pause", "--drain-timeout-ms", "2000", "--lease-ms", "30000", "--on-timeout", "abort"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.json()["paused"], true);
    let status = sidecar.status();
    assert_eq!(status["paused"], true, "{status}");
    assert!(status["lease_ms_left"].as_u64().is_some_and(|left| left > 0), "{status}");

    let ran = sidecar.ctl(&["resume", "--generation", "1"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.json()["resumed"], true);
    assert_eq!(sidecar.status()["paused"], false);
}

#[test]
fn switch_moves_to_green_and_a_stale_generation_exits_one_with_the_409() {
    let builder = ProxyBuilder::for_cluster(shared_cluster()).upstream("green", &green().url());
    let sidecar = Sidecar::start(builder);
    let ran = sidecar.ctl(&["switch", "green", "--generation", "1", "--drain-timeout-ms", "2000"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let answer = ran.json();
    assert_eq!((answer["from"].as_str(), answer["to"].as_str()), (Some("blue"), Some("green")), "{answer}");
    assert_eq!(answer["generation"], 2);

    let status = sidecar.status();
    assert_eq!(status["active"], "green", "{status}");
    assert_eq!(status["generation"], 2, "{status}");

    let ran = sidecar.ctl(&["switch", "blue", "--generation", "1"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let refusal = ran.json();
    assert!(refusal["error"].as_str().is_some_and(|e| e.contains("generation")), "{ran:?}");
    assert!(ran.stderr.contains("pgflip ctl: POST /v1/switch answered 409"), "{ran:?}");
    assert_eq!(sidecar.status()["active"], "green", "a refused switch changes nothing");

    let ran = sidecar.ctl(&["switch", "nowhere"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("answered 404"), "{ran:?}");
}

#[test]
fn a_missing_or_wrong_token_exits_one_with_the_refusal() {
    let sidecar = Sidecar::start(ProxyBuilder::for_cluster(shared_cluster()));
    let ran = ctl(&["--admin-url", &sidecar.url, "status"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.json()["error"].as_str().is_some_and(|e| e.contains("Authorization")), "{ran:?}");
    assert!(ran.stderr.contains("pgflip ctl: GET /v1/status answered 401"), "{ran:?}");

    let dir = temp_dir("pgflip-ctl-");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let ran = ctl(&["--admin-url", &sidecar.url, "--token-file", wrong.to_str().unwrap(), "pause"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert_eq!(ran.json()["error"], "wrong admin token");
    assert!(ran.stderr.contains("pgflip ctl: POST /v1/pause answered 403"), "{ran:?}");
    assert_eq!(sidecar.status()["paused"], false, "a refused pause closes nothing");

    let missing = dir.path().join("missing");
    let ran = ctl(&["--admin-url", &sidecar.url, "--token-file", missing.to_str().unwrap(), "status"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("cannot read the admin token file"), "{ran:?}");
}

#[test]
fn an_unreachable_sidecar_exits_two_and_says_where() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let ran = ctl(&["--admin-url", &url, "status"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stdout.is_empty(), "{ran:?}");
    assert!(ran.stderr.contains("cannot reach the sidecar's admin API"), "{ran:?}");
    assert!(ran.stderr.contains(&url), "{ran:?}");
}

#[test]
fn a_bad_admin_url_exits_two() {
    let ran = ctl(&["--admin-url", "https://127.0.0.1:9187", "status"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("is https: give the CA file"), "{ran:?}");

    let ran = ctl(&["--admin-url", "ftp://127.0.0.1:9187", "status"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("unsupported scheme"), "{ran:?}");

    let ran = ctl_env(&[("PGFLIP_ADMIN_URL", "127.0.0.1:9187")], &["status"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("http://HOST:PORT"), "{ran:?}");
}

/// Answers the first connection on a fresh port with `answer`, then closes it.
fn answer_once(answer: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = Vec::new();
        let mut buf = [0; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = conn.write_all(answer);
    });
    port
}

#[test]
fn a_chunked_answer_is_printed_and_garbage_exits_two() {
    let port = answer_once(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
          9\r\n{\"active\"\r\n9\r\n: \"blue\"}\r\n0\r\n\r\n",
    );
    let ran = ctl(&["--admin-url", &format!("http://127.0.0.1:{port}"), "status"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.json()["active"], "blue");

    let port = answer_once(b"SSH-2.0-OpenSSH_9.6\r\n");
    let ran = ctl(&["--admin-url", &format!("http://127.0.0.1:{port}"), "status"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("not valid HTTP/1.1"), "{ran:?}");
    assert!(ran.stderr.contains(&format!("GET http://127.0.0.1:{port}/v1/status")), "{ran:?}");

    let port = answer_once(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nBad Gateway");
    let ran = ctl(&["--admin-url", &format!("http://127.0.0.1:{port}"), "resume"]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("answered 502 with a body that is not JSON"), "{ran:?}");
}
