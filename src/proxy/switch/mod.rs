//! Pausing traffic: the gate sessions park behind, the table of live sessions, and the
//! pause and resume operations the admin API calls.

mod gate;
mod pause;
mod table;

pub use gate::{Gate, GateState};
pub use pause::{pause, resume, PauseFailure, PauseOptions, Paused};
pub use table::{SessionEntry, SessionInfo, SessionTable};
