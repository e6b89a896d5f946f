//! JSON types of the sidecar's admin API, shared by the admin server and its clients.

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The upstream new sessions go to.
    pub active: String,
    /// Grows by one on every repoint.
    pub generation: u64,
    pub upstreams: Vec<UpstreamStatus>,
    /// Open client sessions.
    pub sessions: u64,
    pub shutting_down: bool,
    pub version: String,
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
