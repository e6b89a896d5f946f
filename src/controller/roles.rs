//! Roles for green: pg_dump carries none, so the roles blue has and green lacks are created
//! from `pg_dumpall --roles-only` of blue before the restore. The plan's app roles stay
//! NOLOGIN on green (fenced) until the cutover opens them.

use std::collections::BTreeSet;

use tokio::process::Command;
use tokio_postgres::Client;
use tracing::info;

use super::error::CutoverError;
use super::pg::{ident, redact_password, without_statement_logging};
use super::runner::Context;
use super::tools::{connect_to, run_captured};

/// Creates on green the roles of blue it lacks; returns their names. Then fences the app
/// roles (NOLOGIN).
pub async fn prepare(ctx: &Context, green: &Client) -> Result<Vec<String>, CutoverError> {
    // With passwords (the plan's user is a superuser): a role without its password could
    // not log in after the cutover.
    let mut command = Command::new(ctx.tools.program("pg_dumpall"));
    command.arg("--roles-only");
    connect_to(&mut command, &ctx.plan.blue, ctx.plan.database());
    let script = run_captured(command, "pg_dumpall --roles-only").await?;
    let existing: BTreeSet<String> = green
        .query("SELECT rolname FROM pg_catalog.pg_roles", &[])
        .await
        .map_err(CutoverError::sql("listing green's roles"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = RoleScript::parse(&script);
    let missing: Vec<&String> = plan.created.iter().filter(|name| !existing.contains(*name)).collect();
    let statements = plan.statements_for(&missing);
    if statements.iter().any(|s| s.to_ascii_uppercase().contains("PASSWORD '")) {
        without_statement_logging(green, "green").await?;
    }
    for statement in statements {
        let shown = redact_password(&statement);
        green.batch_execute(&statement).await.map_err(CutoverError::sql(format!("on green: {shown}")))?;
    }
    for role in &ctx.plan.app.roles {
        let fence = format!("ALTER ROLE {} NOLOGIN", ident(role));
        green.batch_execute(&fence).await.map_err(CutoverError::sql(format!("fencing app role {role} on green")))?;
    }
    let created: Vec<String> = missing.into_iter().cloned().collect();
    info!(created = ?created, fenced = ?ctx.plan.app.roles, "roles on green");
    Ok(created)
}

/// The statements of a `pg_dumpall --roles-only` script, by role.
#[derive(Debug, Default, PartialEq, Eq)]
struct RoleScript {
    /// Roles in `CREATE ROLE` order.
    created: Vec<String>,
    /// (role it concerns, statement): CREATE ROLE, ALTER ROLE, and GRANT memberships (the
    /// member's name).
    statements: Vec<(Vec<String>, String)>,
}

impl RoleScript {
    fn parse(script: &str) -> RoleScript {
        let mut out = RoleScript::default();
        for line in script.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("CREATE ROLE ") {
                let name = read_ident(rest);
                out.created.push(name.clone());
                out.statements.push((vec![name], line.to_owned()));
            } else if let Some(rest) = line.strip_prefix("ALTER ROLE ") {
                out.statements.push((vec![read_ident(rest)], line.to_owned()));
            } else if let Some(rest) = line.strip_prefix("GRANT ") {
                // GRANT role TO member [WITH ADMIN OPTION] [GRANTED BY grantor];
                let granted = read_ident(rest);
                let member = rest.split_once(" TO ").map(|(_, m)| read_ident(m)).unwrap_or_default();
                out.statements.push((vec![granted, member], line.to_owned()));
            }
        }
        out
    }

    /// The statements that concern any of `roles`, in script order.
    fn statements_for(&self, roles: &[&String]) -> Vec<String> {
        self.statements
            .iter()
            .filter(|(about, _)| about.iter().any(|name| roles.contains(&name)))
            .map(|(_, statement)| statement.clone())
            .collect()
    }
}

/// The identifier at the start of `text` (quoted or not), unquoted.
fn read_ident(text: &str) -> String {
    if let Some(rest) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    name.push('"');
                } else {
                    break;
                }
            } else {
                name.push(c);
            }
        }
        name
    } else {
        text.split(|c: char| c.is_whitespace() || c == ';').next().unwrap_or_default().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = r#"
SET default_transaction_read_only = off;
CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$x';
CREATE ROLE "Tenant ""Role""";
ALTER ROLE "Tenant ""Role""" WITH NOLOGIN;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER;
GRANT "Tenant ""Role""" TO app GRANTED BY postgres;
"#;

    #[test]
    fn reads_roles_and_their_statements() {
        let script = RoleScript::parse(SCRIPT);
        assert_eq!(script.created, ["app", "Tenant \"Role\"", "postgres"]);
        let app = "app".to_string();
        let statements = script.statements_for(&[&app]);
        assert_eq!(statements.len(), 3, "{statements:?}");
        assert!(statements[2].starts_with("GRANT"));
        assert!(script.statements_for(&[&"nobody".to_string()]).is_empty());
    }
}
