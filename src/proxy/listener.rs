//! The sidecar's top level: build shared state, bind the listeners, accept clients, and
//! shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin_token::{self, MadeToken, TokenFileError};
use crate::proxy::admin::{self, AdminMetrics, AdminState};
use crate::proxy::config::ProxyConfig;
use crate::proxy::context::{Limits, ProxyContext};
use crate::proxy::metrics::Metrics;
use crate::proxy::peer::Peer;
use crate::proxy::reload;
use crate::proxy::session::{self, Admission};
use crate::proxy::standby::{self, Listener, Standby};
use crate::proxy::stream::Handover;
use crate::proxy::tls::{self, TlsConfigError};
use crate::proxy::unix_socket::{UnixSocket, UnixSocketError};
use crate::proxy::upstream::{Registry, SecretScope, Upstream, UpstreamConfigError};
use crate::proxy::workers::Workers;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { addr: SocketAddr, what: &'static str, source: std::io::Error },
    #[error("listen_unix: {0}")]
    Unix(#[from] UnixSocketError),
    #[error(transparent)]
    Upstream(#[from] UpstreamConfigError),
    #[error("client TLS: {0}")]
    Tls(#[from] TlsConfigError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("starting worker threads: {0}")]
    Workers(std::io::Error),
    #[error("the admin token: {0}")]
    AdminToken(#[from] TokenFileError),
}

/// How long sessions still open when the grace period ends get to read their 57P01.
const TERMINATE_WAIT: Duration = Duration::from_secs(5);

/// Runs the proxy until `shutdown` resolves, then stops accepting, lets sessions finish
/// for the grace period, and closes the rest with FATAL 57P01.
pub async fn run(config: ProxyConfig, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(Metrics::register(&registry)?);
    let upstreams =
        config.upstreams.iter().map(|(name, url)| Upstream::new(name, url.clone())).collect::<Result<Vec<_>, _>>()?;
    let upstream_registry = Registry::new(upstreams, &config.active, config.generation)?;
    let snapshot = upstream_registry.snapshot();
    metrics.set_active(snapshot.upstreams.iter().map(|u| &u.name), &snapshot.active, snapshot.generation);
    let tls_acceptor = match &config.client_tls {
        Some((cert, key)) => Some(TlsAcceptor::from(tls::server(cert, key)?)),
        None => None,
    };
    let limits = Limits {
        max_message: config.max_message_size,
        connect_timeout: config.connect_timeout,
        max_parked_bytes: config.client_limits.max_parked_bytes,
    };
    let admission = Arc::new(Admission::new(config.client_limits, metrics.clone()));
    let mut ctx = ProxyContext::new(
        upstream_registry,
        config.secrets.clone(),
        config.auth.clone(),
        tls_acceptor,
        metrics,
        limits,
    );
    ctx.track_settings = config.track_settings.clone();
    ctx.show_queries = config.admin.show_queries;
    ctx.secret_scope = SecretScope::new(
        config.upstreams.iter().map(|(name, url)| (name.as_str(), url)),
        config.admin.secrets_follow_readdress,
    );
    ctx.standby = config.standby.clone().map(Standby::new);
    let ctx = Arc::new(ctx);

    let bind = |addr: SocketAddr, what| async move {
        TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr, what, source })
    };
    let listener = bind(config.listen, "listen").await?;
    let admin_listener = bind(config.admin_listen, "admin_listen").await?;
    let unix_socket = match &config.listen_unix {
        Some(unix) => Some(UnixSocket::bind(&unix.path, unix.mode)?),
        None => None,
    };
    let standby_listener = match &config.standby {
        Some(standby) => Some(bind(standby.listen, "listen_standby").await?),
        None => None,
    };
    info!(
        listen = %config.listen,
        listen_unix = unix_socket.as_ref().map(|s| s.path().display().to_string()),
        admin_listen = %config.admin_listen,
        listen_standby = config.standby.as_ref().map(|s| s.listen.to_string()),
        active = %snapshot.active,
        tls = ctx.tls_acceptor.is_some(),
        admin_tls = config.admin_tls.is_some(),
        "pgflip proxy serving"
    );

    // Made once the port is ours, so that a sidecar that failed to bind leaves the file of
    // the one that holds it alone; removed when `_made_token` drops, as the proxy stops.
    let admin_port = admin_listener.local_addr().map_or(config.admin_listen.port(), |addr| addr.port());
    let (token, _made_token) = match &config.admin_token {
        Some(token) => {
            admin_token::remove_stale(admin_port);
            (token.clone(), None)
        }
        None => {
            let made = MadeToken::create(admin_port)?;
            info!(
                path = %made.path.display(),
                "admin token made (no admin_token_file): `pgflip ctl` on this host as this user reads it by itself"
            );
            (made.token.clone(), Some(made))
        }
    };
    let admin_stop = CancellationToken::new();
    let admin_metrics = AdminMetrics::register(&registry)?;
    let admin_state = Arc::new(AdminState {
        ctx: ctx.clone(),
        registry,
        token,
        config: config.admin.clone(),
        metrics: admin_metrics,
    });
    let admin_tls = match &config.admin_tls {
        Some((cert, key)) => Some(TlsAcceptor::from(tls::admin_server(cert, key)?)),
        None => None,
    };
    let admin = tokio::spawn(admin::serve(admin_listener, admin_state, admin_tls, admin_stop.clone()));

    let threads = config.worker_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let workers = Workers::start(threads).map_err(ProxyError::Workers)?;
    let reload_stop = CancellationToken::new();
    if let Some(path) = &config.config_path {
        tokio::spawn(reload::watch(path.clone(), ctx.clone(), reload_stop.clone()));
    }
    if ctx.standby.is_some() {
        tokio::spawn(refresh_standby(ctx.clone(), reload_stop.clone()));
    }
    let sessions = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let tcp = |accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>| {
            accepted.and_then(|(stream, addr)| Ok((Handover::from_tcp(stream)?, Peer::Tcp(addr))))
        };
        let (accepted, kind) = tokio::select! {
            accepted = listener.accept() => (tcp(accepted), Listener::Main),
            accepted = async { unix_socket.as_ref().expect("guarded").accept().await }, if unix_socket.is_some() => {
                (accepted.and_then(|(stream, peer)| Ok((Handover::from_unix(stream)?, peer))), Listener::Main)
            }
            accepted = async { standby_listener.as_ref().expect("guarded").accept().await },
                if standby_listener.is_some() => (tcp(accepted), Listener::Standby),
            _ = &mut shutdown => break,
        };
        match accepted {
            // The socket moves to the worker's own I/O driver.
            Ok((handover, peer)) => {
                let ctx = ctx.clone();
                // Taken here, in accept order, so that the oldest login is the first dropped.
                let login = admission.begin_login();
                workers.spawn(sessions.track_future(async move {
                    match handover.register() {
                        Ok(stream) => session::serve(stream, peer, ctx, kind, login).await,
                        Err(e) => warn!(client.addr = %peer, error = %e, "cannot register connection"),
                    }
                }));
            }
            Err(e) => {
                // Out of file descriptors, usually: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    drop(listener);
    // Removes the socket file: new clients find no socket rather than one that never answers.
    drop(unix_socket);
    drop(standby_listener);
    ctx.begin_shutdown();
    sessions.close();
    info!(
        sessions = sessions.len(),
        grace_seconds = config.shutdown_grace.as_secs_f64(),
        "shutting down: not accepting"
    );
    if tokio::time::timeout(config.shutdown_grace, sessions.wait()).await.is_err() {
        info!(sessions = sessions.len(), "grace period over: closing the remaining sessions with 57P01");
        ctx.terminate.cancel();
        let _ = tokio::time::timeout(TERMINATE_WAIT, sessions.wait()).await;
    }
    admin_stop.cancel();
    reload_stop.cancel();
    let _ = admin.await;
    tokio::task::spawn_blocking(move || workers.shutdown()).await.ok();
    info!("pgflip proxy stopped");
    Ok(())
}

/// Re-computes the standby listener's route every [`standby::REFRESH`] until `stop`.
async fn refresh_standby(ctx: Arc<ProxyContext>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(standby::REFRESH);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Some(standby) = &ctx.standby {
            standby.refresh(&ctx.registry, &ctx.metrics);
        }
    }
}
