//! Pausing and switching traffic: the gate sessions park behind, the table of live
//! sessions, and the pause, resume and switch operations the admin API calls.

mod advisory;
mod flip;
mod gate;
mod pause;
mod query_text;
mod retire;
mod table;

pub use flip::{switch, SwitchError, SwitchOptions, SwitchTimings, Switched};
pub use gate::{Gate, GateState};
pub use pause::{pause, resume, PauseFailure, PauseOptions, Paused};
pub use retire::retire;
pub use table::{Capture, SessionEntry, SessionInfo, SessionTable};
