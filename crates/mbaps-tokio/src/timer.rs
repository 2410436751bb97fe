//! One timer per session, moved to the session's next deadline.
//!
//! A session's deadline moves on almost every turn (the idle timeout
//! restarts with each request). Resetting one registered tokio `Sleep` to a
//! later instant is a cheap atomic update, where a new `Sleep` per turn
//! would register and unregister a timer-wheel entry each time.

use std::pin::Pin;
use std::time::Instant;

use tokio::time::Sleep;

pub(crate) struct Timer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Timer {
    pub(crate) fn new() -> Timer {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            armed: None,
        }
    }

    /// Fires at `deadline` (`None`: never).
    pub(crate) fn set(&mut self, deadline: Option<Instant>) {
        if deadline != self.armed {
            if let Some(deadline) = deadline {
                self.sleep.as_mut().reset(deadline.into());
            }
            self.armed = deadline;
        }
    }

    /// The deadline it is set to, until it fires.
    pub(crate) fn armed(&self) -> Option<Instant> {
        self.armed
    }

    /// Completes at the deadline (never, if none is set).
    pub(crate) async fn fired(&mut self) {
        match self.armed {
            Some(_) => {
                self.sleep.as_mut().await;
                // Fired: the next `set` must reset it even to the same
                // instant.
                self.armed = None;
            }
            None => std::future::pending().await,
        }
    }
}
