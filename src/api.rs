//! JSON types of the sidecar's admin API, shared by the admin server and its clients.

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The upstream new sessions go to.
    pub active: String,
    /// Grows by one on every repoint.
    pub generation: u64,
    pub upstreams: Vec<UpstreamStatus>,
    /// Open client sessions.
    pub sessions: u64,
    /// Sessions per state (idle, in_transaction, parked, ...).
    pub sessions_by_state: std::collections::BTreeMap<String, u64>,
    /// True while the pause gate is closed.
    pub paused: bool,
    /// Milliseconds until the pause lease ends and traffic resumes by itself.
    pub lease_ms_left: Option<u64>,
    /// The outcome of the last `POST /v1/switch`, if any.
    pub last_switch: Option<SwitchReport>,
    pub shutting_down: bool,
    pub version: String,
    /// The standby listener, when one is configured.
    #[serde(default)]
    pub standby: Option<StandbyStatus>,
}

/// One upstream in [`Status`]. Never carries a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamStatus {
    pub name: String,
    /// `host:port`.
    pub address: String,
    pub sslmode: String,
    pub active: bool,
}

/// The body of every admin API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// What a pause does when sessions are still inside transactions at the drain deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// Open the gate again: traffic goes on where it was.
    #[default]
    Abort,
    /// End the blocking sessions with FATAL 57P01; their clients reconnect.
    Terminate,
}

/// What a pause does with parked sessions that hold state that cannot move to another
/// server (temp tables, session advisory locks, WITH HOLD cursors), or, when the pause
/// names its target, settings the target lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnmovable {
    /// Give the pause up (the gate opens again) and list them.
    #[default]
    Block,
    /// End them with FATAL 57P01 naming the reason, and list them; their clients reconnect.
    Terminate,
}

/// `POST /v1/pause`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// How long to wait for sessions to reach a transaction boundary (default 5000).
    pub drain_timeout_ms: Option<u64>,
    /// How long the pause holds without a resume before traffic resumes by itself (default 30000).
    pub lease_ms: Option<u64>,
    pub on_timeout: Option<OnTimeout>,
    pub on_unmovable: Option<OnUnmovable>,
    /// When given, must equal the current generation.
    pub generation: Option<u64>,
    /// The upstream a switch will follow this pause to. A session that sets a setting that
    /// upstream lacks (another PostgreSQL major version) then cannot move, and is handled by
    /// `on_unmovable` like one with a temp table. The sidecar reads the upstream's settings,
    /// logging in as one of its clients, unless `to_lacks` says what it lacks.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<String>,
    /// With `to`: the settings it lacks that the sessions' server has (or lets a session set
    /// where it does not), as whoever pauses has read them from both (the controller does:
    /// the clients' roles may not log in to the target yet).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to_lacks: Option<TargetLacks>,
}

/// What a pause's target lacks, from [`PauseRequest::to_lacks`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetLacks {
    /// The target's `server_version`, for messages.
    pub version: String,
    /// Setting names, lower case.
    pub settings: Vec<String>,
}

/// `POST /v1/resume`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// When given, must equal the current generation.
    pub generation: Option<u64>,
}

/// A session that kept a pause waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    /// The client's address.
    pub client: String,
    /// The pid of its server backend.
    pub backend_pid: i32,
    /// Its state: in_transaction, failed_transaction, copy, ...
    pub state: String,
    /// Milliseconds in that state.
    pub age_ms: u64,
    /// The last query it sent: its first keyword and length (`UPDATE … (312 bytes)`), or
    /// the start of its text when the sidecar runs with `admin_show_queries`.
    pub query: String,
    /// Why it cannot move, for a parked session holding state that cannot move.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unmovable: Option<String>,
}

/// The answer to `POST /v1/pause`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseResponse {
    pub paused: bool,
    /// Why the pause was given up, when it was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    pub parked: usize,
    pub waited_ms: u64,
    pub lease_ms: u64,
    pub generation: u64,
    /// Sessions that were inside a transaction at the deadline (the pause was given up).
    pub blockers: Vec<Blocker>,
    /// Sessions ended with 57P01 under `on_timeout = "terminate"`.
    pub terminated: Vec<Blocker>,
}

/// The answer to `POST /v1/resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeResponse {
    /// False when traffic was not paused.
    pub resumed: bool,
    /// How long clients were held.
    pub held_ms: Option<u64>,
    pub generation: u64,
}

/// `PUT /v1/upstreams/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutUpstreamRequest {
    /// The upstream URL, in the `--upstream` syntax.
    pub url: String,
    /// When given, must equal the current generation.
    pub generation: Option<u64>,
}

/// The answer to `PUT /v1/upstreams/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutUpstreamResponse {
    pub upstream: UpstreamStatus,
    /// True when the name was new, false when an upstream was replaced.
    pub created: bool,
    pub generation: u64,
}

/// `POST /v1/switch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    /// The upstream to move to.
    pub to: String,
    /// When given, must equal the current generation.
    pub generation: Option<u64>,
    /// As in [`PauseRequest`], for the pause a switch starts with when not paused.
    pub drain_timeout_ms: Option<u64>,
    pub lease_ms: Option<u64>,
    pub on_timeout: Option<OnTimeout>,
    pub on_unmovable: Option<OnUnmovable>,
}

/// The answer to `POST /v1/switch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchResponse {
    pub from: String,
    pub to: String,
    /// The new generation.
    pub generation: u64,
    /// Sessions now on the new upstream.
    pub moved: usize,
    /// Sessions whose move failed; their clients got FATAL 08006.
    pub failed: u64,
    /// Parked sessions that had not moved by the deadline.
    pub unmoved: usize,
    /// How long clients were held, when the switch paused them itself.
    pub held_ms: Option<u64>,
    pub duration_ms: u64,
    /// Where the call's time went.
    #[serde(default)]
    pub timings: SwitchTimings,
}

/// Where a switch call's time went, in milliseconds, in the order of its steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchTimings {
    /// Sessions opening connections to the target while traffic still flowed; only
    /// when the switch paused traffic itself.
    pub prewarm_ms: Option<u64>,
    /// From closing the gate until every session was parked with its state read; only
    /// when the switch paused traffic itself.
    pub drain_ms: Option<u64>,
    /// From the repoint until every session had moved.
    pub move_ms: u64,
}

/// The outcome of a switch call, as `/v1/status` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchReport {
    /// `ok`, `partial` (some sessions failed or did not move) or `refused` (nothing moved).
    pub result: String,
    pub to: String,
    pub generation: u64,
    pub moved: usize,
    pub failed: u64,
    pub held_ms: Option<u64>,
    pub duration_ms: u64,
    /// Where the call's time went (zero for a refused switch).
    #[serde(default)]
    pub timings: SwitchTimings,
    /// Why it was refused.
    pub error: Option<String>,
    /// When it finished, in milliseconds since the Unix epoch.
    pub finished_at_unix_ms: u64,
}

/// What the controller knows of an upstream that is not active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StandbyState {
    /// A replication link feeds it from the active upstream.
    Replicating,
    /// Not to be read from for now (being restored, migrated, or otherwise not current).
    Fenced,
    /// Gone for good (after promote).
    Retired,
}

impl StandbyState {
    pub fn as_str(self) -> &'static str {
        match self {
            StandbyState::Replicating => "replicating",
            StandbyState::Fenced => "fenced",
            StandbyState::Retired => "retired",
        }
    }
}

/// `PUT /v1/standby`: the controller's report on one upstream as a standby.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyReport {
    /// The upstream the report is about.
    pub upstream: String,
    pub state: StandbyState,
    /// How many seconds the upstream trails the active one by, when known.
    #[serde(default)]
    pub lag_seconds: Option<f64>,
}

/// What the standby listener does while the standby cannot serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyFallback {
    /// Serve its sessions from the active upstream.
    #[default]
    Active,
    /// Refuse new sessions with an error.
    Refuse,
}

impl StandbyFallback {
    pub fn as_str(self) -> &'static str {
        match self {
            StandbyFallback::Active => "active",
            StandbyFallback::Refuse => "refuse",
        }
    }
}

/// Where the standby listener's sessions go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyRoute {
    /// To the standby.
    Standby,
    /// To the active upstream: the standby cannot serve, or lags too far.
    Active,
    /// Nowhere: new sessions are refused.
    Refuse,
}

/// The standby listener in `GET /v1/status`, and the answer to `PUT /v1/standby`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandbyStatus {
    /// The standby listener's address.
    pub listen: String,
    pub fallback: StandbyFallback,
    /// `max_standby_lag`, when set.
    pub max_lag_seconds: Option<f64>,
    /// The upstream that is not active, if there is one.
    pub standby: Option<String>,
    pub route: StandbyRoute,
    /// The upstream the standby listener's new sessions go to (none while refusing).
    pub serving_from: Option<String>,
    /// Why the route is not `standby`.
    pub reason: Option<String>,
    /// The controller's last report on the standby.
    pub reported_state: Option<StandbyState>,
    /// Replication lag of the standby in seconds, as the controller last reported it.
    pub lag_seconds: Option<f64>,
    /// Seconds since that report.
    pub report_age_seconds: Option<f64>,
    /// Open sessions of the standby listener.
    pub sessions: u64,
}
