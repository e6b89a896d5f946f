//! Reloading the durable target from the config file: on SIGHUP, or when the file's
//! content changes (as when the kubelet swaps a mounted ConfigMap's `..data` symlink).
//! A file whose `generation` is higher than the sidecar's switches it to the file's
//! `active` upstream through the same path as `POST /v1/switch`; a stale file changes
//! nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::{OnTimeout, OnUnmovable};
use crate::proxy::config::FileTarget;
use crate::proxy::context::ProxyContext;
use crate::proxy::switch::{self, PauseOptions, SwitchOptions};
use crate::proxy::upstream::Upstream;

/// How often the file is read for changes.
const POLL: Duration = Duration::from_secs(1);

/// Watches `path` until `stop` is cancelled.
pub async fn watch(path: PathBuf, ctx: Arc<ProxyContext>, stop: CancellationToken) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(e) => {
            warn!(error = %e, "cannot watch SIGHUP; the config file is still polled");
            None
        }
    };
    let mut last = std::fs::read(&path).ok();
    loop {
        let forced = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(POLL) => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let now = std::fs::read(&path).ok();
        if !forced && now == last {
            continue;
        }
        last = now;
        info!(path = %path.display(), forced, "config file changed; reading its target");
        apply(&path, &ctx).await;
    }
}

async fn apply(path: &std::path::Path, ctx: &Arc<ProxyContext>) {
    let target = match FileTarget::read(path) {
        Ok(target) => target,
        Err(e) => {
            warn!(error = %e, "config file not applied");
            return;
        }
    };
    for (name, url) in target.upstreams {
        match Upstream::new(&name, url) {
            Ok(upstream) => {
                // The config file is trusted as at start: the secrets file's passwords go to
                // the addresses it gives.
                ctx.secret_scope.configure(&name, &upstream.url);
                ctx.registry.upsert(upstream);
            }
            Err(e) => warn!(error = %e, "upstream from the config file not applied"),
        }
    }
    let (current_active, current) = ctx.registry.active_with_generation();
    let Some(active) = target.active else {
        return;
    };
    if target.generation <= current {
        info!(
            file_generation = target.generation,
            generation = current,
            "config file target is not newer; nothing to do"
        );
        return;
    }
    if active == current_active.name {
        ctx.registry.set_generation(target.generation);
        publish(ctx);
        return;
    }
    let options = SwitchOptions {
        to: active.clone(),
        generation: None,
        pause: PauseOptions {
            drain_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            on_timeout: OnTimeout::Abort,
            on_unmovable: OnUnmovable::Block,
            to: None,
            to_lacks: None,
        },
        move_timeout: ctx.limits.connect_timeout + Duration::from_secs(5),
    };
    match switch::switch(ctx, options).await {
        Ok(done) => {
            // The file's generation is the durable one: sidecars restarted from it agree.
            ctx.registry.set_generation(target.generation.max(done.generation));
            publish(ctx);
            info!(to = %active, generation = target.generation, moved = done.moved, "switched by config reload");
        }
        Err(e) => {
            warn!(to = %active, error = %e, "config reload could not switch; it is retried when the file changes or on SIGHUP")
        }
    }
}

/// Shows the registry's active upstream and generation in the metrics.
fn publish(ctx: &ProxyContext) {
    let snapshot = ctx.registry.snapshot();
    ctx.metrics.set_active(snapshot.upstreams.iter().map(|u| &u.name), &snapshot.active, snapshot.generation);
}
