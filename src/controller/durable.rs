//! The sidecars' durable target: the plan's `sidecar_config` file (the sidecars' own config
//! format) rewritten at every flip with the active upstream and its generation, so that a
//! sidecar that restarts, or reloads the file, comes up on the right database. Everything
//! else in the file, comments included, is kept; the file is replaced atomically.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::error::CutoverError;

/// Sets the top-level `active` and `generation` keys of the TOML file at `path`.
pub fn write_target(path: &Path, active: &str, generation: u64) -> Result<(), CutoverError> {
    let io_error = |what: &str, source| CutoverError::Io {
        what: format!("[cutover] sidecar_config {}: {what}", path.display()),
        source,
    };
    let text = fs::read_to_string(path).map_err(|e| io_error("cannot read", e))?;
    let updated = with_target(&text, active, generation);
    let tmp = path.with_extension("pgflip-tmp");
    let mut file = fs::File::create(&tmp).map_err(|e| io_error("cannot write", e))?;
    file.write_all(updated.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| io_error("cannot write", e))?;
    fs::rename(&tmp, path).map_err(|e| io_error("cannot replace", e))?;
    Ok(())
}

/// `text` with its top-level `active` and `generation` lines replaced (or added before the
/// first table).
pub fn with_target(text: &str, active: &str, generation: u64) -> String {
    let active_line = format!("active = {}", toml::Value::String(active.to_owned()));
    let generation_line = format!("generation = {generation}");
    let mut out: Vec<String> = Vec::new();
    let (mut seen_active, mut seen_generation, mut in_table) = (false, false, false);
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with('[') {
            if !in_table {
                add_missing(&mut out, [(!seen_active, &active_line), (!seen_generation, &generation_line)]);
                seen_active = true;
                seen_generation = true;
            }
            in_table = true;
        }
        if !in_table && key_of(code) == Some("active") {
            out.push(active_line.clone());
            seen_active = true;
        } else if !in_table && key_of(code) == Some("generation") {
            out.push(generation_line.clone());
            seen_generation = true;
        } else {
            out.push(line.to_owned());
        }
    }
    if !in_table {
        add_missing(&mut out, [(!seen_active, &active_line), (!seen_generation, &generation_line)]);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Adds the `(missing, line)` lines that are missing after the last non-blank line so far.
fn add_missing(out: &mut Vec<String>, lines: [(bool, &String); 2]) {
    let at = out.iter().rposition(|l| !l.trim().is_empty()).map_or(0, |i| i + 1);
    let missing: Vec<String> = lines.iter().filter(|(missing, _)| *missing).map(|(_, line)| (*line).clone()).collect();
    for (i, line) in missing.into_iter().enumerate() {
        out.insert(at + i, line);
    }
}

/// The key a TOML line sets, if it is a plain `key = value` line.
fn key_of(code: &str) -> Option<&str> {
    let (key, _) = code.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('#')).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::with_target;

    #[test]
    fn replaces_the_keys_and_keeps_the_rest() {
        let text = "# sidecar\nlisten = \"127.0.0.1:6432\"\nactive = \"blue\"\n\n[upstream]\nblue = \"postgres://b\"\nactive = \"x\"\n";
        let out = with_target(text, "green", 7);
        assert_eq!(
            out,
            "# sidecar\nlisten = \"127.0.0.1:6432\"\nactive = \"green\"\ngeneration = 7\n\n[upstream]\nblue = \"postgres://b\"\nactive = \"x\"\n"
        );
        let parsed: toml::Value = toml::from_str(&out).expect("still TOML");
        assert_eq!(parsed["active"].as_str(), Some("green"));
        assert_eq!(parsed["generation"].as_integer(), Some(7));
        assert_eq!(with_target(&out, "blue", 8).matches("generation").count(), 1);
    }

    #[test]
    fn adds_the_keys_to_a_file_without_them() {
        let out = with_target("listen = \"127.0.0.1:6432\"\n", "green", 2);
        assert_eq!(out, "listen = \"127.0.0.1:6432\"\nactive = \"green\"\ngeneration = 2\n");
    }
}
