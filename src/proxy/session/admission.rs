//! Admitting clients. A connection is *logging in* from its accept until its client has
//! authenticated (TLS, startup packet, authentication): that takes at most
//! `client_login_timeout`, and at most `max_clients_logging_in` connections log in at once;
//! past it the oldest of them is dropped, so a flood of connections that send nothing
//! cannot lock real clients out (those finish in milliseconds and leave the queue). A
//! client that logged in holds one of `max_client_connections` places until its session
//! ends; past it a new client gets FATAL 53300, as PostgreSQL answers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::proxy::config::ClientLimits;
use crate::proxy::metrics::{ClientLimit, Metrics};
use crate::proxy::session::SessionError;

/// The connections logging in and the count of clients logged in.
#[derive(Debug)]
pub struct Admission {
    limits: ClientLimits,
    metrics: Arc<Metrics>,
    /// Connections logging in, oldest first, each with the signal that drops it.
    logging_in: Mutex<BTreeMap<u64, CancellationToken>>,
    next_id: AtomicU64,
    clients: AtomicUsize,
}

/// Why a login was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCut {
    /// `client_login_timeout` passed.
    TimedOut,
    /// Dropped as the oldest of too many connections logging in.
    Displaced,
}

impl LoginCut {
    /// What the client is told, when it can be told anything.
    pub fn error(self, limits: &ClientLimits) -> SessionError {
        let message = match self {
            LoginCut::TimedOut => format!(
                "the client did not log in within {} (client_login_timeout)",
                crate::duration::display(limits.login_timeout)
            ),
            LoginCut::Displaced => format!(
                "too many connections are logging in at once (max_clients_logging_in {}); this one waited longest",
                limits.max_logging_in
            ),
        };
        let code = match self {
            LoginCut::TimedOut => "08P01",
            LoginCut::Displaced => "53300",
        };
        SessionError::Shed { code, message }
    }
}

impl Admission {
    pub fn new(limits: ClientLimits, metrics: Arc<Metrics>) -> Admission {
        Admission {
            limits,
            metrics,
            logging_in: Mutex::default(),
            next_id: AtomicU64::new(0),
            clients: AtomicUsize::new(0),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }

    /// Starts the login of a connection just accepted; drops the oldest one logging in
    /// when there are too many.
    pub fn begin_login(self: &Arc<Self>) -> LoggingIn {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = CancellationToken::new();
        let mut logging_in = self.lock();
        logging_in.insert(id, dropped.clone());
        while logging_in.len() > self.limits.max_logging_in {
            let Some((_, oldest)) = logging_in.pop_first() else { break };
            oldest.cancel();
            self.metrics.client_limit(ClientLimit::LoggingIn);
        }
        drop(logging_in);
        LoggingIn { admission: self.clone(), id, dropped, deadline: Instant::now() + self.limits.login_timeout }
    }

    /// A place for a client that logged in, or `None` when all are taken.
    pub fn admit_client(self: &Arc<Self>) -> Option<ClientPlace> {
        let taken = self.clients.fetch_update(Ordering::AcqRel, Ordering::Acquire, |clients| {
            (clients < self.limits.max_clients).then_some(clients + 1)
        });
        match taken {
            Ok(_) => Some(ClientPlace(self.clone())),
            Err(_) => {
                self.metrics.client_limit(ClientLimit::Clients);
                None
            }
        }
    }

    /// Connections logging in now.
    #[cfg(test)]
    fn logging_in(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        self.logging_in.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection logging in; leaves the queue when dropped.
#[derive(Debug)]
pub struct LoggingIn {
    admission: Arc<Admission>,
    id: u64,
    dropped: CancellationToken,
    deadline: Instant,
}

impl LoggingIn {
    /// Runs one step of the login, unless the login's time runs out or the connection is
    /// dropped for a newer one first.
    pub async fn bound<F: Future>(&self, step: F) -> Result<F::Output, LoginCut> {
        tokio::select! {
            biased;
            out = step => Ok(out),
            _ = self.dropped.cancelled() => Err(LoginCut::Displaced),
            _ = tokio::time::sleep_until(self.deadline) => {
                self.admission.metrics.client_limit(ClientLimit::LoginTimeout);
                Err(LoginCut::TimedOut)
            }
        }
    }

    /// The admission this login belongs to.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }
}

impl Drop for LoggingIn {
    fn drop(&mut self) {
        self.admission.lock().remove(&self.id);
    }
}

/// One of `max_client_connections` places, held until dropped.
#[derive(Debug)]
pub struct ClientPlace(Arc<Admission>);

impl Drop for ClientPlace {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admission(max_logging_in: usize, max_clients: usize) -> Arc<Admission> {
        let metrics = Arc::new(Metrics::register(&prometheus::Registry::new()).expect("metrics"));
        let login_timeout = Duration::from_millis(50);
        let limits = ClientLimits { max_logging_in, max_clients, login_timeout, ..ClientLimits::default() };
        Arc::new(Admission::new(limits, metrics))
    }

    #[test]
    fn the_oldest_login_is_dropped_past_the_cap() {
        let admission = admission(2, 10);
        let first = admission.begin_login();
        let second = admission.begin_login();
        assert!(!first.dropped.is_cancelled());
        let third = admission.begin_login();
        assert!(first.dropped.is_cancelled(), "the oldest goes");
        assert!(!second.dropped.is_cancelled() && !third.dropped.is_cancelled());
        assert_eq!(admission.logging_in(), 2);
        drop(second);
        let _fourth = admission.begin_login();
        assert!(!third.dropped.is_cancelled(), "a login that finished left room");
        drop(first);
        assert_eq!(admission.logging_in(), 2);
    }

    #[test]
    fn client_places_are_counted_and_given_back() {
        let admission = admission(10, 2);
        let a = admission.admit_client().expect("first");
        let _b = admission.admit_client().expect("second");
        assert!(admission.admit_client().is_none(), "third is refused");
        drop(a);
        assert!(admission.admit_client().is_some(), "a place given back is taken again");
    }

    #[tokio::test]
    async fn a_login_past_its_deadline_is_cut() {
        let admission = admission(10, 10);
        let login = admission.begin_login();
        let quick = login.bound(async { 7 }).await;
        assert_eq!(quick, Ok(7));
        let slow = login.bound(tokio::time::sleep(Duration::from_secs(60))).await;
        assert_eq!(slow, Err(LoginCut::TimedOut));
        let newer: Vec<_> = (0..10).map(|_| admission.begin_login()).collect();
        assert_eq!(login.bound(std::future::pending::<()>()).await, Err(LoginCut::Displaced));
        drop(newer);
    }
}
