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
    let mut command = Command::new("sh");
    command.arg("-c").arg(&line);
    point_at(&mut command, &ctx.plan.green, ctx.plan.database());
    command.current_dir(plan_dir(&ctx.plan));
    info!(phase = %phase, command = %line, "running on green");
    run_logged(command, phase.name(), every_line).await?;
    ctx.journal.set_fact(phase, "command", json!(line))?;
    Ok(())
}

/// Sets PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD for `endpoint`'s `database`, and
/// PGSSLMODE and PGSSLROOTCERT so that the command connects as the controller does.
pub fn point_at(command: &mut Command, endpoint: &super::plan::Endpoint, database: &str) {
    let config = endpoint.config();
    if let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
        command.env("PGHOST", host);
    }
    if let Some(port) = config.get_ports().first() {
        command.env("PGPORT", port.to_string());
    }
    command.env("PGDATABASE", database);
    command.envs(endpoint.program_env());
    if let Some(user) = config.get_user() {
        command.env("PGUSER", user);
    }
    if let Some(password) = config.get_password() {
        command.env("PGPASSWORD", String::from_utf8_lossy(password).into_owned());
    }
}

/// Where the plan's commands run: the plan file's directory (the current one when the
/// plan path has none).
pub fn plan_dir(plan: &super::plan::Plan) -> &std::path::Path {
    if plan.base_dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        &plan.base_dir
    }
}
