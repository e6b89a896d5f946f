//! The `pgflip proxy` process under test: a builder over its flags, readiness by
//! polling `GET /readyz`, SIGTERM then SIGKILL on drop, and its output kept in a
//! temp file that is printed when a test fails.

use super::{clear_pg_env, free_port, http, rss_kib, send_signal, tail_file, temp_dir, Cluster};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

type ConfigFn = Box<dyn Fn(u16, u16) -> String>;

/// Flags for one `pgflip proxy` process; ports are picked at spawn time.
#[derive(Default)]
pub struct ProxyBuilder {
    upstreams: Vec<(String, String)>,
    active: Option<String>,
    auth_file: Option<String>,
    secrets_file: Option<String>,
    admin_token: Option<String>,
    client_tls: Option<(PathBuf, PathBuf)>,
    shutdown_grace: Option<u64>,
    admin_host: Option<String>,
    admin_port: Option<u16>,
    config: Option<ConfigFn>,
    extra_args: Vec<String>,
    unix_socket: bool,
}

/// How a process that was expected to stop by itself ended.
#[derive(Debug)]
pub struct Exited {
    /// `None` when it was still running at the deadline (and was killed).
    pub status: Option<ExitStatus>,
    pub output: String,
}

impl ProxyBuilder {
    /// One upstream `blue` pointing at `cluster` (client user passes through), active.
    pub fn for_cluster(cluster: &Cluster) -> ProxyBuilder {
        ProxyBuilder::default().upstream("blue", &cluster.url()).active("blue")
    }

    pub fn upstream(mut self, name: &str, url: &str) -> Self {
        self.upstreams.push((name.to_string(), url.to_string()));
        self
    }

    pub fn active(mut self, name: &str) -> Self {
        self.active = Some(name.to_string());
        self
    }

    /// Contents of the client auth file (PgBouncer userlist.txt format).
    pub fn auth_file(mut self, contents: &str) -> Self {
        self.auth_file = Some(contents.to_string());
        self
    }

    /// Contents of the upstream secrets file (TOML, one table per upstream).
    pub fn secrets_file(mut self, contents: &str) -> Self {
        self.secrets_file = Some(contents.to_string());
        self
    }

    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_string());
        self
    }

    /// TLS offered to clients (`--tls-cert`, `--tls-key`).
    pub fn client_tls(mut self, cert: &Path, key: &Path) -> Self {
        self.client_tls = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    pub fn shutdown_grace(mut self, seconds: u64) -> Self {
        self.shutdown_grace = Some(seconds);
        self
    }

    /// Host of `--admin-listen` (default 127.0.0.1).
    /// The admin API's port (default: a free one).
    pub fn admin_port(mut self, port: u16) -> Self {
        self.admin_port = Some(port);
        self
    }

    pub fn admin_host(mut self, host: &str) -> Self {
        self.admin_host = Some(host.to_string());
        self
    }

    /// Start with only `--config FILE`; `make(listen_port, admin_port)` writes the TOML.
    pub fn config(mut self, make: impl Fn(u16, u16) -> String + 'static) -> Self {
        self.config = Some(Box::new(make));
        self
    }

    /// Also listen on a Unix-domain socket in the proxy's directory (`--listen-unix`).
    pub fn unix_socket(mut self) -> Self {
        self.unix_socket = true;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_string());
        self
    }

    fn command(&self, dir: &Path, port: u16, admin_port: u16) -> Command {
        let write = |name: &str, contents: &str| -> PathBuf {
            let path = dir.join(name);
            std::fs::write(&path, contents).expect("write proxy input file");
            path
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgflip"));
        clear_pg_env(&mut cmd);
        cmd.env("RUST_BACKTRACE", "1").env("NO_COLOR", "1").arg("proxy");
        if let Some(make) = &self.config {
            cmd.arg("--config").arg(write("pgflip.toml", &make(port, admin_port)));
        } else {
            let admin_host = self.admin_host.as_deref().unwrap_or("127.0.0.1");
            cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
            cmd.arg("--admin-listen").arg(format!("{admin_host}:{admin_port}"));
            for (name, url) in &self.upstreams {
                cmd.arg("--upstream").arg(format!("{name}={url}"));
            }
            if let Some(active) = &self.active {
                cmd.arg("--active").arg(active);
            }
        }
        if let Some(contents) = &self.auth_file {
            cmd.arg("--auth-file").arg(write("userlist.txt", contents));
        }
        if let Some(contents) = &self.secrets_file {
            cmd.arg("--secrets-file").arg(write("secrets.toml", contents));
        }
        if let Some(token) = &self.admin_token {
            cmd.arg("--admin-token-file").arg(write("admin-token", &format!("{token}\n")));
        }
        if let Some((cert, key)) = &self.client_tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if self.config.is_none() {
            // One second unless a test asks for more, so that dropping a proxy with
            // sessions still open does not wait for the 30 s default.
            cmd.arg("--shutdown-grace").arg(self.shutdown_grace.unwrap_or(1).to_string());
        }
        if self.unix_socket {
            cmd.arg("--listen-unix").arg(dir);
        }
        cmd.args(&self.extra_args);
        let log = std::fs::File::create(dir.join("proxy.log")).expect("create proxy.log");
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("dup log")).stderr(log);
        cmd
    }

    /// Spawns the proxy and waits until `GET /readyz` answers 200. Panics with the
    /// proxy's output when it exits or is not ready within 30 s.
    pub fn spawn(self) -> Proxy {
        let mut last_output = String::new();
        for _attempt in 0..3 {
            let dir = temp_dir("pgflip-proxy-");
            let (port, admin_port) = (free_port(), self.admin_port.unwrap_or_else(free_port));
            let child = self.command(dir.path(), port, admin_port).spawn().expect("spawn pgflip proxy");
            let admin_ip = self.admin_host.as_deref().and_then(|h| h.parse().ok()).unwrap_or([127, 0, 0, 1].into());
            let admin_addr = std::net::SocketAddr::new(admin_ip, admin_port);
            let admin_token = self.admin_token.clone();
            let mut proxy = Proxy { child, dir, port, admin_port, admin_addr, admin_token, status: None };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = proxy.child.try_wait().expect("try_wait") {
                    proxy.status = Some(status);
                    last_output = proxy.output();
                    break;
                }
                if let Ok((200, _)) = proxy.admin_get("/readyz") {
                    return proxy;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "pgflip proxy not ready within 30 s (GET /readyz on port {admin_port}); \
                         output:\n{}",
                        proxy.output()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !last_output.contains("in use") {
                break;
            }
        }
        panic!("pgflip proxy exited before it was ready; output:\n{last_output}");
    }

    /// Spawns the proxy expecting it to exit by itself within `timeout`.
    pub fn run_to_exit(self, timeout: Duration) -> Exited {
        let dir = temp_dir("pgflip-proxy-");
        let mut child = self.command(dir.path(), free_port(), free_port()).spawn().expect("spawn pgflip proxy");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Exited { status, output: std::fs::read_to_string(dir.path().join("proxy.log")).unwrap_or_default() }
    }
}

/// A running `pgflip proxy`; SIGTERM, then SIGKILL after 3 s, on drop.
pub struct Proxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    admin_port: u16,
    /// The admin API's address (its host is 127.0.0.1 unless the builder said otherwise).
    admin_addr: std::net::SocketAddr,
    /// The builder's `admin_token`; without one the proxy makes its own at start.
    admin_token: Option<String>,
    status: Option<ExitStatus>,
}

impl Proxy {
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// A proxy in front of `cluster` with default flags.
    pub fn start(cluster: &Cluster) -> Proxy {
        ProxyBuilder::for_cluster(cluster).spawn()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The directory of the proxy's Unix-domain socket (with [`ProxyBuilder::unix_socket`]):
    /// libpq's `host` for it.
    pub fn unix_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The proxy's Unix-domain socket file, `.s.PGSQL.PORT` in [`Proxy::unix_dir`].
    pub fn unix_socket_path(&self) -> PathBuf {
        self.dir.path().join(format!(".s.PGSQL.{}", self.port))
    }

    /// libpq conninfo through the proxy, TLS off.
    pub fn conninfo(&self, user: &str, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname={dbname} sslmode=disable", self.port)
    }

    /// Connection string for tokio-postgres through the proxy.
    pub fn tokio_config(&self, user: &str, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname={dbname} connect_timeout=10", self.port)
    }

    /// `GET path` on the admin listener with the proxy's admin token: the builder's, or the
    /// one it made at start (see [`http::request`]): (status, body).
    pub fn admin_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let auth = self.admin_token.as_ref().map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|auth| ("Authorization", auth.as_str())).collect();
        http::request_to(self.admin_addr, "GET", path, &headers, "")
    }

    /// `POST path` with a JSON body on the admin listener with the proxy's admin token (the
    /// builder's, or the one it made at start): (status, body).
    pub fn admin_post(&self, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let auth = self.admin_token.as_ref().map(|token| format!("Bearer {token}"));
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(auth.iter().map(|auth| ("Authorization", auth.as_str())));
        http::request_to(self.admin_addr, "POST", path, &headers, body)
    }

    /// `POST path` whose answer is JSON: (status, the answer parsed); panics when the call
    /// fails or the answer is not JSON.
    pub fn admin_post_json(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (status, text) = self.admin_post(path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let answer = serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path} answered {text:?}: {e}"));
        (status, answer)
    }

    /// `POST path` with a bearer token: (status, body).
    pub fn admin_post_with_token(&self, path: &str, body: &str, token: &str) -> std::io::Result<(u16, String)> {
        let auth = format!("Bearer {token}");
        http::request_to(self.admin_addr, "POST", path, &[("Authorization", auth.as_str())], body)
    }

    /// `method path` on the admin listener with no token at all: (status, body).
    pub fn admin_without_token(&self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        http::request_without_token(self.admin_addr, method, path, &[], body)
    }

    /// The token the proxy made at start (it has no `admin_token`), from its file.
    pub fn made_token(&self) -> String {
        pgflip::admin_token::read_default(self.admin_port)
            .expect("read the admin token file")
            .unwrap_or_else(|| panic!("no admin token file at {}", self.made_token_path().display()))
    }

    /// Where the proxy keeps the token it made at start.
    pub fn made_token_path(&self) -> PathBuf {
        pgflip::admin_token::default_path(self.admin_port)
    }

    /// Everything the proxy wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// True once the proxy's output contains `needle`, waiting up to `timeout` for it: the
    /// proxy writes its log from a background thread, so a line can land after the answer
    /// that it describes.
    pub fn output_shows(&self, needle: &str, timeout: Duration) -> bool {
        super::wait_until(timeout, || self.output().contains(needle).then_some(())).is_some()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("proxy.log")
    }

    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid()).expect("read VmRSS of the proxy")
    }

    pub fn sigterm(&self) {
        assert!(send_signal(self.pid(), "TERM"), "kill -TERM {}", self.pid());
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status.is_none()
    }

    /// Waits for the process to exit; `None` if it is still running at the deadline.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.status
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.is_running() {
            send_signal(self.pid(), "TERM");
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "---- pgflip proxy output (pid {}, port {}, admin {}) ----\n{}\n---- end ----",
                self.child.id(),
                self.port,
                self.admin_port,
                tail_file(&self.log_path(), 300)
            );
        }
    }
}
