//! The controller (`pgflip cutover`): the phases that make green an exact, migrated copy of
//! blue that keeps up with blue's writes (preflight, snapshot, restore, migrate, smoke,
//! catch-up), recorded in a journal so that a run resumes where it stopped.
//!
//! - [`plan`]: the plan file; [`journal`]: what ran; [`phase`]: the phases in order.
//! - [`runner`]: runs the phases; each lives in its own module ([`preflight`],
//!   [`snapshot`], [`restore`] with [`roles`], [`commands`] for migrate and smoke,
//!   [`catchup`]).
//! - [`replication`]: the `replication=database` connection, on the project's own wire code.
//! - [`standby`]: the side writes do not go to, its lag reported to the sidecars
//!   (`standby-report`).
//! - [`names`]: the plan's replication object names; [`lock`] and [`servers`]: one
//!   controller per plan, on the servers the journal knows; [`ddl`]: DDL under a lock timeout.
//! - [`status`]: the journal and both servers' slots and subscriptions; [`abandon`]: giving
//!   a cutover up, removing what pgflip made.
//! - [`pg`], [`tools`], [`metrics`], [`error`]: connections, client programs, `/metrics`;
//!   [`client_programs`]: which installation of them a plan runs;
//!   [`target`]: where a connection goes, with its TLS and the plaintext-password rule;
//!   [`pg_tls`]: rustls under tokio-postgres.
//! - [`progress`]: the lines a person reads, on stdout or into the log.

pub mod abandon;
pub mod catchup;
pub mod client_programs;
pub mod commands;
pub mod ddl;
pub mod discovery;
pub mod drift;
pub mod durable;
pub mod error;
pub mod failpoint;
pub mod fence;
pub mod fleet;
pub mod flip;
pub mod journal;
pub mod kube;
pub mod links;
pub mod lock;
pub mod metrics;
pub mod names;
pub mod pg;
pub mod pg_tls;
pub mod phase;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod promote;
pub mod replication;
pub mod restore;
pub mod roles;
pub mod runner;
pub mod sequences;
pub mod servers;
pub mod snapshot;
pub mod standby;
pub mod status;
pub mod target;
pub mod tools;
pub mod validate;
pub mod window;

pub use abandon::abandon;
pub use error::CutoverError;
pub use phase::Phase;
pub use progress::Progress;
pub use runner::{promote, rollback, run};
pub use standby::command::{parse_interval, standby_report};
pub use status::status;
