//! The settings a server has, read once per switch, and which of a session's
//! [`SettingNeeds`] it lacks: the reason such a session cannot move there.

use std::collections::HashMap;
use std::fmt;

use super::needs::SettingNeeds;
use super::query::SETTABLE_CONTEXTS;

/// Every setting of one server with its context, and the server's version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownSettings {
    /// `server_version` (`18.1`, `13.22 (Debian ...)`).
    pub version: String,
    /// Lower-case name to context (`user`, `superuser`, `backend`, ...).
    contexts: HashMap<String, String>,
}

/// The query that reads [`KnownSettings`]: one row per setting (name, context), and one
/// with the version and a NULL context.
pub const KNOWN_SETTINGS_QUERY: &str = "SELECT pg_catalog.current_setting('server_version'), NULL::pg_catalog.text \
UNION ALL SELECT s.name::pg_catalog.text, s.context::pg_catalog.text FROM pg_catalog.pg_settings AS s";

/// What is wrong with the answer to [`KNOWN_SETTINGS_QUERY`].
#[derive(Debug, thiserror::Error)]
#[error("unexpected settings row: {0}")]
pub struct KnownSettingsError(String);

/// The settings a session needs that a server lacks, or may not let a session set, from
/// [`KnownSettings::missing`] or [`Missing::among`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The server's `server_version`.
    pub version: String,
    /// Set by the startup packet, unknown to the server.
    pub startup: Vec<String>,
    /// Changed by the session, unknown to the server or not settable in a session there.
    pub session: Vec<String>,
}

impl KnownSettings {
    /// Reads the rows of [`KNOWN_SETTINGS_QUERY`].
    pub fn from_rows(rows: &[Vec<Option<String>>]) -> Result<KnownSettings, KnownSettingsError> {
        let mut known = KnownSettings::default();
        for row in rows {
            match row.as_slice() {
                [Some(version), None] => known.version = version.clone(),
                [Some(name), Some(context)] => {
                    known.contexts.insert(name.to_ascii_lowercase(), context.clone());
                }
                _ => return Err(KnownSettingsError(format!("{row:?}"))),
            }
        }
        if known.version.is_empty() {
            return Err(KnownSettingsError("no server_version".into()));
        }
        Ok(known)
    }

    /// What of `needs` this server lacks; `None` when it has everything.
    pub fn missing(&self, needs: &SettingNeeds) -> Option<Missing> {
        let startup: Vec<String> = needs.startup.iter().filter(|n| !self.contexts.contains_key(*n)).cloned().collect();
        let settable = |name: &String| {
            self.contexts.get(name).is_some_and(|context| SETTABLE_CONTEXTS.contains(&context.as_str()))
        };
        let session: Vec<String> = needs.session.iter().filter(|n| !settable(n)).cloned().collect();
        (!startup.is_empty() || !session.is_empty()).then(|| Missing {
            version: self.version.clone(),
            startup,
            session,
        })
    }
}

impl Missing {
    /// What of `needs` is among `lacks`, the setting names a server of `version` lacks as
    /// someone who read both servers said; `None` when nothing.
    pub fn among(needs: &SettingNeeds, lacks: &[String], version: &str) -> Option<Missing> {
        let lacking = |names: &[String]| -> Vec<String> {
            names.iter().filter(|n| lacks.iter().any(|l| l.eq_ignore_ascii_case(n))).cloned().collect()
        };
        let (startup, session) = (lacking(&needs.startup), lacking(&needs.session));
        (!startup.is_empty() || !session.is_empty()).then(|| Missing { version: version.to_owned(), startup, session })
    }
}

impl fmt::Display for Missing {
    /// `it sets force_parallel_mode, which PostgreSQL 18.1 does not have`, with the
    /// startup packet's named apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = self.version.split_whitespace().next().unwrap_or_default();
        let mut parts = Vec::new();
        if !self.startup.is_empty() {
            parts.push(format!("its startup packet sets {}", self.startup.join(", ")));
        }
        if !self.session.is_empty() {
            parts.push(format!("it set {}", self.session.join(", ")));
        }
        write!(f, "{}, which PostgreSQL {version} does not have (or not as a session setting)", parts.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(version: &str, settings: &[(&str, &str)]) -> KnownSettings {
        let mut rows = vec![vec![Some(version.to_owned()), None]];
        rows.extend(settings.iter().map(|(n, c)| vec![Some(n.to_string()), Some(c.to_string())]));
        KnownSettings::from_rows(&rows).expect("rows")
    }

    #[test]
    fn a_server_lacks_what_it_does_not_list_or_does_not_let_a_session_set() {
        let server = known("18.1", &[("work_mem", "user"), ("datestyle", "user"), ("wal_level", "postmaster")]);
        let needs = SettingNeeds {
            startup: vec!["datestyle".into(), "force_parallel_mode".into()],
            session: vec!["work_mem".into(), "wal_level".into(), "operator_precedence_warning".into()],
        };
        let missing = server.missing(&needs).expect("missing");
        assert_eq!(missing.startup, ["force_parallel_mode"]);
        assert_eq!(missing.session, ["wal_level", "operator_precedence_warning"]);
        assert_eq!(
            missing.to_string(),
            "its startup packet sets force_parallel_mode and it set wal_level, operator_precedence_warning, \
             which PostgreSQL 18.1 does not have (or not as a session setting)"
        );
        let fine = SettingNeeds { startup: vec!["datestyle".into()], session: vec!["work_mem".into()] };
        assert_eq!(server.missing(&fine), None);
        let lacks = ["force_parallel_mode".to_owned()];
        let among = Missing::among(&needs, &lacks, "17.2").expect("among");
        assert_eq!((among.startup.as_slice(), among.session.as_slice()), (&lacks[..], &[][..]));
        assert_eq!(Missing::among(&fine, &lacks, "17.2"), None);
    }

    #[test]
    fn rows_without_a_version_are_refused() {
        let rows = vec![vec![Some("work_mem".to_owned()), Some("user".to_owned())]];
        assert!(KnownSettings::from_rows(&rows).is_err());
    }
}
