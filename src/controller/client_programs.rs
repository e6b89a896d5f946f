//! Which pg_dump, pg_restore and pg_dumpall a plan runs. The plan's `[tools] bin_dir`, when
//! given, is used as it is (preflight still judges it). Otherwise the choice waits until
//! both servers' versions are known: preflight makes it ([`super::tools::choice`] over the
//! installations [`super::tools::installations`] finds), prints it, and records it in the
//! journal, so that the later phases (and a later process) run the programs preflight
//! judged.

use std::path::Path;

use serde_json::json;
use tracing::{info, warn};

use super::error::CutoverError;
use super::journal::Journal;
use super::phase::Phase;
use super::preflight::ClientTools;
use super::progress::Progress;
use super::tools::{choice, installations, ProgramVersion, Tools};

/// The journal fact (of preflight) that records the choice.
const FACT: &str = "client_programs";

/// The programs already settled: the plan's directory, else the one preflight chose and
/// the journal recorded; `None` before that choice.
pub fn settled(configured: Option<&Path>, journal: &Journal) -> Option<Tools> {
    if let Some(dir) = configured {
        return Some(Tools::in_dir(dir));
    }
    let recorded = journal.fact(Phase::Preflight, FACT)?;
    Some(match recorded["bin_dir"].as_str() {
        Some(dir) => Tools::in_dir(Path::new(dir)),
        None => Tools::on_path(),
    })
}

/// The major versions preflight recorded in the journal, if it ran.
pub fn recorded_majors(journal: &Journal) -> Option<(i32, i32)> {
    let major = |key| Some(journal.fact(Phase::Preflight, key)?.as_i64()? as i32 / 10000);
    Some((major("blue_server_version_num")?, major("green_server_version_num")?))
}

/// Chooses among the installations on this machine for blue on `blue` and green on
/// `green` (major versions), says which and why (a progress line and the log), records
/// the choice in the journal, and returns the programs with what preflight judges.
pub async fn choose(
    journal: &mut Journal,
    progress: Progress,
    blue: i32,
    green: i32,
) -> Result<(Tools, ClientTools), CutoverError> {
    let found = installations::find().await;
    let listed: Vec<String> = found.iter().map(ToString::to_string).collect();
    let Some(chosen) = choice::choose(&found, blue, green) else {
        warn!(blue, green, "no pg_dump with its pg_restore on PATH or in /usr/lib/postgresql/*/bin");
        progress
            .line("client programs: no pg_dump with its pg_restore was found on PATH or in /usr/lib/postgresql/*/bin");
        journal.set_fact(Phase::Preflight, FACT, json!({ "bin_dir": null, "found": listed }))?;
        let judged = ClientTools {
            pg_dump: ProgramVersion::probe("pg_dump".into()).await,
            pg_restore: ProgramVersion::probe("pg_restore".into()).await,
            found: Some(listed),
        };
        return Ok((Tools::on_path(), judged));
    };
    let installation = &found[chosen.index];
    let version = match &installation.pg_dump.found {
        Ok((_, line)) => line.clone(),
        Err(why) => why.clone(),
    };
    info!(
        bin_dir = %installation.dir.display(),
        pg_dump = %version,
        reason = %chosen,
        found = ?listed,
        "client programs chosen"
    );
    progress.line(format_args!("client programs: {version} in {}: {chosen}", installation.dir.display()));
    journal.set_fact(
        Phase::Preflight,
        FACT,
        json!({
            "bin_dir": installation.dir.display().to_string(),
            "pg_dump": version,
            "why": chosen.to_string(),
            "found": listed,
        }),
    )?;
    let judged = ClientTools {
        pg_dump: installation.pg_dump.clone(),
        pg_restore: installation.pg_restore.clone(),
        found: Some(listed),
    };
    Ok((Tools::in_dir(&installation.dir), judged))
}
