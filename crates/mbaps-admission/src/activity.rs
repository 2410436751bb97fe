//! What a session's task is doing, read by admission control from another
//! thread without a lock: busy, idle since when, or stalled since when.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a session is doing, as [`Activity::get`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionActivity {
    /// Handshaking, answering requests, or writing to a peer that reads.
    Busy,
    /// Authenticated, nothing outstanding, nothing left to send.
    Idle {
        /// Since when.
        since: Instant,
    },
    /// Waiting to send to a peer that has stopped taking bytes (the
    /// connection's send buffer is full).
    Stalled {
        /// Since when.
        since: Instant,
    },
}

const BUSY: u64 = 0;
const IDLE: u64 = 1 << 62;
const STALLED: u64 = 2 << 62;
const STATE: u64 = 3 << 62;

/// One session's [`SessionActivity`], set by its task and read by
/// admission control: a state and an instant packed in one atomic word
/// (nanoseconds since the admission's start, good for 146 years).
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    word: AtomicU64,
    /// The connection's task has looked at its input (see
    /// [`Activity::note_looked`]).
    looked: AtomicBool,
}

impl Activity {
    pub(super) fn new(epoch: Instant) -> Activity {
        Activity {
            epoch,
            word: AtomicU64::new(BUSY),
            looked: AtomicBool::new(false),
        }
    }

    /// The connection's task has looked at its input at least once (it is
    /// about to wait for it): a handshake without its opening after this
    /// is silent indeed. Until then it is merely unseen, its task not yet
    /// run (a thread not yet scheduled under a burst of connects), and it
    /// gives way only after the silent ones.
    pub fn note_looked(&self) {
        if !self.looked.load(Ordering::Relaxed) {
            self.looked.store(true, Ordering::Release);
        }
    }

    /// Whether [`Activity::note_looked`] was called.
    pub fn has_looked(&self) -> bool {
        self.looked.load(Ordering::Acquire)
    }

    /// The session is busy (a request in the handler, bytes being sent).
    pub fn set_busy(&self) {
        self.word.store(BUSY, Ordering::Release);
    }

    /// The session is idle, since its last traffic at `since`.
    pub fn set_idle(&self, since: Instant) {
        self.set(IDLE, since);
    }

    /// The peer has taken none of our bytes since `since`.
    pub fn set_stalled(&self, since: Instant) {
        self.set(STALLED, since);
    }

    fn set(&self, state: u64, since: Instant) {
        let nanos = since.saturating_duration_since(self.epoch).as_nanos();
        let word = state | (u64::try_from(nanos).unwrap_or(u64::MAX) & !STATE);
        // Most turns of a session change nothing: skip the store.
        if self.word.load(Ordering::Relaxed) != word {
            self.word.store(word, Ordering::Release);
        }
    }

    /// What the session is doing.
    pub fn get(&self) -> SessionActivity {
        let word = self.word.load(Ordering::Acquire);
        let since = self.epoch + Duration::from_nanos(word & !STATE);
        match word & STATE {
            IDLE => SessionActivity::Idle { since },
            STALLED => SessionActivity::Stalled { since },
            _ => SessionActivity::Busy,
        }
    }
}
