//! pgflip: switch a PostgreSQL application from its serving database ("blue") to a
//! migrated copy ("green") and back, with no restart, no reconnect and no lost commit.
//!
//! - [`wire`]: PostgreSQL message framing, pure (no I/O).
//! - [`proxy`]: the sidecar, `pgflip proxy`.
//! - [`ctl`]: `pgflip ctl`, the operators' client of the admin API.
//! - [`controller`]: `pgflip cutover`, the runbook from snapshot to promote.
//! - [`demo`]: `pgflip demo`, the runbook on throwaway local clusters.
//! - [`api`]: JSON types of the admin API.
//! - [`admin_token`]: the admin token the sidecar makes when none is configured, and where its clients find it.
//! - [`tls`]: TLS set-up the sidecar and the controller share (rustls, `ring`).
//! - [`duration`]: durations as written in files and flags (`5`, `"500ms"`, `"2m"`).
//! - [`telemetry`]: tracing setup.
#![forbid(unsafe_code)]

pub mod admin_token;
pub mod api;
pub mod controller;
pub mod ctl;
pub mod demo;
pub mod duration;
pub mod proxy;
pub mod telemetry;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod proptest_config;
