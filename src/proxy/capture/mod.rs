//! Moving a session's state between servers, the SQL side: the capture query a
//! parked session sends to its current server, parsing its answer into a
//! [`SessionSnapshot`], and the statements that replay that state on a new server.
//!
//! - [`baseline_query`] and [`Baseline`]: a fresh connection's settings, read once,
//!   and the SELECT that captures against them.
//! - [`capture_query`]: the one simple Query; what it returns and its side effects.
//!   [`details_query`]: the second one, only for a session with a temporary schema or a
//!   prepared statement whose parameter types must be named.
//! - [`parse_capture_row`]: its DataRow values into a [`SessionSnapshot`], including
//!   the [`Unmovable`] state (temp objects, advisory locks, WITH HOLD cursors).
//! - [`replay_statements`]: the ordered SQL for the new connection, and the SQL
//!   `PREPARE`s it cannot recreate.
//! - [`SettingNeeds`]: the settings a move sets on the new server, and [`KnownSettings`]:
//!   which of them a server (of another major version, say) lacks.
//! - [`quote_literal`], [`quote_ident`]: quoting that holds for any session settings.
//!
//! Pure: no I/O; the proxy sends the text and feeds back the values.

mod baseline;
mod error;
mod known;
mod needs;
mod prepare_text;
mod query;
mod quote;
mod replay;
mod snapshot;

pub use baseline::Baseline;
pub use error::CaptureError;
pub use known::{KnownSettings, KnownSettingsError, Missing, KNOWN_SETTINGS_QUERY};
pub use needs::SettingNeeds;
pub use prepare_text::{prepare_body, rebuild_prepare, PrepareTextError};
pub use query::{
    baseline_query, capture_query, details_query, ADVISORY_HOLDERS_QUERY, CAPTURE_COLUMNS, DETAILS_COLUMNS,
    EXCLUDED_SETTINGS, OVERRIDDEN_SETTINGS, OVERRIDE_COLUMNS, SETTABLE_CONTEXTS, SHOWN_VALUES, STATE_COLUMNS,
};
pub use quote::{is_custom_setting_name, quote_ident, quote_literal};
pub use replay::{replay_statements, NotReplayable, ReplayPlan};
pub use snapshot::{parse_capture_row, PreparedStatement, SessionSnapshot, Setting, Unmovable};

#[cfg(test)]
mod tests;
