//! What ties a journal to one plan and its servers, beside the phases: the replication
//! objects' names (recorded at the snapshot), each side's server and database (recorded at
//! first contact, so that a plan re-pointed elsewhere is refused), and an abandon.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{rfc3339, Journal, JournalError};
use crate::controller::names::LinkNames;

/// The server a side's URL reached at first contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// `system_identifier` from `pg_control_system()`: one per cluster (initdb).
    pub system_identifier: String,
    /// The database the plan names there.
    pub database: String,
}

/// `pgflip cutover abandon`: when it started, and when it had removed everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abandon {
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl Journal {
    /// The names recorded at the snapshot, if any.
    pub fn links(&self) -> Option<&LinkNames> {
        self.record.links.as_ref()
    }

    /// Records the replication objects' names (once: later calls keep the first).
    pub fn record_links(&mut self, names: &LinkNames) -> Result<(), JournalError> {
        if self.record.links.is_some() {
            return Ok(());
        }
        self.record.links = Some(names.clone());
        self.save()
    }

    /// The server `side` reached at first contact.
    pub fn server(&self, side: &str) -> Option<&Server> {
        self.record.servers.get(side)
    }

    /// Records the server `side` reached (at first contact).
    pub fn record_server(&mut self, side: &str, server: Server) -> Result<(), JournalError> {
        self.record.servers.insert(side.to_owned(), server);
        self.save()
    }

    /// The abandon, once started.
    pub fn abandon(&self) -> Option<&Abandon> {
        self.record.abandon.as_ref()
    }

    /// Records that an abandon started (the first start is kept).
    pub fn start_abandon(&mut self) -> Result<(), JournalError> {
        if self.record.abandon.is_none() {
            self.record.abandon = Some(Abandon { started_at: rfc3339(SystemTime::now()), finished_at: None });
            return self.save();
        }
        Ok(())
    }

    /// Records that the abandon removed everything.
    pub fn finish_abandon(&mut self) -> Result<(), JournalError> {
        let now = rfc3339(SystemTime::now());
        let abandon = self.record.abandon.get_or_insert_with(|| Abandon { started_at: now.clone(), finished_at: None });
        abandon.finished_at = Some(now);
        self.save()
    }
}
