//! Naming the key at fault in a TOML error of the sidecar's config file.

use std::path::Path;

use super::{err, ConfigError};

pub(super) fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let msg = e.message().trim();
    // serde quotes an unknown key in its message; for a bad value, find the key by position.
    let key = match msg.split('`').nth(1) {
        Some(quoted) if msg.starts_with("unknown field") => quoted.to_owned(),
        _ => e.span().and_then(|span| key_at(text, span.start)).unwrap_or_else(|| "config".to_owned()),
    };
    err(key, format!("{msg} (in {})", path.display()))
}

/// The dotted key whose line contains byte `offset` of a TOML document.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            table = header.trim().to_owned();
        }
        if offset < start + line.len() {
            let key = trimmed.split_once('=')?.0.trim().trim_matches('"');
            return Some(if table.is_empty() { key.to_owned() } else { format!("{table}.{key}") });
        }
        start += line.len();
    }
    None
}
