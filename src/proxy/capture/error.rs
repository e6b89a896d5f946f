//! What can be wrong with the values a capture query returned.

/// The capture's DataRow values did not have the expected shape. Each variant
/// names the column; a proxy that sees one should not move the session.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "the capture returned {found} values, expected {expected}: pass the values of both its DataRows, in order"
    )]
    ColumnCount { expected: usize, found: usize },
    #[error("capture column `{column}` is NULL")]
    Null { column: &'static str },
    #[error("capture column `{column}` holds {value:?}, which is not {expected}")]
    Invalid { column: &'static str, value: String, expected: &'static str },
    #[error("capture column `{column}` is not the expected JSON: {error}")]
    Json { column: &'static str, error: serde_json::Error },
}
