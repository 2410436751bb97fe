//! The figures of a server or a gateway, for Prometheus (OpenMetrics
//! text): requests by role, function and decision and their latency,
//! sessions started and open (from the audit entries: the served
//! connections' records), failures and refusals by reason (from the
//! session log), and a gateway's own answers, device connections and
//! device latency. `prometheus-client` keeps and encodes them; serving
//! them over HTTP is the application's (`mbaps` serves them with hyper).

use std::borrow::Cow;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use mbaps_admission::{AuditEntry, EvictionReason, HandshakeBound, SessionLog};
use mbaps_authz::Role;
use mbaps_codec::{ExceptionCode, function_name};
use mbaps_session::upstream::LinkEvent;
use mbaps_session::upstream::rtu::LineCounters;
use mbaps_session::{CloseReason, ServerEvent, SessionError};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label sets: names fixed; values borrowed where they can be (function
/// names, decisions), so that counting a request allocates little.
type Labels = Vec<(&'static str, Cow<'static, str>)>;

/// The labels of a request's count: role, function, decision.
type RequestLabels = [(&'static str, RequestLabel); 3];

/// A label value of a request's count, held as the record has it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum RequestLabel {
    /// The client's role: the NULL role is the empty value (no real role
    /// is empty).
    Role(Option<Role>),
    /// A function code: its name, or `0xNN` for one without.
    Function(u8),
    /// A fixed word (the decision).
    Word(&'static str),
}

impl EncodeLabelValue for RequestLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        match self {
            RequestLabel::Role(role) => encoder.write_str(role.as_ref().map_or("", Role::as_str)),
            RequestLabel::Function(code) => match function_name(*code) {
                Some(name) => encoder.write_str(name),
                None => write!(encoder, "0x{code:02X}"),
            },
            RequestLabel::Word(word) => encoder.write_str(word),
        }
    }
}

/// The figures, shared by the sessions (which count) and the endpoint
/// (which encodes them). Feed it a server's audit entries
/// ([`Metrics::audit`]) and session log ([`Metrics::session_log`]).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    sessions_started: Counter,
    sessions_open: Gauge<i64, AtomicI64>,
    handshake_failures: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    gateway_answers: Family<Labels, Counter>,
    gateway_links: Family<Labels, Counter>,
    gateway_latency: Family<Labels, Histogram, fn() -> Histogram>,
    serial_line: Family<Labels, Counter>,
    serial_busy: Family<Labels, Counter<f64, std::sync::atomic::AtomicU64>>,
    tap_dropped: Family<Labels, Counter>,
}

/// 50 us to about 1.6 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// The figures, all zero, registered under the prefix `mbaps`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mbaps");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests decided, by role, function and decision (allowed, denied, rejected)",
            requests.clone(),
        );
        let latency = latency_histogram();
        registry.register(
            "request_duration_seconds",
            "From a request's decoding to its answer",
            latency.clone(),
        );
        let sessions_started = Counter::default();
        registry.register(
            "sessions_started",
            "Sessions authenticated",
            sessions_started.clone(),
        );
        let sessions_open = Gauge::<i64, AtomicI64>::default();
        registry.register("sessions_open", "Sessions open", sessions_open.clone());
        let handshake_failures = Family::<Labels, Counter>::default();
        registry.register(
            "session_failures",
            "Sessions that failed (a handshake refused, an alert, a timeout), by reason",
            handshake_failures.clone(),
        );
        let refusals = Family::<Labels, Counter>::default();
        registry.register(
            "refusals",
            "Connections and sessions closed by admission control, by reason",
            refusals.clone(),
        );
        let gateway_answers = Family::<Labels, Counter>::default();
        registry.register(
            "gateway_answers",
            "Requests the gateway answered itself, by device and exception",
            gateway_answers.clone(),
        );
        let gateway_links = Family::<Labels, Counter>::default();
        registry.register(
            "gateway_connections",
            "Changes of a device's connection (up, unreachable, failed, lost)",
            gateway_links.clone(),
        );
        let gateway_latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "gateway_upstream_duration_seconds",
            "From a request's hand-over to its device to the device's answer, by device",
            gateway_latency.clone(),
        );
        let serial_line = Family::<Labels, Counter>::default();
        registry.register(
            "serial_line_frames",
            "What an RTU device's line counted, by device and count (requests, crc_errors, timeouts, retries, discarded)",
            serial_line.clone(),
        );
        let serial_busy = Family::<Labels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "serial_line_busy_seconds",
            "How long an RTU device's line was held (a request to its answer, timeout or turnaround), by device",
            serial_busy.clone(),
        );
        let tap_dropped = Family::<Labels, Counter>::default();
        registry.register(
            "tap_dropped",
            "What the plaintext tap lost, by reason (queue_full: records; no_reader, write_failed: packets)",
            tap_dropped.clone(),
        );
        Metrics {
            registry,
            tap_dropped,
            gateway_latency,
            serial_line,
            serial_busy,
            requests,
            latency,
            sessions_started,
            sessions_open,
            handshake_failures,
            refusals,
            gateway_answers,
            gateway_links,
        }
    }

    /// Counts an audit entry.
    pub fn audit(&self, entry: &AuditEntry) {
        match entry {
            AuditEntry::SessionStarted { .. } => {
                self.sessions_started.inc();
                self.sessions_open.inc();
            }
            AuditEntry::SessionEnded { .. } => {
                self.sessions_open.dec();
            }
            AuditEntry::Request { record, .. } => {
                // Nothing allocated per request: the role is the record's
                // (shared), the function and decision fixed words.
                self.requests
                    .get_or_create(&[
                        ("role", RequestLabel::Role(record.role.clone())),
                        ("function", RequestLabel::Function(record.function)),
                        ("decision", RequestLabel::Word(record.verdict.label())),
                    ])
                    .inc();
                self.latency.observe(record.latency().as_secs_f64());
            }
            _ => {}
        }
    }

    /// Counts a session log entry: failures and refusals.
    pub fn session_log(&self, entry: &SessionLog) {
        let (family, reason) = match entry {
            SessionLog::Failed { error, .. } => (&self.handshake_failures, failure_reason(error)),
            SessionLog::Refused { .. } => (&self.refusals, "session_bound"),
            SessionLog::Evicted { reason, .. } => (
                &self.refusals,
                match reason {
                    EvictionReason::Stalled { .. } => "evicted_stalled",
                    EvictionReason::Idle { .. } => "evicted_idle",
                },
            ),
            SessionLog::HandshakeDropped { bound, .. } => (
                &self.refusals,
                match bound {
                    HandshakeBound::Global { .. } => "handshake_bound",
                    HandshakeBound::PerAddress { .. } => "handshake_bound_per_address",
                },
            ),
            SessionLog::Event {
                event: ServerEvent::Closed(CloseReason::WriteTimeout(_)),
                ..
            } => (&self.refusals, "write_timeout"),
            _ => return,
        };
        family
            .get_or_create(&vec![("reason", Cow::Borrowed(reason))])
            .inc();
    }

    /// Counts a request a gateway answered itself, with `exception`, for
    /// `device` (`None`: no route took its unit id).
    pub fn gateway_answer(&self, device: Option<&str>, exception: ExceptionCode) {
        let device = device.unwrap_or("(no route)").to_owned();
        self.gateway_answers
            .get_or_create(&vec![
                ("device", Cow::Owned(device)),
                (
                    "exception",
                    Cow::Owned(format!("0x{:02X}", exception as u8)),
                ),
            ])
            .inc();
    }

    /// Counts a change of `device`'s connection.
    pub fn gateway_link(&self, device: &str, event: &LinkEvent) {
        let event = match event {
            LinkEvent::Up => "up",
            LinkEvent::Unreachable => "unreachable",
            LinkEvent::Failed(_) => "failed",
            LinkEvent::Lost(_) => "lost",
            LinkEvent::Flapping { .. } => "flapping",
            LinkEvent::DroppedAnswer { .. } => "dropped_answer",
        };
        self.gateway_links
            .get_or_create(&vec![
                ("device", Cow::Owned(device.to_owned())),
                ("event", Cow::Borrowed(event)),
            ])
            .inc();
    }

    /// Adds what an RTU device's line counted (since the last call).
    pub fn serial_line(&self, device: &str, counted: LineCounters) {
        for (count, value) in [
            ("requests", counted.requests),
            ("crc_errors", counted.crc_errors),
            ("timeouts", counted.timeouts),
            ("retries", counted.retries),
            ("discarded", counted.discarded),
        ] {
            if value > 0 {
                self.serial_line
                    .get_or_create(&vec![
                        ("device", Cow::Owned(device.to_owned())),
                        ("count", Cow::Borrowed(count)),
                    ])
                    .inc_by(value);
            }
        }
        self.serial_busy
            .get_or_create(&vec![("device", Cow::Owned(device.to_owned()))])
            .inc_by(counted.busy.as_secs_f64());
    }

    /// Counts what the tap lost ([`crate::tap::DropObserver`]).
    pub fn tap_dropped(&self, why: crate::tap::TapDrop, count: u64) {
        self.tap_dropped
            .get_or_create(&vec![("reason", Cow::Borrowed(why.label()))])
            .inc_by(count);
    }

    /// Counts a device's answer time.
    pub fn upstream_latency(&self, device: &str, latency: Duration) {
        self.gateway_latency
            .get_or_create(&vec![("device", Cow::Owned(device.to_owned()))])
            .observe(latency.as_secs_f64());
    }

    /// The figures, as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// A short, bounded name for why a session failed.
fn failure_reason(error: &SessionError) -> &'static str {
    match error {
        SessionError::Tls(_) => "tls",
        SessionError::HandshakeTimeout(_) => "handshake_timeout",
        SessionError::NoLongerAccepted(_) => "certificate_no_longer_accepted",
        SessionError::Framing(_) => "framing",
        _ => "other",
    }
}
