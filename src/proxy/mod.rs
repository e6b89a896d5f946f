//! The sidecar (`pgflip proxy`): a PostgreSQL wire-protocol proxy on localhost beside
//! each application pod.
//!
//! - [`listener`]: accept loop and graceful shutdown; [`run`] is the entry point;
//!   [`unix_socket`]: the Unix-domain socket clients may use beside TCP.
//! - `session`: one task per client: startup, auth, upstream connection, forwarding.
//! - [`upstream`]: upstream URLs, the registry of named upstreams, logging in upstream.
//! - [`auth`]: checking clients against the auth file (SCRAM-SHA-256, md5).
//! - [`admin`]: the admin HTTP server; [`metrics`]: the Prometheus families.
//! - [`standby`]: the standby listener's route, from the controller's reports.
//! - [`config`]: the sidecar's configuration, from flags or a TOML file, with its limits.

pub mod admin;
pub mod auth;
mod cancel;
pub mod capture;
pub mod catalogs;
pub mod config;
pub mod context;
mod io;
pub mod listener;
pub mod metrics;
pub mod oids;
pub mod peer;
mod reload;
mod session;
pub mod standby;
mod stream;
pub mod switch;
pub mod tls;
pub mod unix_socket;
pub mod upstream;
mod workers;

pub use listener::{run, ProxyError};
pub use session::{SessionState, Tracker, TxStatus};
