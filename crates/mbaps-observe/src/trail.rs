//! The audit trail as JSON lines, one object per session start, request
//! record and session end, written by a thread of its own so that no
//! session ever waits for the disk. The queue between them is bounded:
//! when it is full an entry is dropped, counted, and the count written
//! (and logged) as soon as there is room, never a stall. Each entry is
//! stamped with the wall clock as it is handed over, on the session's
//! thread or task: when it happened, not when it was written.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use mbaps_admission::AuditEntry;

use crate::identity::{fingerprint, subject};
use mbaps_codec::function_name;
use mbaps_session::{RequestOutcome, RequestRecord, Verdict};
use serde::Serialize;
use serde_json::{Value, json};

/// Entries waiting for the writer at most.
const QUEUE: usize = 65_536;

/// How long the writer waits when it has written everything: entries
/// wait at most this long, and the queue holds what comes meanwhile (at
/// 200,000 requests a second, 2,000 of its 65,536).
const IDLE_POLL: Duration = Duration::from_millis(10);

/// Rotated files kept by default (`PATH.1` to `PATH.5`).
pub const DEFAULT_KEEP: u32 = 5;

/// Where entries are written, and how the file is rotated.
#[derive(Clone, Debug)]
pub struct AuditTarget {
    /// A file, or `-` for standard output.
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes (0: never).
    pub max_bytes: u64,
    /// Rotated files kept (`PATH.1` the newest).
    pub keep: u32,
}

/// The sessions' end of the trail: hands entries to the writer. Give
/// [`AuditSink::record`] to a server's `on_audit`.
#[derive(Clone)]
pub struct AuditSink {
    queue: SyncSender<(SystemTime, AuditEntry)>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Queues `entry`, stamped with the time now; a full queue drops it
    /// and counts the drop.
    pub fn record(&self, entry: &AuditEntry) {
        match self.queue.try_send((SystemTime::now(), entry.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread, to wait for at the end.
pub struct AuditWriter {
    done: crate::writer::Finished,
}

impl AuditWriter {
    /// Waits until the writer has written what was queued (its sinks are
    /// all gone), for a few seconds at most.
    pub fn finish(self) {
        self.done.wait();
    }
}

/// Opens the trail (the file is created or appended to now, so that a
/// path that cannot be written is an error at start) and starts its
/// writer thread.
pub fn start(target: AuditTarget) -> Result<(AuditSink, AuditWriter)> {
    let out = Output::open(&target)?;
    let (queue, entries) = sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let writer = Writer {
        file: TrailFile {
            out,
            target,
            text: Vec::with_capacity(512),
        },
        clock: Clock::default(),
        dropped: Arc::clone(&dropped),
        identities: HashMap::new(),
    };
    let done = crate::writer::spawn("mbaps-audit", "the audit log", move || writer.run(entries))?;
    Ok((AuditSink { queue, dropped }, AuditWriter { done }))
}

/// The file (or standard output) and how much it holds.
struct Output {
    stream: BufWriter<Box<dyn Write + Send>>,
    written: u64,
}

impl Output {
    fn open(target: &AuditTarget) -> Result<Output> {
        if target.path == Path::new("-") {
            return Ok(Output {
                stream: BufWriter::new(Box::new(std::io::stdout())),
                written: 0,
            });
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&target.path)
            .with_context(|| format!("opening the audit log {}", target.path.display()))?;
        let written = file.metadata().map_or(0, |m| m.len());
        Ok(Output {
            stream: BufWriter::new(Box::new(file) as Box<dyn Write + Send>),
            written,
        })
    }
}

/// Who a session's client is, from its certificate.
#[derive(Clone)]
struct Identity {
    subject: Value,
    fingerprint: Value,
    role: Value,
    /// `"peer":…,"subject":…,"fingerprint":…` as each of its request
    /// lines has them: serialized once, at the session's start.
    fields: Vec<u8>,
}

impl Identity {
    /// `"peer":…,"subject":…,"fingerprint":…` of a request line.
    fn fields(peer: SocketAddr, subject: &Value, fingerprint: &Value) -> Vec<u8> {
        let mut fields = Vec::with_capacity(160);
        let _ = write!(fields, "\"peer\":\"{peer}\",\"subject\":");
        let _ = serde_json::to_writer(&mut fields, subject);
        fields.extend_from_slice(b",\"fingerprint\":");
        let _ = serde_json::to_writer(&mut fields, fingerprint);
        fields
    }
}

/// RFC 3339 times, UTC, to the microsecond: the date and time of the
/// current second are formatted once a second, not once a line.
#[derive(Default)]
struct Clock {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    prefix: String,
}

impl Clock {
    /// Appends `at`, formatted.
    fn write(&mut self, at: SystemTime, out: &mut Vec<u8>) {
        let since = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        if self.second != Some(since.as_secs()) {
            let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs());
            let date = time::OffsetDateTime::from(whole);
            self.prefix = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                date.year(),
                u8::from(date.month()),
                date.day(),
                date.hour(),
                date.minute(),
                date.second()
            );
            self.second = Some(since.as_secs());
        }
        out.extend_from_slice(self.prefix.as_bytes());
        let _ = write!(out, ".{:06}Z", since.subsec_micros());
    }

    /// `at`, formatted, as a string.
    fn format(&mut self, at: SystemTime) -> String {
        let mut out = Vec::with_capacity(27);
        self.write(at, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

struct Writer {
    file: TrailFile,
    clock: Clock,
    dropped: Arc<AtomicU64>,
    /// The sessions open, by peer: their requests are written with the
    /// subject and fingerprint of the session's certificate.
    identities: HashMap<SocketAddr, Identity>,
}

/// The trail's file: where lines go, rotated by size.
struct TrailFile {
    out: Output,
    target: AuditTarget,
    /// The line being written, kept between lines.
    text: Vec<u8>,
}

impl TrailFile {
    /// Writes `line` as one JSON object and a newline, rotating first if
    /// the file would grow past its bound.
    fn write(&mut self, line: &impl Serialize) {
        self.text.clear();
        if serde_json::to_writer(&mut self.text, line).is_err() {
            return;
        }
        self.commit();
    }

    /// Writes the line built in `text` (a JSON object), and a newline.
    fn commit(&mut self) {
        self.text.push(b'\n');
        let len = self.text.len() as u64;
        if self.target.max_bytes > 0
            && self.out.written > 0
            && self.out.written + len > self.target.max_bytes
            && let Err(error) = self.rotate()
        {
            tracing::error!("audit log: rotation failed: {error:#}");
        }
        match self.out.stream.write_all(&self.text) {
            Ok(()) => self.out.written += len,
            Err(error) => tracing::error!(%error, "the audit log cannot be written"),
        }
    }

    /// `PATH.N-1` to `PATH.N`, ..., `PATH` to `PATH.1`; a new `PATH`.
    fn rotate(&mut self) -> Result<()> {
        if self.target.path == Path::new("-") {
            return Ok(());
        }
        self.out.stream.flush()?;
        let numbered = |n: u32| {
            let mut name = self.target.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.target.keep == 0 {
            std::fs::remove_file(&self.target.path)?;
        } else {
            for n in (1..self.target.keep).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.target.path, numbered(1))?;
        }
        self.out = Output::open(&self.target)?;
        Ok(())
    }
}

impl Writer {
    fn run(mut self, entries: Receiver<(SystemTime, AuditEntry)>) {
        loop {
            match entries.try_recv() {
                Ok((at, entry)) => {
                    self.write_dropped();
                    self.record(at, entry);
                }
                // Nothing queued: write out, then look again a moment
                // later. Polling, not blocking: a blocked reader is woken
                // by every entry, and at a hundred thousand requests a
                // second those wake-ups cost the sessions more than the
                // writing does.
                Err(TryRecvError::Empty) => {
                    if let Err(error) = self.file.out.stream.flush() {
                        tracing::error!(%error, "the audit log cannot be written");
                    }
                    std::thread::sleep(IDLE_POLL);
                }
                Err(TryRecvError::Disconnected) => {
                    self.write_dropped();
                    if let Err(error) = self.file.out.stream.flush() {
                        tracing::error!(%error, "the audit log cannot be written");
                    }
                    return;
                }
            }
        }
    }

    /// Entries dropped since the last call: counted in the trail, logged.
    fn write_dropped(&mut self) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "audit log: entries dropped, the queue was full");
            let line = json!({
                "time": self.clock.format(SystemTime::now()),
                "event": "dropped",
                "count": dropped,
            });
            self.file.write(&line);
        }
    }

    /// Writes the JSON object of `entry`, which happened `at`.
    fn record(&mut self, at: SystemTime, entry: AuditEntry) {
        let line = match entry {
            AuditEntry::SessionStarted {
                peer,
                local,
                role,
                certificate,
                handshake,
            } => {
                let (subject, fingerprint) = match &certificate {
                    Some(der) => (
                        subject(der.as_ref()).map_or(Value::Null, Value::from),
                        Value::from(fingerprint(der.as_ref())),
                    ),
                    None => (Value::Null, Value::Null),
                };
                let identity = Identity {
                    fields: Identity::fields(peer, &subject, &fingerprint),
                    subject,
                    fingerprint,
                    role: role.as_ref().map_or(Value::Null, |r| r.as_str().into()),
                };
                self.identities.insert(peer, identity.clone());
                let (tls, suite) = match handshake {
                    Some(h) => (
                        Value::from(format!("{:?}", h.version)),
                        Value::from(format!("{:?}", h.cipher_suite)),
                    ),
                    None => (Value::Null, Value::Null),
                };
                json!({
                    "time": self.clock.format(at),
                    "event": "session_start",
                    "peer": peer.to_string(),
                    "local": local.to_string(),
                    "subject": identity.subject,
                    "fingerprint": identity.fingerprint,
                    "role": identity.role,
                    "tls": tls,
                    "cipher_suite": suite,
                })
            }
            AuditEntry::SessionEnded { peer, reason, .. } => {
                let identity = self.identities.remove(&peer);
                let (subject, fingerprint, role) = unpack(identity);
                json!({
                    "time": self.clock.format(at),
                    "event": "session_end",
                    "peer": peer.to_string(),
                    "subject": subject,
                    "fingerprint": fingerprint,
                    "role": role,
                    "reason": reason.label(),
                    "detail": reason.to_string(),
                })
            }
            AuditEntry::Request { peer, record, .. } => return self.request(at, peer, &record),
            _ => json!({ "time": self.clock.format(at), "event": "unknown" }),
        };
        self.file.write(&line);
    }
}

impl Writer {
    /// Writes a request's line: by hand, from the record's fields and the
    /// session's identity serialized once (the hot path of the trail: a
    /// line per request).
    fn request(&mut self, at: SystemTime, peer: SocketAddr, record: &RequestRecord) {
        let text = &mut self.file.text;
        text.clear();
        text.extend_from_slice(b"{\"time\":\"");
        self.clock.write(at, text);
        text.extend_from_slice(b"\",\"event\":\"request\",");
        match self.identities.get(&peer) {
            Some(identity) => text.extend_from_slice(&identity.fields),
            None => text.extend_from_slice(&Identity::fields(peer, &Value::Null, &Value::Null)),
        }
        text.extend_from_slice(b",\"role\":");
        json_str(text, record.role.as_ref().map(|r| r.as_str()));
        let _ = write!(
            text,
            ",\"unit\":{},\"transaction_id\":{},\"function\":{},\"function_name\":",
            record.header.unit_id, record.header.transaction_id, record.function
        );
        json_str(text, function_name(record.function));
        text.extend_from_slice(b",\"accesses\":[");
        for (n, access) in record.touches.iter().flatten().enumerate() {
            if n > 0 {
                text.push(b',');
            }
            let _ = write!(
                text,
                "{{\"table\":\"{}\",\"address\":{},\"quantity\":{}}}",
                access.table,
                access.first,
                access.last - access.first + 1
            );
        }
        text.extend_from_slice(b"],\"decision\":");
        json_str(text, Some(record.verdict.label()));
        let (denied_for, rejected_for) = match &record.verdict {
            Verdict::Allowed => (None, None),
            Verdict::Denied(denial) => (Some(denial.to_string()), None),
            Verdict::Rejected(why) => (None, Some(why.to_string())),
        };
        text.extend_from_slice(b",\"denied_for\":");
        json_str(text, denied_for.as_deref());
        text.extend_from_slice(b",\"rejected_for\":");
        json_str(text, rejected_for.as_deref());
        text.extend_from_slice(b",\"outcome\":");
        json_str(text, Some(record.outcome.label()));
        let late_outcome = match record.outcome {
            RequestOutcome::Abandoned { late } => late.map(|late| late.label()),
            RequestOutcome::Response | RequestOutcome::Exception(_) => None,
        };
        text.extend_from_slice(b",\"late_outcome\":");
        json_str(text, late_outcome);
        match record.outcome.exception() {
            Some(code) => {
                let _ = write!(text, ",\"exception\":{}", code as u8);
            }
            None => text.extend_from_slice(b",\"exception\":null"),
        }
        let latency = u64::try_from(record.latency().as_micros()).unwrap_or(u64::MAX);
        let _ = write!(text, ",\"latency_us\":{latency}}}");
        self.file.commit();
    }
}

/// Appends `value` as a JSON string, or `null`.
fn json_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => {
            let _ = serde_json::to_writer(&mut *out, value);
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn unpack(identity: Option<Identity>) -> (Value, Value, Value) {
    identity.map_or((Value::Null, Value::Null, Value::Null), |i| {
        (i.subject, i.fingerprint, i.role)
    })
}
