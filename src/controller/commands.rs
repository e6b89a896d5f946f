//! The migrate and smoke phases: the plan's commands, run with libpq's environment
//! pointing at green, their output passed on line by line.

use serde_json::json;
use tokio::process::Command;
use tracing::info;

use super::error::CutoverError;
use super::phase::Phase;
use super::runner::Context;
use super::tools::{every_line, run_logged};

/// Runs the plan's command for `phase` (migrate or smoke), if it has one.
pub async fn run(ctx: &mut Context, phase: Phase) -> Result<(), CutoverError> {
    let configured = match phase {
        Phase::Migrate => ctx.plan.migrate.command.clone(),
        _ => ctx.plan.smoke.command.clone(),
    };
    let Some(line) = configured else {
        info!(phase = %phase, "no command in the plan: nothing to run");
        ctx.journal.set_fact(phase, "skipped", json!(true))?;
        return Ok(());
    };
    let green = ctx.plan.green_config();
    let mut command = Command::new("sh");
    command.arg("-c").arg(&line);
    if let Some(tokio_postgres::config::Host::Tcp(host)) = green.get_hosts().first() {
        command.env("PGHOST", host);
    }
    if let Some(port) = green.get_ports().first() {
        command.env("PGPORT", port.to_string());
    }
    if let Some(db) = green.get_dbname() {
        command.env("PGDATABASE", db);
    }
    if let Some(user) = green.get_user() {
        command.env("PGUSER", user);
    }
    if let Some(password) = green.get_password() {
        command.env("PGPASSWORD", String::from_utf8_lossy(password).into_owned());
    }
    info!(phase = %phase, command = %line, "running on green");
    run_logged(command, phase.name(), every_line).await?;
    ctx.journal.set_fact(phase, "command", json!(line))?;
    Ok(())
}
