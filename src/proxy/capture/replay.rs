//! The SQL that recreates a captured session's state on a fresh server connection.

use super::prepare_text::{rebuild_prepare, PrepareTextError};
use super::query::OVERRIDDEN_SETTINGS;
use super::quote::{quote_ident, quote_literal};
use super::snapshot::{SessionSnapshot, Setting};
use serde::Serialize;

/// What to run on the new connection, and what could not be put into SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayPlan {
    /// Statements to send one by one (each a simple Query), in this order.
    pub statements: Vec<String>,
    /// SQL-prepared statements left out, with the reason.
    pub not_replayable: Vec<NotReplayable>,
}

/// A SQL-prepared statement that the plan does not recreate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotReplayable {
    pub name: String,
    #[serde(serialize_with = "as_text")]
    pub reason: PrepareTextError,
}

fn as_text<S: serde::Serializer>(reason: &PrepareTextError, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(reason)
}

/// The statements that recreate `snapshot` on a connection opened with the same
/// startup packet as the captured one (so startup-packet settings are already in
/// place and `RESET` keeps returning to them). `login_user` is the startup user.
///
/// Order, and why:
/// 1. `SET SESSION AUTHORIZATION`, only when it differs from `login_user`: it
///    resets the role, so it goes before `SET ROLE`.
/// 2. `SET ROLE`, when a role is set.
/// 3. The session's settings, then the custom settings that have a value, each as
///    `SELECT pg_catalog.set_config(name, value, false)`. Timeouts wait for step 6.
/// 4. `PREPARE` of each SQL-prepared statement whose stored text is exactly one
///    PREPARE (see [`super::rebuild_prepare`]); after the settings, since the body
///    resolves names with the current `search_path`. Protocol-level statements are
///    not here: the proxy re-Parses them from its own record
///    ([`SessionSnapshot::protocol_statements`] lists them for a cross-check).
/// 5. `LISTEN` of each channel.
/// 6. Settings whose name ends in `_timeout`, then `jit` and `statement_timeout`
///    (always, see [`super::OVERRIDDEN_SETTINGS`]); `statement_timeout` last of
///    all, so a client's tiny timeout cannot cancel the replay itself.
pub fn replay_statements(snapshot: &SessionSnapshot, login_user: &str) -> ReplayPlan {
    let mut plan = ReplayPlan::default();
    if snapshot.session_authorization != login_user {
        plan.statements.push(format!("SET SESSION AUTHORIZATION {}", quote_ident(&snapshot.session_authorization)));
    }
    if let Some(role) = &snapshot.role {
        plan.statements.push(format!("SET ROLE {}", quote_ident(role)));
    }
    let settings = settings_to_replay(snapshot);
    let (timeouts, others): (Vec<&Setting>, Vec<&Setting>) =
        settings.into_iter().partition(|setting| setting.name.ends_with("_timeout"));
    plan.statements.extend(others.into_iter().map(set_config));
    for statement in snapshot.sql_statements() {
        match rebuild_prepare(statement) {
            Ok(sql) => plan.statements.push(sql),
            Err(reason) => plan.not_replayable.push(NotReplayable { name: statement.name.clone(), reason }),
        }
    }
    plan.statements.extend(snapshot.listen.iter().map(|channel| format!("LISTEN {}", quote_ident(channel))));
    plan.statements.extend(timeouts.into_iter().chain(&snapshot.overridden).map(set_config));
    plan
}

/// The session's settings, then the custom ones not already among them; none of
/// the overridden ones, which go last.
fn settings_to_replay(snapshot: &SessionSnapshot) -> Vec<&Setting> {
    let overridden = |setting: &&Setting| OVERRIDDEN_SETTINGS.iter().any(|(name, _)| setting.name == *name);
    let mut settings: Vec<&Setting> = snapshot.settings.iter().filter(|s| !overridden(s)).collect();
    for custom in snapshot.custom_settings.iter().filter(|s| !overridden(s)) {
        if !settings.iter().any(|setting| setting.name.eq_ignore_ascii_case(&custom.name)) {
            settings.push(custom);
        }
    }
    settings
}

fn set_config(setting: &Setting) -> String {
    format!("SELECT pg_catalog.set_config({}, {}, false)", quote_literal(&setting.name), quote_literal(&setting.value))
}
