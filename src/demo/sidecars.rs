//! The demo's sidecars: `pgflip proxy` processes of this very binary, as an application's
//! pods would run them, each with its own listener and admin API, and the admin token it
//! made at start (which the demo's controller finds by itself); killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::error::DemoError;
use super::postgres::free_port;
use crate::ctl::{send, AdminUrl, Call};

/// The application's role and password (seeds/schema.sql creates it).
pub const APP_USER: &str = "ledger_app";
pub const APP_PASSWORD: &str = "ledger-app";
/// The dashboards' read-only role (seeds/schema.sql creates it); the standby listener's user.
pub const READER_USER: &str = "ledger_reader";
pub const READER_PASSWORD: &str = "ledger-reader";

pub struct Sidecar {
    pub port: u16,
    /// The standby listener: read-only sessions on the upstream that is not active.
    pub standby_port: u16,
    pub admin_url: String,
    admin_port: u16,
    _child: Child,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        // The process is killed, not stopped: the admin token file it made is the demo's to remove.
        let _ = std::fs::remove_file(crate::admin_token::default_path(self.admin_port));
    }
}

/// Starts `count` sidecars serving blue, their files in `dir`, logging into
/// `logs/sidecar-N.log`, and waits until each is ready.
pub async fn start(
    count: usize,
    blue_port: u16,
    green_port: u16,
    dir: &Path,
    logs: PathBuf,
) -> Result<Vec<Sidecar>, DemoError> {
    let exe = std::env::current_exe().map_err(DemoError::io("finding the pgflip binary"))?;
    let upstream =
        |name: &str, port: u16| format!("{name}=postgres://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{port}/ledger");
    // The reader logs in as itself (the URLs' user is the app's, fenced on the standby).
    let secrets = dir.join("sidecar-secrets.toml");
    let entry = format!("{READER_USER} = \"{READER_PASSWORD}\"\n");
    std::fs::write(&secrets, format!("[blue]\n{entry}[green]\n{entry}"))
        .map_err(DemoError::io(format!("writing {}", secrets.display())))?;
    let mut sidecars = Vec::with_capacity(count);
    for index in 0..count {
        let (port, standby_port, admin_port) = (free_port()?, free_port()?, free_port()?);
        let log_path = logs.join(format!("sidecar-{index}.log"));
        let log =
            std::fs::File::create(&log_path).map_err(DemoError::io(format!("creating {}", log_path.display())))?;
        let err = log.try_clone().map_err(DemoError::io("duplicating the sidecar log"))?;
        let child = Command::new(&exe)
            .args(["--log-format", "json", "proxy", "--active", "blue", "--shutdown-grace", "1"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--listen-standby")
            .arg(format!("127.0.0.1:{standby_port}"))
            .arg("--secrets-file")
            .arg(&secrets)
            .arg("--upstream")
            .arg(upstream("blue", blue_port))
            .arg("--upstream")
            .arg(upstream("green", green_port))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(DemoError::io("starting a sidecar"))?;
        let admin_url = format!("http://127.0.0.1:{admin_port}");
        let sidecar = Sidecar { port, standby_port, admin_url, admin_port, _child: child };
        wait_ready(&sidecar, index).await?;
        sidecars.push(sidecar);
    }
    Ok(sidecars)
}

async fn wait_ready(sidecar: &Sidecar, index: usize) -> Result<(), DemoError> {
    let url: AdminUrl = sidecar.admin_url.parse().map_err(|e| DemoError::Sidecar { index, message: format!("{e}") })?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let call = Call { method: "GET", path: "/readyz".into(), body: None, deadline: Duration::from_secs(2) };
        if let Ok(response) = send(&url, None, None, &call).await {
            if response.status == 200 {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(DemoError::Sidecar { index, message: "not ready within 30 s (see its log)".into() });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The upstream a sidecar serves, from `GET /v1/status`.
pub async fn active(sidecar: &Sidecar) -> Option<String> {
    let url: AdminUrl = sidecar.admin_url.parse().ok()?;
    let call = Call { method: "GET", path: "/v1/status".into(), body: None, deadline: Duration::from_secs(5) };
    // The sidecar made its token at start, in a file on this host the demo reads.
    let token = crate::ctl::default_token(&url).ok()??;
    let response = send(&url, Some(&token), None, &call).await.ok()?;
    let status: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    status["active"].as_str().map(str::to_owned)
}
