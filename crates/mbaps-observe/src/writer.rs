//! The thread a trail or a tap is written on, and the wait for its end.

use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Duration;

use anyhow::{Context, Result};

/// How long the end of a writer is waited for: what is queued is written,
/// but a writer stuck on its output (a FIFO whose reader stopped reading)
/// does not hold the process.
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// A writer thread's end, to wait for.
pub(crate) struct Finished {
    done: Receiver<()>,
    what: &'static str,
}

impl Finished {
    /// Waits until the thread has ended (its queue drained: every sender
    /// is gone), [`FINISH_WAIT`] at most.
    pub(crate) fn wait(self) {
        if self.done.recv_timeout(FINISH_WAIT).is_err() {
            tracing::warn!("{}'s writer did not finish in 5 s", self.what);
        }
    }
}

/// Runs `write` on a thread named `name`; `what` names it in messages.
pub(crate) fn spawn(
    name: &str,
    what: &'static str,
    write: impl FnOnce() + Send + 'static,
) -> Result<Finished> {
    let (finished, done) = sync_channel(1);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            write();
            let _ = finished.send(());
        })
        .with_context(|| format!("starting {what}'s writer"))?;
    Ok(Finished { done, what })
}
