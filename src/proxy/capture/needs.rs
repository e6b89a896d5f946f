//! The settings a session needs the server it moves to to have: those its startup packet
//! sets (the new connection is opened with the same packet), and those it changed itself
//! (the replay sets them). A server of another major version may lack some: PostgreSQL
//! renames and removes settings between versions (`force_parallel_mode` became
//! `debug_parallel_query` in 16, `operator_precedence_warning` went in 14), and a
//! session that sets one cannot move there.

use super::quote::is_custom_setting_name;
use super::snapshot::SessionSnapshot;
use crate::wire::startup::StartupMessage;

/// Setting names, lower case, that a session's move sets on the new server. Custom
/// settings (`myapp.tenant`) are left out: every server takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingNeeds {
    /// Set by the startup packet, as parameters or in `options` (`-c name=value`,
    /// `--name=value`): the new server must know them, in any context.
    pub startup: Vec<String>,
    /// Changed by the session from its connection's baseline: the new server must let a
    /// session set them (`user` or `superuser` context).
    pub session: Vec<String>,
}

impl SettingNeeds {
    /// What moving the session that logged in with `startup` and was captured as
    /// `snapshot` sets. A setting the client named in a `SET` but that still has its
    /// connection's baseline value is not needed: a server without that setting loses
    /// nothing (the replay leaves it out there, see [`super::replay_statements`]). The
    /// [`super::OVERRIDDEN_SETTINGS`], always replayed, are in every supported version.
    pub fn of(startup: &StartupMessage, snapshot: &SessionSnapshot) -> SettingNeeds {
        let mut needs = SettingNeeds { startup: startup_settings(startup), session: Vec::new() };
        for setting in &snapshot.settings {
            add(&mut needs.session, &setting.name);
        }
        needs
    }
}

/// Startup packet parameters that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "options", "replication"];

/// The settings a startup packet sets: its parameters (but `user`, `database`, `options`,
/// `replication` and protocol extensions `_pq_.*`) and the `-c name=value` and
/// `--name=value` switches of its `options`. The other switches `options` may hold (`-S`,
/// `-e`, `-f s`, ...) set settings every supported server has.
pub fn startup_settings(startup: &StartupMessage) -> Vec<String> {
    let mut names = Vec::new();
    for (name, value) in &startup.params {
        if name == "options" {
            for name in option_settings(value) {
                add(&mut names, &name);
            }
        } else if !NOT_SETTINGS.contains(&name.as_str()) && !name.starts_with("_pq_.") {
            add(&mut names, name);
        }
    }
    names
}

fn add(names: &mut Vec<String>, name: &str) {
    let name = name.to_ascii_lowercase();
    if !is_custom_setting_name(&name) && !names.contains(&name) {
        names.push(name);
    }
}

/// The switches of a backend's command line that take an argument, as `getopt` reads
/// them (`postgres --help`; `-` is `--name=value`).
const TAKES_ARGUMENT: &str = "BcCDdfhkNprStvW-";

/// The setting names that `-c name=value` and `--name=value` set in a startup packet's
/// `options`, split as PostgreSQL splits them: at unescaped whitespace, a backslash
/// keeping the next character. A `-` in a long option's name stands for `_`.
pub fn option_settings(options: &str) -> Vec<String> {
    let words = split_options(options);
    let mut names = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let Some(switches) = word.strip_prefix('-') else { continue };
        for (at, switch) in switches.char_indices() {
            if !TAKES_ARGUMENT.contains(switch) {
                continue;
            }
            let attached = &switches[at + switch.len_utf8()..];
            let argument = if attached.is_empty() { words.next().map(String::as_str) } else { Some(attached) };
            if let (Some(argument), 'c' | '-') = (argument, switch) {
                let name = argument.split_once('=').map_or(argument, |(name, _)| name);
                let name = if switch == '-' { name.replace('-', "_") } else { name.to_owned() };
                if !name.is_empty() {
                    names.push(name);
                }
            }
            break;
        }
    }
    names
}

fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = options.chars();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(params: &[(&str, &str)]) -> StartupMessage {
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        StartupMessage { version: crate::wire::PROTOCOL_3_0, params }
    }

    #[test]
    fn options_name_settings_as_postgres_reads_them() {
        assert_eq!(option_settings("-c work_mem=8MB"), ["work_mem"]);
        assert_eq!(option_settings("-cwork_mem=8MB --force-parallel-mode=on"), ["work_mem", "force_parallel_mode"]);
        assert_eq!(option_settings(r"-c search_path=a\ b -c geqo=off"), ["search_path", "geqo"]);
        assert_eq!(option_settings("-e -S 1024 -c jit=off"), ["jit"]);
        assert_eq!(option_settings("-ec jit=off"), ["jit"]);
        assert_eq!(option_settings("-c"), Vec::<String>::new());
        assert_eq!(option_settings("  "), Vec::<String>::new());
    }

    #[test]
    fn a_startup_packet_sets_its_parameters_and_options_but_not_custom_ones() {
        let packet = startup(&[
            ("user", "app"),
            ("database", "db"),
            ("DateStyle", "ISO"),
            ("options", "-c vacuum_cleanup_index_scale_factor=0.1 -c myapp.tenant=7"),
            ("_pq_.something", "x"),
            ("application_name", "web"),
        ]);
        assert_eq!(startup_settings(&packet), ["datestyle", "vacuum_cleanup_index_scale_factor", "application_name"]);
    }
}
