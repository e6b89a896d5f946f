//! The SQL that recreates a captured session's state on a fresh server connection.

use super::prepare_text::{rebuild_prepare, PrepareTextError};
use super::query::OVERRIDDEN_SETTINGS;
use super::quote::{is_custom_setting_name, quote_ident, quote_literal};
use super::snapshot::{SessionSnapshot, Setting};
use super::Baseline;
use serde::Serialize;

/// What to run on the new connection, and what could not be put into SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayPlan {
    /// Statements to send one by one (each a simple Query), in this order.
    pub statements: Vec<String>,
    /// SQL-prepared statements left out, with the reason.
    pub not_replayable: Vec<NotReplayable>,
    /// How many of the last `statements` set timeouts: these go after anything else
    /// sent to the connection (protocol-level Parses too), so that a client's tiny
    /// timeout cannot cancel the replay itself.
    pub timeouts: usize,
    /// True when the plan changes the identity or a setting other than the timeouts:
    /// statements parsed before it might resolve names or read literals differently.
    pub affects_parsing: bool,
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
/// place and `RESET` keeps returning to them). `source_user` is the user the captured
/// connection logged in as. `target`, the new connection's baseline when known, leaves
/// out settings that already have the captured value there, and built-in settings the
/// client named in a `SET` but left at their baseline value that the target does not
/// have (a server of another major version): there is nothing to carry.
///
/// Order, and why:
/// 1. The session's settings, then the custom settings that have a value, each as
///    `SELECT pg_catalog.set_config(name, value, false)`, as the login user: a setting
///    that only a superuser may set was set before a `SET ROLE` to a lesser role, and
///    would be refused after it. Timeouts wait for step 5.
/// 2. `SET SESSION AUTHORIZATION`, only when it differs from `source_user` (the captured
///    connection's login: the target's may log in as another user): it resets the role,
///    so it goes before `SET ROLE`. Then `SET ROLE`, when a role is set.
/// 3. `PREPARE` of each SQL-prepared statement whose stored text is exactly one
///    PREPARE (see [`super::rebuild_prepare`]); after the settings and the identity,
///    since the body resolves names with the current `search_path` and privileges.
///    Protocol-level statements are not here: the proxy re-Parses them from its own
///    record ([`SessionSnapshot::protocol_statements`] lists them for a cross-check).
/// 4. `LISTEN` of each channel.
/// 5. Settings whose name ends in `_timeout`, then the [`super::OVERRIDDEN_SETTINGS`]
///    (`statement_timeout` last of all, so a client's tiny timeout cannot cancel the
///    replay itself). They come after protocol-level Parses too ([`ReplayPlan::timeouts`]).
pub fn replay_statements(snapshot: &SessionSnapshot, source_user: &str, target: Option<&Baseline>) -> ReplayPlan {
    let mut plan = ReplayPlan::default();
    let already = |setting: &&Setting| target.and_then(|t| t.value(&setting.name)) == Some(setting.value.as_str());
    // A built-in setting the client named in a SET but left at its baseline value, which
    // the target does not have (another major version): nothing to carry.
    let at_default_unknown_there = |setting: &&Setting| {
        !is_custom_setting_name(&setting.name)
            && target.is_some_and(|t| t.value(&setting.name).is_none())
            && !snapshot.settings.iter().any(|s| s.name.eq_ignore_ascii_case(&setting.name))
    };
    let settings = settings_to_replay(snapshot)
        .into_iter()
        .filter(|s| !at_default_unknown_there(s))
        .chain(&snapshot.overridden)
        .filter(|s| !already(s));
    let (timeouts, others): (Vec<&Setting>, Vec<&Setting>) = settings.partition(|setting| is_last(&setting.name));
    plan.statements.extend(others.into_iter().map(set_config));
    if snapshot.session_authorization != source_user {
        plan.statements.push(format!("SET SESSION AUTHORIZATION {}", quote_ident(&snapshot.session_authorization)));
    }
    if let Some(role) = &snapshot.role {
        plan.statements.push(format!("SET ROLE {}", quote_ident(role)));
    }
    plan.affects_parsing = !plan.statements.is_empty();
    for statement in snapshot.sql_statements() {
        match rebuild_prepare(statement) {
            Ok(sql) => plan.statements.push(sql),
            Err(reason) => plan.not_replayable.push(NotReplayable { name: statement.name.clone(), reason }),
        }
    }
    plan.statements.extend(snapshot.listen.iter().map(|channel| format!("LISTEN {}", quote_ident(channel))));
    plan.timeouts = timeouts.len();
    plan.statements.extend(timeouts.into_iter().map(set_config));
    plan
}

/// Timeouts and the [`OVERRIDDEN_SETTINGS`] go last (none of them changes how a
/// statement is parsed).
fn is_last(name: &str) -> bool {
    name.ends_with("_timeout") || OVERRIDDEN_SETTINGS.iter().any(|(o, _)| *o == name)
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
