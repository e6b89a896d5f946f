//! The plan file of `pgflip cutover --plan plan.toml`: blue and green, the application's roles,
//! the commands and thresholds of each phase, validated into a [`Plan`]. Every error names the
//! key at fault; no error or `Debug` output shows a password.
//!
//! Relative paths in the plan are relative to the plan file's directory.

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod endpoint;
mod flip_sections;
mod kube_section;
mod sections;
mod tls;
mod url;
pub use endpoint::Endpoint;
pub use flip_sections::{Check, CheckMode, CutoverSection, RetireSection, ValidateSection};
pub use kube_section::KubernetesSection;
pub use sections::{
    AppSection, CatchupSection, CommandSection, DdlSection, JournalSection, MetricsSection, PreflightSection,
    RestoreSection, SecuritySection, SnapshotSection, ToolsSection,
};
pub use tls::{EndpointTls, SslMode, TlsParams};

use super::target::Target;

/// What is wrong with a plan, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Not TOML, or a value of the wrong type; `at` is the line and column.
    #[error("{file}: {message}{}", line_column(*.at))]
    Toml { file: String, at: Option<(usize, usize)>, message: String },
    /// A key the plan does not have, e.g. `[green] urll`; `hint` lists the valid ones.
    #[error("{file}: unknown key {key}{}: {hint}", line_column(*.at))]
    UnknownKey { file: String, key: String, at: Option<(usize, usize)>, hint: String },
    /// A value that parses but is not allowed, e.g. `[catchup] max_lag_seconds` `must be greater than 0, got -1`.
    #[error("{file}: {key} {problem}")]
    Invalid { file: String, key: String, problem: String },
}

fn line_column(at: Option<(usize, usize)>) -> String {
    at.map(|(line, column)| format!(" (line {line}, column {column})")).unwrap_or_default()
}

/// A validated plan. Its fields mirror the file's tables: `plan.catchup.max_lag_bytes` is
/// `[catchup] max_lag_bytes`. Paths are resolved against the plan file's directory.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `[blue] url`: names the database.
    pub blue: Endpoint,
    /// `[green] url`, naming blue's database when the file leaves it out.
    pub green: Endpoint,
    pub app: AppSection,
    /// `[migrate] command`: the migration, run on green.
    pub migrate: CommandSection,
    /// `[smoke] command`: the smoke test, run on green.
    pub smoke: CommandSection,
    pub catchup: CatchupSection,
    pub journal: JournalSection,
    pub metrics: MetricsSection,
    pub snapshot: SnapshotSection,
    pub restore: RestoreSection,
    pub preflight: PreflightSection,
    pub tools: ToolsSection,
    pub cutover: CutoverSection,
    pub validate: ValidateSection,
    pub retire: RetireSection,
    pub ddl: DdlSection,
    /// The ConfigMap holding the sidecars' durable target, when the plan names one.
    pub kubernetes: Option<KubernetesSection>,
    pub security: SecuritySection,
    /// The plan file's directory: relative paths resolve against it, and the plan's
    /// commands run in it.
    pub base_dir: PathBuf,
}

impl Plan {
    /// Reads and validates the plan at `path`; errors name the file as given.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read { path: path.to_owned(), source })?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Checker { file: path.display().to_string(), base_dir }.plan(&text)
    }

    /// Validates the plan `text`, resolving relative paths against `base_dir`.
    /// Errors name the file "plan file".
    pub fn parse(text: &str, base_dir: &Path) -> Result<Plan, PlanError> {
        Checker { file: "plan file".to_owned(), base_dir }.plan(text)
    }

    /// The controller's connection to blue.
    pub fn blue_config(&self) -> Target {
        self.blue.target(None)
    }

    /// The controller's connection to green, to the same database as blue.
    pub fn green_config(&self) -> Target {
        self.green.target(None)
    }

    /// The controller's connection to another database of green, e.g. `postgres` to create the database.
    pub fn green_config_for(&self, database: &str) -> Target {
        self.green.target(Some(database))
    }

    /// Green's URL, naming the database (the same as `green.url`).
    pub fn green_url(&self) -> &str {
        &self.green.url
    }

    /// Green's URL naming `database` instead, e.g. `postgres` for pg_dumpall or psql.
    pub fn green_url_for(&self, database: &str) -> String {
        self.green.url_for(database)
    }

    /// The database being moved, of the same name on blue and green.
    pub fn database(&self) -> &str {
        self.blue.database()
    }
}

/// The file form of the plan, for the tables whose keys are checked after parsing.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PlanFile {
    blue: UrlFile,
    green: UrlFile,
    app: AppFile,
    migrate: CommandSection,
    smoke: CommandSection,
    catchup: sections::CatchupFile,
    journal: JournalSection,
    metrics: MetricsSection,
    snapshot: SnapshotSection,
    restore: RestoreSection,
    preflight: PreflightSection,
    tools: ToolsSection,
    cutover: flip_sections::CutoverFile,
    validate: flip_sections::ValidateFile,
    retire: RetireSection,
    ddl: sections::DdlFile,
    kubernetes: kube_section::KubernetesFile,
    security: SecuritySection,
}

/// `[blue]` or `[green]` as written; the URL is required.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UrlFile {
    url: Option<String>,
}

/// `[app]` as written; the roles are required.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AppFile {
    roles: Option<Vec<String>>,
}

/// Validates one plan file, naming it in errors.
struct Checker<'a> {
    file: String,
    base_dir: &'a Path,
}

impl Checker<'_> {
    fn plan(&self, text: &str) -> Result<Plan, PlanError> {
        let file: PlanFile = toml::from_str(text).map_err(|e| self.toml_error(text, &e))?;
        let security = file.security;
        let blue = self.endpoint("[blue] url", file.blue, None, security)?;
        let green = self.endpoint("[green] url", file.green, Some(blue.database()), security)?;
        let roles = file.app.roles.ok_or_else(|| {
            self.invalid("[app] roles", "is required: the roles the application logs in as, e.g. [\"app\"], or []")
        })?;
        if roles.iter().any(|role| role.is_empty()) {
            return Err(self.invalid("[app] roles", "must not contain an empty name"));
        }
        self.command("[migrate] command", &file.migrate)?;
        self.command("[smoke] command", &file.smoke)?;
        let catchup = CatchupSection {
            max_lag_bytes: file.catchup.max_lag_bytes,
            max_lag: file.catchup.max_lag_seconds.0,
            stable: file.catchup.stable_seconds.0,
            timeout: file.catchup.timeout_seconds.0,
        };
        for (key, value) in
            [("[catchup] max_lag_seconds", catchup.max_lag), ("[catchup] timeout_seconds", catchup.timeout)]
        {
            if value.is_zero() {
                return Err(self.invalid(key, "must be greater than 0, got 0"));
            }
        }
        for (key, jobs) in [("[snapshot] jobs", file.snapshot.jobs), ("[restore] jobs", file.restore.jobs)] {
            if jobs == 0 {
                return Err(self.invalid(key, "must be at least 1, got 0"));
            }
        }
        for table in &file.preflight.allow_replica_identity_full {
            if !table.split_once('.').is_some_and(|(schema, name)| !schema.is_empty() && !name.is_empty()) {
                let key = "[preflight] allow_replica_identity_full";
                return Err(self.invalid(key, format!("must list schema.table names, got {table:?}")));
            }
        }
        let ddl = DdlSection { lock_timeout: file.ddl.lock_timeout.0, attempts: file.ddl.attempts };
        if ddl.lock_timeout.is_zero() {
            return Err(self.invalid("[ddl] lock_timeout", "must be greater than 0, got 0"));
        }
        if ddl.attempts == 0 {
            return Err(self.invalid("[ddl] attempts", "must be at least 1, got 0"));
        }
        let problem = |(key, problem): flip_sections::Problem| self.invalid(key, problem);
        let cutover = flip_sections::cutover(file.cutover, self.base_dir).map_err(problem)?;
        let validate = flip_sections::validate(file.validate).map_err(problem)?;
        let retire = flip_sections::retire(file.retire, self.base_dir).map_err(problem)?;
        let kubernetes = kube_section::kubernetes(file.kubernetes, self.base_dir).map_err(problem)?;
        Ok(Plan {
            blue,
            green,
            app: AppSection { roles },
            migrate: file.migrate,
            smoke: file.smoke,
            catchup,
            journal: JournalSection { path: self.base_dir.join(file.journal.path) },
            metrics: file.metrics,
            snapshot: SnapshotSection { dump_dir: self.base_dir.join(file.snapshot.dump_dir), ..file.snapshot },
            restore: file.restore,
            preflight: file.preflight,
            tools: ToolsSection { bin_dir: file.tools.bin_dir.map(|dir| self.base_dir.join(dir)) },
            cutover,
            validate,
            retire,
            ddl,
            kubernetes,
            security,
            base_dir: self.base_dir.to_owned(),
        })
    }

    /// Parses `[section] url`; green (`blue_database` given) may leave the database out.
    fn endpoint(
        &self,
        key: &'static str,
        file: UrlFile,
        blue_database: Option<&str>,
        security: SecuritySection,
    ) -> Result<Endpoint, PlanError> {
        let url = file.url.ok_or_else(|| {
            self.invalid(key, "is required: a superuser connection like postgres://postgres:secret@host:5432/app")
        })?;
        Endpoint::parse(key, url, blue_database, self.base_dir, security.allow_plaintext_passwords)
            .map_err(|problem| self.invalid(key, problem))
    }

    fn command(&self, key: &str, section: &CommandSection) -> Result<(), PlanError> {
        match &section.command {
            Some(command) if command.trim().is_empty() => {
                Err(self.invalid(key, "must not be empty (leave it out to skip the phase)"))
            }
            _ => Ok(()),
        }
    }

    fn invalid(&self, key: &str, problem: impl Into<String>) -> PlanError {
        PlanError::Invalid { file: self.file.clone(), key: key.to_owned(), problem: problem.into() }
    }

    /// Reports a TOML error by line, column and key, without the toml crate's excerpt of the
    /// line, which could show a password.
    fn toml_error(&self, text: &str, e: &toml::de::Error) -> PlanError {
        let message = e.message().trim().replace('\n', "; ");
        let offset = e.span().map(|span| span.start);
        let at = offset.map(|offset| {
            let before = &text[..offset];
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
        });
        let file = self.file.clone();
        // serde: "unknown field `urll`, expected `url`".
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (name, hint) = rest.split_once('`').unwrap_or((rest, ""));
            let key = offset.and_then(|offset| key_at(text, offset, Some(name))).unwrap_or_else(|| name.to_owned());
            return PlanError::UnknownKey { file, key, at, hint: hint.trim_start_matches(", ").to_owned() };
        }
        match offset.and_then(|offset| key_at(text, offset, None)) {
            Some(key) => PlanError::Toml { file, at, message: format!("{key}: {message}") },
            None => PlanError::Toml { file, at, message },
        }
    }
}

/// Names the key at byte `offset` the way plan errors do (`[catchup] max_lag_seconds`): the
/// table header above and the key on that line, or `name` if given. A best effort: keys of
/// inline tables and dotted keys are named without their table.
fn key_at(text: &str, offset: usize, name: Option<&str>) -> Option<String> {
    let mut table = None;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or_default().trim();
        let header = code.strip_prefix('[').and_then(|h| h.strip_suffix(']')).map(|h| h.trim_matches(['[', ']', ' ']));
        if offset < line_start + line.len() {
            if let Some(header) = header {
                return Some(format!("[{header}]"));
            }
            let key = match name {
                Some(name) => name,
                None => code.split_once('=')?.0.trim(),
            };
            return Some(table.map_or_else(|| key.to_owned(), |table| format!("[{table}] {key}")));
        }
        table = header.or(table);
        line_start += line.len();
    }
    None
}

#[cfg(test)]
mod tests;
