//! A server connection's settings before its client ran anything, and the prepared
//! statement that captures the state of that connection's session against them.

use super::error::CaptureError;
use super::query::{state_select, CAPTURE_STATEMENT, OVERRIDDEN_SETTINGS};

/// The values a connection's settings had when it was opened (startup packet, role and
/// database defaults and server configuration applied; nothing of the client's yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// `[name, value]`, sorted by name as the server sorts them.
    settings: Vec<(String, String)>,
    /// The settings a capture compares: all but the [`OVERRIDDEN_SETTINGS`].
    compared: Vec<(String, String)>,
    /// `PREPARE pgflip_capture(...) AS ...` with these values built in.
    prepare: String,
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
        let prepare = format!("PREPARE {CAPTURE_STATEMENT}(pg_catalog.text[]) AS {}", state_select(&compared));
        Ok(Baseline { settings, compared, prepare })
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

    /// The `PREPARE` of the capture statement, for [`super::capture_query`].
    pub fn prepare_statement(&self) -> &str {
        &self.prepare
    }
}
