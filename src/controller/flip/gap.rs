//! The settings the new side lacks that the old side's sessions may have set: what the
//! pause tells each sidecar, so that a session that set one (`force_parallel_mode` on a 15
//! blue, with green on 18) blocks the pause by name, before anything is fenced. The
//! sidecars could not read it themselves: the clients' roles may not log in to the new side
//! until the flip.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::super::error::CutoverError;
use crate::api::TargetLacks;
use crate::proxy::capture::SETTABLE_CONTEXTS;

/// Every setting of a server with its context.
async fn settings(client: &Client, side: &str) -> Result<HashMap<String, String>, CutoverError> {
    let rows = client
        .query("SELECT name, context FROM pg_catalog.pg_settings", &[])
        .await
        .map_err(CutoverError::sql(format!("reading the settings of {side}")))?;
    Ok(rows.iter().map(|row| (row.get::<_, String>(0).to_ascii_lowercase(), row.get(1))).collect())
}

/// What `new` lacks of `old`'s settings: those it does not have, and those a session may
/// set on `old` but not on `new`. Empty between servers of one major version.
pub(super) async fn target_lacks(
    old: &Client,
    from: &str,
    new: &Client,
    to: &str,
) -> Result<TargetLacks, CutoverError> {
    let (before, after) = (settings(old, from).await?, settings(new, to).await?);
    let version: String = new
        .query_one("SELECT pg_catalog.current_setting('server_version')", &[])
        .await
        .map_err(CutoverError::sql(format!("reading the version of {to}")))?
        .get(0);
    Ok(TargetLacks { version, settings: lacking(&before, &after) })
}

fn lacking(before: &HashMap<String, String>, after: &HashMap<String, String>) -> Vec<String> {
    let settable = |context: &str| SETTABLE_CONTEXTS.contains(&context);
    let mut names: Vec<String> = before
        .iter()
        .filter(|(name, context)| match after.get(*name) {
            None => true,
            Some(now) => settable(context) && !settable(now),
        })
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_side_lacks_what_it_does_not_have_or_does_not_let_a_session_set() {
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect();
        let before = map(&[
            ("work_mem", "user"),
            ("force_parallel_mode", "user"),
            ("vacuum_defer_cleanup_age", "sighup"),
            ("made_stricter", "user"),
        ]);
        let after = map(&[("work_mem", "user"), ("debug_parallel_query", "user"), ("made_stricter", "postmaster")]);
        assert_eq!(lacking(&before, &after), ["force_parallel_mode", "made_stricter", "vacuum_defer_cleanup_age"]);
        assert!(lacking(&before, &before).is_empty());
    }
}
