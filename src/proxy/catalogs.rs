//! The upstreams' user catalogs, read at every switch (before its pause when it pauses
//! itself), and the OID maps between them that moved sessions translate with (see
//! [`crate::proxy::oids`]). A session keeps its home side's catalog as long as it lives, so
//! its map outlives a promote and a retire. Read with them: each upstream's settings
//! ([`KnownSettings`]), which say which sessions cannot move there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tracing::{debug, warn};

use crate::proxy::capture::{KnownSettings, KNOWN_SETTINGS_QUERY};
use crate::proxy::context::ProxyContext;
use crate::proxy::oids::{Catalog, OidMap, CATALOG_QUERY};
use crate::proxy::upstream::{connect, query, Upstream, UpstreamError};
use crate::wire::startup::StartupMessage;

/// A map made, with the catalogs it was made from, all held weakly: a map lives as long as
/// a session uses it.
type Made = (Weak<Catalog>, Weak<Catalog>, Weak<OidMap>);

/// The latest catalog of each upstream, and the maps made from them.
#[derive(Debug, Default)]
pub struct Catalogs {
    latest: Mutex<HashMap<String, Arc<Catalog>>>,
    settings: Mutex<HashMap<String, Arc<KnownSettings>>>,
    maps: Mutex<Vec<Made>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Catalogs {
    /// The latest catalog read of `upstream`.
    pub fn latest(&self, upstream: &str) -> Option<Arc<Catalog>> {
        lock(&self.latest).get(upstream).cloned()
    }

    /// The settings `upstream` had when last read.
    pub fn settings(&self, upstream: &str) -> Option<Arc<KnownSettings>> {
        lock(&self.settings).get(upstream).cloned()
    }

    /// The map between `home` and `serving`, made once and shared while sessions use it.
    pub fn map(&self, home: &Arc<Catalog>, serving: &Arc<Catalog>) -> Arc<OidMap> {
        let mut maps = lock(&self.maps);
        maps.retain(|(_, _, map)| map.strong_count() > 0);
        let found = maps.iter().find(|(h, s, _)| {
            h.upgrade().is_some_and(|h| Arc::ptr_eq(&h, home)) && s.upgrade().is_some_and(|s| Arc::ptr_eq(&s, serving))
        });
        if let Some(map) = found.and_then(|(_, _, map)| map.upgrade()) {
            return map;
        }
        let map = Arc::new(OidMap::new(home.clone(), serving.clone()));
        maps.push((Arc::downgrade(home), Arc::downgrade(serving), Arc::downgrade(&map)));
        map
    }

    /// Reads the catalogs and settings of `upstreams` anew, at once, each within `timeout`,
    /// logging in as one of the sessions' clients (there is nothing to translate or check
    /// without sessions), with only its user and database: a setting of its startup packet
    /// might be one the upstream lacks. One that cannot be read keeps its last catalog:
    /// sessions moved to it are not translated when it has none.
    pub async fn refresh(ctx: &Arc<ProxyContext>, upstreams: &[Arc<Upstream>], timeout: Duration) {
        let Some((startup, user)) = ctx.sessions.all().iter().find_map(|s| s.login().cloned()) else {
            return;
        };
        let startup = StartupMessage {
            version: startup.version,
            params: startup.params.into_iter().filter(|(k, _)| k == "user" || k == "database").collect(),
        };
        let reads: Vec<_> = upstreams
            .iter()
            .map(|upstream| {
                let (startup, login) = (startup.clone(), ctx.login_for(upstream, &user));
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let read = async {
                        let mut conn = connect(&upstream, &startup, &login, timeout).await?;
                        let malformed = |what| UpstreamError::Protocol {
                            upstream: upstream.name.clone(),
                            source: crate::wire::WireError::Malformed(what),
                        };
                        let answer = query::simple_query(&mut conn.query(&upstream.name), CATALOG_QUERY).await?;
                        let catalog = Catalog::from_rows(&answer.rows)
                            .map_err(|_| malformed("a catalog row pgflip does not understand"))?;
                        let answer = query::simple_query(&mut conn.query(&upstream.name), KNOWN_SETTINGS_QUERY).await?;
                        let settings = KnownSettings::from_rows(&answer.rows)
                            .map_err(|_| malformed("a settings row pgflip does not understand"))?;
                        Ok::<_, UpstreamError>((catalog, settings))
                    };
                    (upstream.name.clone(), tokio::time::timeout(timeout, read).await)
                })
            })
            .collect();
        for read in reads {
            let Ok((upstream, result)) = read.await else { continue };
            match result {
                Ok(Ok((catalog, settings))) => {
                    debug!(
                        upstream,
                        types = catalog.types.len(),
                        relations = catalog.relations.len(),
                        version = %settings.version,
                        "catalog read"
                    );
                    lock(&ctx.catalogs.latest).insert(upstream.clone(), Arc::new(catalog));
                    lock(&ctx.catalogs.settings).insert(upstream, Arc::new(settings));
                }
                Ok(Err(e)) => {
                    warn!(upstream, error = %e, "reading the catalog failed: sessions moved there keep its last one, if any")
                }
                Err(_) => warn!(upstream, "reading the catalog timed out"),
            }
        }
    }
}
