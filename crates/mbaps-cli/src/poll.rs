//! What `--poll` needs besides the request: the time of each poll, and
//! Ctrl-C as the end of polling rather than of the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Set once Ctrl-C (or SIGTERM) arrives.
#[derive(Clone)]
pub(crate) struct Interrupted(Arc<AtomicBool>);

impl Interrupted {
    /// Whether polling should end.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Waits `interval`, or less if interrupted meanwhile.
    pub(crate) fn sleep(&self, interval: Duration) {
        let until = Instant::now() + interval;
        while !self.is_set() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Catches Ctrl-C (and SIGTERM) from now on: they set the flag instead of
/// ending the process, so that the poll loop ends cleanly and counts.
pub(crate) fn interrupted() -> Interrupted {
    let flag = Interrupted(Arc::new(AtomicBool::new(false)));
    let set = flag.clone();
    let (ready, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            let _ = ready.send(());
            return;
        };
        runtime.block_on(async {
            wait_for_stop(ready).await;
            set.0.store(true, Ordering::Relaxed);
        });
    });
    // The handlers are in place before the first poll.
    let _ = listening.recv();
    flag
}

/// Installs the handlers (then says so on `ready`) and waits for a stop.
#[cfg(unix)]
async fn wait_for_stop(ready: std::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    // `signal` installs its handler when called, not when first polled.
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    let _ = ready.send(());
    match (interrupt, terminate) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Installs the handler (then says so on `ready`) and waits for Ctrl-C.
#[cfg(not(unix))]
async fn wait_for_stop(ready: std::sync::mpsc::Sender<()>) {
    let ctrl_c = tokio::signal::ctrl_c();
    let _ = ready.send(());
    let _ = ctrl_c.await;
}

/// Now, RFC 3339, UTC.
pub(crate) fn timestamp() -> String {
    let now = time::OffsetDateTime::from(SystemTime::now());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}
