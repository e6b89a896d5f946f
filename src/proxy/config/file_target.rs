//! What a reload reads from the config file: the durable target.

use std::path::Path;

use super::file_error::toml_error;
use super::{err, ConfigError, ProxyFile};
use crate::proxy::upstream::UpstreamUrl;

/// The durable target a config file carries: the active upstream and its generation,
/// with the upstreams it names. Read again on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTarget {
    pub active: Option<String>,
    pub generation: u64,
    pub upstreams: Vec<(String, UpstreamUrl)>,
}

impl FileTarget {
    /// Reads the target from the config file at `path`.
    pub fn read(path: &Path) -> Result<FileTarget, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
        let file: ProxyFile = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        let mut upstreams = Vec::new();
        for (name, url) in file.upstream {
            crate::proxy::upstream::check_name(&name).map_err(|e| err("upstream", e))?;
            let parsed = UpstreamUrl::parse(&url).map_err(|e| err(format!("upstream.{name}"), format!("URL {e}")))?;
            upstreams.push((name, parsed));
        }
        Ok(FileTarget { active: file.active, generation: file.generation.unwrap_or(1), upstreams })
    }
}
