//! `pgflip ctl`: the operators' thin client of a sidecar's admin API
//! ([`crate::proxy::admin`]). One call per run; the JSON answer goes to stdout, pretty-printed,
//! whatever its status.
//!
//! - `status`: `GET /v1/status`
//! - `pause`: `POST /v1/pause` ([`crate::api::PauseRequest`])
//! - `resume`: `POST /v1/resume` ([`crate::api::ResumeRequest`])
//! - `switch TO`: `POST /v1/switch` ([`crate::api::SwitchRequest`])
//! - `standby UPSTREAM`: `PUT /v1/standby` ([`crate::api::StandbyReport`]), what
//!   `pgflip cutover standby-report` sends, by hand
//!
//! Exit codes: 0 on a 2xx answer, 1 on any other status, 2 when the sidecar cannot be
//! reached or does not answer JSON over HTTP/1.1.

mod error;
mod http;
mod response;
mod url;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::api::{OnTimeout, OnUnmovable, PauseRequest, ResumeRequest, StandbyReport, StandbyState, SwitchRequest};

pub use error::{CtlError, ResponseError, UrlError};
pub use http::{send, AdminTls, Call};
pub use response::{read_response, Response};
pub use url::{AdminUrl, Scheme};

/// The sidecar answered 2xx.
pub const EXIT_OK: u8 = 0;
/// The sidecar answered with another status (refused, conflict, unauthorized, ...).
pub const EXIT_REFUSED: u8 = 1;
/// No usable answer: unreachable, timed out, not HTTP or not JSON; or a bad token file.
pub const EXIT_NO_ANSWER: u8 = 2;

/// Deadline of calls that do not drain sessions.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Added to the drain timeout of a pause or switch: moving sessions comes after the drain.
const DEADLINE_AFTER_DRAIN: Duration = Duration::from_secs(30);

/// `pgflip ctl`: where the admin API is, how to authenticate, and what to ask.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The sidecar's admin API, http://HOST:PORT or https://HOST:PORT.
    #[arg(long, env = "PGFLIP_ADMIN_URL", default_value = "http://127.0.0.1:9187", value_name = "URL")]
    pub admin_url: AdminUrl,
    /// For an https admin URL: the CA file (PEM) that signs the sidecar's admin certificate.
    #[arg(long, env = "PGFLIP_ADMIN_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// File holding the admin token, sent as `Authorization: Bearer <token>`. Without it,
    /// for a loopback URL: the token a sidecar on this host made for that port, if any
    /// ($XDG_RUNTIME_DIR/pgflip/admin-PORT.token, else /tmp/pgflip-UID/admin-PORT.token).
    #[arg(long, env = "PGFLIP_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Action,
}

/// One admin API call.
#[derive(Debug, Clone, Subcommand)]
pub enum Action {
    /// Show the active upstream, the generation, the sessions and the pause state.
    Status,
    /// Close the gate: hold new transactions and wait for sessions to reach a transaction boundary.
    Pause {
        #[command(flatten)]
        drain: DrainArgs,
        /// Refuse unless the sidecar is at this generation.
        #[arg(long)]
        generation: Option<u64>,
        /// The upstream a switch will follow the pause to: sessions that set a setting it
        /// lacks (another PostgreSQL major version) count as unmovable.
        #[arg(long, value_name = "UPSTREAM")]
        to: Option<String>,
    },
    /// Open the gate: held sessions go on.
    Resume {
        /// Refuse unless the sidecar is at this generation.
        #[arg(long)]
        generation: Option<u64>,
    },
    /// Move every session to another upstream, pausing first when not paused.
    Switch {
        /// The upstream to move to.
        to: String,
        #[command(flatten)]
        drain: DrainArgs,
        /// Refuse unless the sidecar is at this generation.
        #[arg(long)]
        generation: Option<u64>,
    },
    /// Report an upstream that is not active as the standby, with its replication lag.
    Standby {
        /// The upstream the report is about.
        upstream: String,
        /// What the upstream is as a standby.
        #[arg(long, value_enum)]
        state: StandbyStateArg,
        /// How many seconds it trails the active upstream by (unknown when left out).
        #[arg(long, value_name = "SECONDS", value_parser = parse_lag, allow_hyphen_values = true)]
        lag: Option<f64>,
    },
}

/// The options of the pause that `pause` and `switch` start with.
#[derive(Debug, Clone, Default, Args)]
pub struct DrainArgs {
    /// How long to wait for sessions to reach a transaction boundary: seconds, or a number
    /// with a unit (500ms, 5s, 1m) (sidecar default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_millis, conflicts_with = "drain_timeout_ms")]
    pub drain_timeout: Option<u64>,
    /// The same in milliseconds.
    #[arg(long, value_name = "MS")]
    pub drain_timeout_ms: Option<u64>,
    /// How long the pause holds without a resume before traffic resumes by itself (sidecar
    /// default 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_millis, conflicts_with = "lease_ms")]
    pub lease: Option<u64>,
    /// The same in milliseconds.
    #[arg(long, value_name = "MS")]
    pub lease_ms: Option<u64>,
    /// What to do with sessions still inside a transaction at the drain deadline.
    #[arg(long, value_enum)]
    pub on_timeout: Option<OnTimeoutArg>,
    /// What to do with parked sessions that cannot move (temp tables, session advisory
    /// locks, WITH HOLD cursors, settings the target lacks).
    #[arg(long, value_enum)]
    pub on_unmovable: Option<OnUnmovableArg>,
}

/// `--on-unmovable`, as [`OnUnmovable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnUnmovableArg {
    /// Give the pause up and list them: traffic goes on where it was.
    Block,
    /// End them (FATAL 57P01 naming the reason); their clients reconnect.
    Terminate,
}

impl From<OnUnmovableArg> for OnUnmovable {
    fn from(arg: OnUnmovableArg) -> OnUnmovable {
        match arg {
            OnUnmovableArg::Block => OnUnmovable::Block,
            OnUnmovableArg::Terminate => OnUnmovable::Terminate,
        }
    }
}

/// `--on-timeout`, as [`OnTimeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnTimeoutArg {
    /// Give the pause up: traffic goes on where it was.
    Abort,
    /// End the blocking sessions (FATAL 57P01); their clients reconnect.
    Terminate,
}

impl From<OnTimeoutArg> for OnTimeout {
    fn from(arg: OnTimeoutArg) -> OnTimeout {
        match arg {
            OnTimeoutArg::Abort => OnTimeout::Abort,
            OnTimeoutArg::Terminate => OnTimeout::Terminate,
        }
    }
}

/// `--state`, as [`StandbyState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StandbyStateArg {
    /// A replication link feeds it from the active upstream.
    Replicating,
    /// Not to be read from for now.
    Fenced,
    /// Gone for good.
    Retired,
}

impl From<StandbyStateArg> for StandbyState {
    fn from(arg: StandbyStateArg) -> StandbyState {
        match arg {
            StandbyStateArg::Replicating => StandbyState::Replicating,
            StandbyStateArg::Fenced => StandbyState::Fenced,
            StandbyStateArg::Retired => StandbyState::Retired,
        }
    }
}

/// `--lag`: zero or more seconds, or a duration with a unit (500ms, 2m).
fn parse_lag(text: &str) -> Result<f64, String> {
    crate::duration::parse_flag(text).map(|lag| lag.as_secs_f64())
}

/// `--drain-timeout`, `--lease`: a duration, in whole milliseconds as the API takes it.
fn parse_millis(text: &str) -> Result<u64, String> {
    let duration = crate::duration::parse_flag(text)?;
    u64::try_from(duration.as_millis()).map_err(|_| format!("{text:?} is too long"))
}

impl Action {
    /// The request this action sends.
    fn call(&self) -> Result<Call, CtlError> {
        let call = match self {
            Action::Status => Call { method: "GET", path: "/v1/status".into(), body: None, deadline: DEFAULT_DEADLINE },
            Action::Pause { drain, generation, to } => {
                let body = PauseRequest {
                    drain_timeout_ms: drain.drain_timeout_ms(),
                    lease_ms: drain.lease_ms(),
                    on_timeout: drain.on_timeout.map(OnTimeout::from),
                    on_unmovable: drain.on_unmovable.map(OnUnmovable::from),
                    generation: *generation,
                    to: to.clone(),
                    to_lacks: None,
                };
                Call {
                    method: "POST",
                    path: "/v1/pause".into(),
                    body: Some(serde_json::to_vec(&body)?),
                    deadline: drain.deadline(),
                }
            }
            Action::Resume { generation } => {
                let body = ResumeRequest { generation: *generation };
                Call {
                    method: "POST",
                    path: "/v1/resume".into(),
                    body: Some(serde_json::to_vec(&body)?),
                    deadline: DEFAULT_DEADLINE,
                }
            }
            Action::Switch { to, drain, generation } => {
                let body = SwitchRequest {
                    to: to.clone(),
                    generation: *generation,
                    drain_timeout_ms: drain.drain_timeout_ms(),
                    lease_ms: drain.lease_ms(),
                    on_timeout: drain.on_timeout.map(OnTimeout::from),
                    on_unmovable: drain.on_unmovable.map(OnUnmovable::from),
                };
                Call {
                    method: "POST",
                    path: "/v1/switch".into(),
                    body: Some(serde_json::to_vec(&body)?),
                    deadline: drain.deadline(),
                }
            }
            Action::Standby { upstream, state, lag } => {
                let body = StandbyReport { upstream: upstream.clone(), state: (*state).into(), lag_seconds: *lag };
                Call {
                    method: "PUT",
                    path: "/v1/standby".into(),
                    body: Some(serde_json::to_vec(&body)?),
                    deadline: DEFAULT_DEADLINE,
                }
            }
        };
        Ok(call)
    }
}

impl DrainArgs {
    /// `--drain-timeout` or `--drain-timeout-ms`, in milliseconds.
    fn drain_timeout_ms(&self) -> Option<u64> {
        self.drain_timeout.or(self.drain_timeout_ms)
    }

    /// `--lease` or `--lease-ms`, in milliseconds.
    fn lease_ms(&self) -> Option<u64> {
        self.lease.or(self.lease_ms)
    }

    /// How long to wait for the answer: the drain timeout plus 30 s, and never under 60 s.
    fn deadline(&self) -> Duration {
        let drain = Duration::from_millis(self.drain_timeout_ms().unwrap_or(0));
        DEFAULT_DEADLINE.max(drain.saturating_add(DEADLINE_AFTER_DRAIN))
    }
}

/// Runs one call on its own runtime and returns the process exit code.
pub fn run(args: CtlArgs) -> u8 {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CtlError::Runtime)
        .and_then(|runtime| runtime.block_on(execute(&args)));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgflip ctl: {e}");
            EXIT_NO_ANSWER
        }
    }
}

/// Sends the call, prints the answer, and says which exit code it deserves.
pub async fn execute(args: &CtlArgs) -> Result<u8, CtlError> {
    let token = match args.token_file.as_deref() {
        Some(path) => Some(read_token(path)?),
        None => default_token(&args.admin_url)?,
    };
    let call = args.action.call()?;
    let tls = args.ca_file.as_deref().map(AdminTls::from_ca_file).transpose()?;
    let answer = http::send(&args.admin_url, token.as_deref(), tls.as_ref(), &call).await?;
    let json: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|source| CtlError::NotJson {
        request: call.describe(&args.admin_url),
        status: answer.status,
        source,
        excerpt: String::from_utf8_lossy(&answer.body).chars().take(200).collect(),
    })?;
    println!("{}", serde_json::to_string_pretty(&json)?);
    if (200..300).contains(&answer.status) {
        return Ok(EXIT_OK);
    }
    eprintln!("pgflip ctl: {} {} answered {}", call.method, call.path, answer.status_line());
    if answer.status == 401 && token.is_none() {
        eprintln!(
            "pgflip ctl: no admin token was sent: give --token-file FILE (the sidecar's admin_token_file); a sidecar \
             without one keeps the token it made in {} on its host, readable by its user",
            crate::admin_token::default_path(args.admin_url.port).display()
        );
    }
    Ok(EXIT_REFUSED)
}

/// Without `--token-file`, the token a sidecar on this host made for the URL's port, when
/// the URL is a loopback one and the file is there.
pub fn default_token(url: &AdminUrl) -> Result<Option<String>, CtlError> {
    if !crate::admin_token::is_loopback_host(&url.host) {
        return Ok(None);
    }
    Ok(crate::admin_token::read_default(url.port)?)
}

/// The token in `path`, without surrounding whitespace.
pub fn read_token(path: &Path) -> Result<String, CtlError> {
    let text = std::fs::read_to_string(path).map_err(|source| CtlError::TokenFile { path: path.to_owned(), source })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CtlError::EmptyToken { path: path.to_owned() });
    }
    if token.contains(['\r', '\n']) {
        return Err(CtlError::MultilineToken { path: path.to_owned() });
    }
    Ok(token.to_owned())
}
