//! How much a gateway asks of one device, and the ranges of those limits.

use std::time::Duration;

use crate::config::{MAX_OUTSTANDING_LIMIT, MAX_TIMEOUT, MIN_TIMEOUT};

/// The most requests a gateway keeps on the wire to one device: legacy
/// devices answer one at a time, and the Implementation Guide's 16 is the
/// most a Modbus/TCP server is expected to queue.
pub const MAX_UPSTREAM_IN_FLIGHT: usize = 16;

/// The longest queue per device: each waiting request holds a PDU (about
/// 270 bytes), so 65,536 of them bound a device's queue to 18 MiB.
pub const MAX_UPSTREAM_QUEUE: usize = 65_536;

const _: () = assert!(MAX_UPSTREAM_IN_FLIGHT <= MAX_OUTSTANDING_LIMIT);

/// How one device is reached and how much it is asked at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// Requests on the wire at once, 1 (the default: most plain devices
    /// answer one at a time) to [`MAX_UPSTREAM_IN_FLIGHT`].
    pub in_flight: usize,
    /// Requests waiting for a free slot, from every front session
    /// together (default 64); beyond, a request is answered 0x06 (see
    /// [`UpstreamLimits::queue_per_session`] for who gives way).
    pub queue: usize,
    /// Requests one front session may have waiting (`None`, the default:
    /// a quarter of `queue`, at least 1, so that at least four sessions
    /// can queue at once). The sessions take turns (round robin): one
    /// session's burst never delays another session's request by more
    /// than one request of each.
    pub queue_per_session: Option<usize>,
    /// From a request's arrival to its answer: past it the request is
    /// answered 0x0B (0x0A if the device was never reached meanwhile).
    pub timeout: Duration,
    /// The wait before reconnecting after a failed attempt, or after a
    /// connection that closed before it answered or stayed up for
    /// `max_backoff`; it doubles after each, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest wait between attempts, and how long a connection must
    /// stay up (if it answers nothing) for its loss to be redialled at once.
    pub max_backoff: Duration,
}

impl Default for UpstreamLimits {
    fn default() -> UpstreamLimits {
        UpstreamLimits {
            in_flight: 1,
            queue: 64,
            queue_per_session: None,
            timeout: Duration::from_secs(3),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A limit of [`UpstreamLimits`] out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `in_flight` outside 1..=16.
    #[error("in_flight is {0}: it must be 1 to {MAX_UPSTREAM_IN_FLIGHT}")]
    InFlight(usize),
    /// `queue` outside 1..=65536.
    #[error("queue is {0}: it must be 1 to {MAX_UPSTREAM_QUEUE}")]
    Queue(usize),
    /// `queue_per_session` outside 1..=`queue`.
    #[error("queue_per_session is {value}: it must be 1 to the queue, {queue}")]
    QueuePerSession {
        /// `queue_per_session`.
        value: usize,
        /// `queue`.
        queue: usize,
    },
    /// `timeout` below 1 ms or above a day.
    #[error("timeout is {0:?}: it must be at least 1 ms and at most a day")]
    Timeout(Duration),
    /// `in_flight` above 1 on an RTU route: the line carries one request
    /// at a time (Serial Line V1.02, 2.4).
    #[error(
        "in_flight is {0}: an RTU route (a serial line or RTU over TCP) carries one request at a time"
    )]
    RtuInFlight(usize),
    /// An RTU line's turnaround delay or response timeout outside 1 ms to a
    /// day.
    #[error("{name} is {value:?}: it must be at least 1 ms and at most a day")]
    RtuTiming {
        /// `turnaround` or `response_timeout`.
        name: &'static str,
        /// The value.
        value: Duration,
    },
    /// `initial_backoff` below 1 ms or above `max_backoff`.
    #[error("initial_backoff {initial:?} must be at least 1 ms and at most max_backoff {max:?}")]
    Backoff {
        /// `initial_backoff`.
        initial: Duration,
        /// `max_backoff`.
        max: Duration,
    },
}

impl UpstreamLimits {
    /// Checks every limit's range.
    pub fn validate(&self) -> Result<(), LimitError> {
        if !(1..=MAX_UPSTREAM_IN_FLIGHT).contains(&self.in_flight) {
            return Err(LimitError::InFlight(self.in_flight));
        }
        if !(1..=MAX_UPSTREAM_QUEUE).contains(&self.queue) {
            return Err(LimitError::Queue(self.queue));
        }
        if let Some(value) = self.queue_per_session
            && !(1..=self.queue).contains(&value)
        {
            return Err(LimitError::QueuePerSession {
                value,
                queue: self.queue,
            });
        }
        if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&self.timeout) {
            return Err(LimitError::Timeout(self.timeout));
        }
        if self.initial_backoff < MIN_TIMEOUT || self.initial_backoff > self.max_backoff {
            return Err(LimitError::Backoff {
                initial: self.initial_backoff,
                max: self.max_backoff,
            });
        }
        Ok(())
    }

    /// The requests one front session may have waiting:
    /// `queue_per_session`, or a quarter of the queue.
    pub fn session_share(&self) -> usize {
        self.queue_per_session
            .unwrap_or(self.queue / 4)
            .clamp(1, self.queue.max(1))
    }
}
