//! The plan's tables for the flip and after it: `[cutover]`, `[validate]` with its
//! `[[validate.check]]` list, and `[retire]`, as written and as validated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration::Written;

/// `[cutover]` as validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CutoverSection {
    /// The sidecars' admin API base URLs (`http://HOST:PORT`).
    pub sidecars: Vec<String>,
    /// `name:port`: every address the name resolves to is a sidecar, added to `sidecars`.
    pub sidecars_dns: Option<String>,
    /// The nameserver (`IP:PORT`) asked for `sidecars_dns`; `None`: the system's resolver.
    pub sidecars_dns_server: Option<std::net::SocketAddr>,
    /// A file holding the sidecars' admin bearer token. Without it, each sidecar on this
    /// host (a loopback URL) is called with the token it made at start
    /// ([`crate::admin_token`]), and the others with none.
    pub admin_token_file: Option<PathBuf>,
    /// The CA file (PEM) that signs the sidecars' admin certificates, for `https` sidecar
    /// URLs (and, when given, the sidecars `sidecars_dns` finds, checked for that name).
    pub sidecar_ca_file: Option<PathBuf>,
    /// How long each sidecar gets to park its sessions at a transaction boundary.
    pub drain_timeout: Duration,
    /// How long green (or blue, on rollback) gets to confirm the fence LSN.
    pub catchup_timeout: Duration,
    /// The longest write pause the flip may take: when its steps before the switch take
    /// longer, it is aborted and traffic resumes on the old side.
    pub max_write_pause: Duration,
    /// The names the sidecars know the two databases by.
    pub green_upstream: String,
    pub blue_upstream: String,
    /// The addresses the sidecars should use, registered with `PUT /v1/upstreams/{name}`.
    pub green_upstream_url: Option<String>,
    pub blue_upstream_url: Option<String>,
    /// A sidecar config file rewritten with `active` and `generation` at every flip.
    pub sidecar_config: Option<PathBuf>,
    /// How many sidecars are called at once.
    pub parallel: usize,
    /// `schema.table` names of tables whose writes may stay on green: REPLICA IDENTITY FULL
    /// tables the migration widened cannot be replicated back to blue, and a cutover
    /// refuses while one is not listed here. Validation leaves them out of its comparison.
    pub one_way_tables: Vec<String>,
    /// The base of the replication objects' names (`pgflip_<name>_fwd`, `pgflip_<name>_rev`);
    /// `None`: the database's name.
    pub name: Option<String>,
}

impl CutoverSection {
    /// The name the sidecars know `side` (`blue` or `green`) by.
    pub fn upstream_name(&self, side: &str) -> &str {
        if side == "blue" {
            &self.blue_upstream
        } else {
            &self.green_upstream
        }
    }
}

/// `[cutover]` as written; durations in seconds or with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct CutoverFile {
    sidecars: Vec<String>,
    sidecars_dns: Option<String>,
    sidecars_dns_server: Option<String>,
    admin_token_file: Option<PathBuf>,
    sidecar_ca_file: Option<PathBuf>,
    drain_timeout: Written,
    catchup_timeout: Written,
    max_write_pause: Written,
    green_upstream: String,
    blue_upstream: String,
    green_upstream_url: Option<String>,
    blue_upstream_url: Option<String>,
    sidecar_config: Option<PathBuf>,
    parallel: usize,
    one_way_tables: Vec<String>,
    name: Option<String>,
}

impl Default for CutoverFile {
    fn default() -> CutoverFile {
        CutoverFile {
            sidecars: Vec::new(),
            sidecars_dns: None,
            sidecars_dns_server: None,
            admin_token_file: None,
            sidecar_ca_file: None,
            drain_timeout: Written(Duration::from_secs(5)),
            catchup_timeout: Written(Duration::from_secs(30)),
            max_write_pause: Written(Duration::from_secs(60)),
            green_upstream: "green".into(),
            blue_upstream: "blue".into(),
            green_upstream_url: None,
            blue_upstream_url: None,
            sidecar_config: None,
            parallel: 16,
            one_way_tables: Vec::new(),
            name: None,
        }
    }
}

/// `[validate]` as validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateSection {
    /// How long the validation window lasts.
    pub window: Duration,
    /// The largest share of the sidecars' transactions that may end in an error sent to
    /// the client during the window (0.01 = 1 %).
    pub max_error_rate: f64,
    /// Roll back by itself when a check fails or the error rate is too high.
    pub auto_rollback: bool,
    /// Compare every replicated table's row count and checksum between blue and green.
    pub table_checksums: bool,
    /// Rows per chunk of a table's checksum (primary-key ranges).
    pub checksum_chunk_rows: u64,
    /// Run the checks once, on snapshots of blue and green that hold the same data: the
    /// fleet pauses for a moment while blue applies everything green committed. Without
    /// it, the checks read both sides live and are retried until they agree.
    pub consistent_point: bool,
    pub checks: Vec<Check>,
}

/// How a check's rows are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckMode {
    /// Same rows, in the same order, on blue and green.
    Compare,
    /// No rows on green.
    Empty,
}

/// `[[validate.check]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    pub sql: String,
    pub mode: CheckMode,
}

/// `[validate]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ValidateFile {
    window: Written,
    max_error_rate: f64,
    auto_rollback: bool,
    table_checksums: bool,
    checksum_chunk_rows: u64,
    consistent_point: bool,
    check: Vec<Check>,
}

impl Default for ValidateFile {
    fn default() -> ValidateFile {
        ValidateFile {
            window: Written(Duration::from_secs(60)),
            max_error_rate: 0.01,
            auto_rollback: true,
            table_checksums: true,
            checksum_chunk_rows: 100_000,
            consistent_point: true,
            check: Vec::new(),
        }
    }
}

/// `[retire]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetireSection {
    /// Where promote writes the final dump of blue (directory format); `None`: no dump.
    pub archive_dir: Option<PathBuf>,
    /// A shell command run after promote, with PGHOST and friends pointing at blue.
    pub command: Option<String>,
}

/// A key and what is wrong with its value.
pub(super) type Problem = (&'static str, String);

pub(super) fn cutover(file: CutoverFile, base_dir: &Path) -> Result<CutoverSection, Problem> {
    for sidecar in &file.sidecars {
        if let Err(e) = sidecar.parse::<crate::ctl::AdminUrl>() {
            let problem = format!("must list http://HOST:PORT or https://HOST:PORT URLs, got {sidecar:?}: {e}");
            return Err(("[cutover] sidecars", problem));
        }
    }
    if let Some(dns) = &file.sidecars_dns {
        if !dns.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()) {
            return Err(("[cutover] sidecars_dns", format!("must be NAME:PORT, got {dns:?}")));
        }
    }
    let sidecars_dns_server = match &file.sidecars_dns_server {
        None => None,
        Some(text) => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
            ("[cutover] sidecars_dns_server", format!("must be IP:PORT (e.g. 10.96.0.10:53), got {text:?}"))
        })?),
    };
    if sidecars_dns_server.is_some() && file.sidecars_dns.is_none() {
        return Err(("[cutover] sidecars_dns_server", "needs sidecars_dns (the name to resolve)".into()));
    }
    let drain_timeout = positive("[cutover] drain_timeout", file.drain_timeout)?;
    let catchup_timeout = positive("[cutover] catchup_timeout", file.catchup_timeout)?;
    let max_write_pause = positive("[cutover] max_write_pause", file.max_write_pause)?;
    if file.green_upstream.is_empty() || file.blue_upstream.is_empty() {
        return Err(("[cutover] green_upstream", "and blue_upstream must not be empty".into()));
    }
    if file.green_upstream == file.blue_upstream {
        return Err(("[cutover] green_upstream", "must differ from blue_upstream".into()));
    }
    if file.parallel == 0 {
        return Err(("[cutover] parallel", "must be at least 1, got 0".into()));
    }
    if let Some(name) = file.one_way_tables.iter().find(|t| t.split('.').count() != 2) {
        return Err(("[cutover] one_way_tables", format!("names tables as schema.table, got {name:?}")));
    }
    let https = file
        .sidecars
        .iter()
        .find(|url| url.parse::<crate::ctl::AdminUrl>().is_ok_and(|url| url.scheme == crate::ctl::Scheme::Https));
    if let (Some(url), None) = (https, &file.sidecar_ca_file) {
        return Err((
            "[cutover] sidecars",
            format!("{url:?} is https: give sidecar_ca_file, the CA that signs the sidecars' admin certificates"),
        ));
    }
    if file.name.as_deref().is_some_and(|name| name.trim().is_empty()) {
        return Err(("[cutover] name", "must not be empty (leave it out to use the database's name)".into()));
    }
    Ok(CutoverSection {
        sidecars: file.sidecars.iter().map(|s| s.trim_end_matches('/').to_owned()).collect(),
        sidecars_dns: file.sidecars_dns,
        sidecars_dns_server,
        admin_token_file: file.admin_token_file.map(|p| base_dir.join(p)),
        sidecar_ca_file: file.sidecar_ca_file.map(|p| base_dir.join(p)),
        drain_timeout,
        catchup_timeout,
        max_write_pause,
        green_upstream: file.green_upstream,
        blue_upstream: file.blue_upstream,
        green_upstream_url: file.green_upstream_url,
        blue_upstream_url: file.blue_upstream_url,
        sidecar_config: file.sidecar_config.map(|p| base_dir.join(p)),
        parallel: file.parallel,
        one_way_tables: file.one_way_tables,
        name: file.name,
    })
}

pub(super) fn validate(file: ValidateFile) -> Result<ValidateSection, Problem> {
    // A window of 0 runs the checks once, with no error-rate measurement.
    let window = file.window.0;
    if !(0.0..=1.0).contains(&file.max_error_rate) {
        return Err(("[validate] max_error_rate", format!("must be between 0 and 1, got {}", file.max_error_rate)));
    }
    if file.checksum_chunk_rows == 0 {
        return Err(("[validate] checksum_chunk_rows", "must be at least 1".into()));
    }
    for (i, check) in file.check.iter().enumerate() {
        if check.name.trim().is_empty() {
            return Err(("[[validate.check]] name", format!("must not be empty (check {})", i + 1)));
        }
        if check.sql.trim().is_empty() {
            return Err(("[[validate.check]] sql", format!("must not be empty (check {:?})", check.name)));
        }
        if file.check[..i].iter().any(|c| c.name == check.name) {
            return Err(("[[validate.check]] name", format!("{:?} is used twice", check.name)));
        }
    }
    Ok(ValidateSection {
        window,
        max_error_rate: file.max_error_rate,
        auto_rollback: file.auto_rollback,
        table_checksums: file.table_checksums,
        checksum_chunk_rows: file.checksum_chunk_rows,
        consistent_point: file.consistent_point,
        checks: file.check,
    })
}

pub(super) fn retire(file: RetireSection, base_dir: &Path) -> Result<RetireSection, Problem> {
    if file.command.as_ref().is_some_and(|c| c.trim().is_empty()) {
        return Err(("[retire] command", "must not be empty (leave it out to run none)".into()));
    }
    Ok(RetireSection { archive_dir: file.archive_dir.map(|p| base_dir.join(p)), command: file.command })
}

fn positive(key: &'static str, value: Written) -> Result<Duration, Problem> {
    if value.0.is_zero() {
        Err((key, "must be greater than 0, got 0".into()))
    } else {
        Ok(value.0)
    }
}
