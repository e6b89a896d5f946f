//! A server connection's settings before its client ran anything, and the SELECT that
//! captures the state of that connection's session against them.

use super::error::CaptureError;
use super::query::{state_select, OVERRIDDEN_SETTINGS};

/// The values a connection's settings had when it was opened (startup packet, role and
/// database defaults and server configuration applied; nothing of the client's yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// `[name, value]`, sorted by name as the server sorts them.
    settings: Vec<(String, String)>,
    /// The settings a capture compares: all but the [`OVERRIDDEN_SETTINGS`].
    compared: Vec<(String, String)>,
    /// The state SELECT with these settings built in, split where the names to read go.
    select: (String, String),
}

impl Baseline {
    /// Reads the one value [`super::baseline_query`] returns.
    pub fn parse(json: Option<&str>) -> Result<Baseline, CaptureError> {
        let json = json.ok_or(CaptureError::Null { column: "baseline" })?;
        let settings: Vec<(String, String)> =
            serde_json::from_str(json).map_err(|error| CaptureError::Json { column: "baseline", error })?;
        let compared: Vec<(String, String)> = settings
            .iter()
            .filter(|(name, _)| !OVERRIDDEN_SETTINGS.iter().any(|(overridden, _)| overridden == name))
            .cloned()
            .collect();
        let text = state_select(&compared);
        let (head, tail) = text.split_once("$1").expect("the state SELECT reads the names from $1");
        let select = (head.to_owned(), tail.to_owned());
        Ok(Baseline { settings, compared, select })
    }

    /// The baseline value of a setting (names are case-insensitive).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.settings.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The settings whose current values a capture reads, in order, with their values
    /// in the baseline: all but the [`OVERRIDDEN_SETTINGS`].
    pub fn compared(&self) -> &[(String, String)] {
        &self.compared
    }

    /// Number of settings in the baseline.
    pub fn len(&self) -> usize {
        self.settings.len()
    }

    /// True when the server listed no setting at all.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// The state SELECT of [`super::capture_query`], before and after the `text[]` of names
    /// to read.
    pub fn state_select(&self) -> (&str, &str) {
        (&self.select.0, &self.select.1)
    }
}
