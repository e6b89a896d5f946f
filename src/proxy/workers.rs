//! Session worker threads. Each runs a single-threaded runtime, and new connections are
//! dealt to them in turn: a session lives on one thread for its whole life, so its
//! wake-ups never cross threads (no work-stealing hand-offs, no futex traffic).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::watch;

/// A fixed set of single-threaded runtimes serving sessions.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` worker threads (at least one).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let (stop, stopped) = watch::channel(false);
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for index in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let mut stopped = stopped.clone();
            let thread = std::thread::Builder::new().name(format!("pgflip-worker-{index}")).spawn(move || {
                // Tasks spawned through the handle run while this thread sits in block_on.
                runtime.block_on(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                });
            })?;
            threads.push(thread);
        }
        Ok(Workers { handles, next: AtomicUsize::new(0), stop, threads })
    }

    /// Runs `task` on the next worker in turn.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(task);
    }

    /// Stops the workers; tasks still running on them are dropped.
    pub fn shutdown(self) {
        let _ = self.stop.send(true);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
