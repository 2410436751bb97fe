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
use mbaps_authz::Table;
use mbaps_codec::function_name;
use mbaps_session::{RequestOutcome, Verdict};
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
    done: Receiver<()>,
}

impl AuditWriter {
    /// Waits until the writer has written what was queued (its sinks are
    /// all gone), for a few seconds at most.
    pub fn finish(self) {
        if self.done.recv_timeout(Duration::from_secs(5)).is_err() {
            tracing::warn!("the audit log's writer did not finish in 5 s");
        }
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
        dropped: Arc::clone(&dropped),
        identities: HashMap::new(),
    };
    let (finished, done) = sync_channel(1);
    std::thread::Builder::new()
        .name("mbaps-audit".into())
        .spawn(move || {
            writer.run(entries);
            let _ = finished.send(());
        })
        .context("starting the audit log's writer")?;
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
}

struct Writer {
    file: TrailFile,
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

/// A request's line: serialized straight from borrowed fields (the hot
/// path of the trail; a session's lines are rare and built as values).
#[derive(Serialize)]
struct RequestLine<'a> {
    time: String,
    event: &'static str,
    peer: SocketAddr,
    subject: &'a Value,
    fingerprint: &'a Value,
    role: Option<&'a str>,
    unit: u8,
    transaction_id: u16,
    function: u8,
    function_name: Option<&'static str>,
    accesses: Vec<AccessLine>,
    decision: &'static str,
    denied_for: Option<String>,
    rejected_for: Option<String>,
    outcome: &'static str,
    /// Abandoned: what the application answered after the session ended.
    late_outcome: Option<&'static str>,
    /// The exception answered (abandoned: answered late).
    exception: Option<u8>,
    latency_us: u64,
}

/// One table range of a request.
#[derive(Serialize)]
struct AccessLine {
    #[serde(serialize_with = "as_text")]
    table: Table,
    address: u32,
    quantity: u32,
}

fn as_text<S: serde::Serializer>(table: &Table, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(table)
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
                Err(TryRecvError::Disconnected) => return self.write_dropped(),
            }
        }
    }

    /// Entries dropped since the last call: counted in the trail, logged.
    fn write_dropped(&mut self) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "audit log: entries dropped, the queue was full");
            let line = json!({
                "time": rfc3339(SystemTime::now()),
                "event": "dropped",
                "count": dropped,
            });
            self.file.write(&line);
        }
        let _ = self.file.out.stream.flush();
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
                    "time": rfc3339(at),
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
            AuditEntry::SessionEnded { peer, reason } => {
                let identity = self.identities.remove(&peer);
                let (subject, fingerprint, role) = unpack(identity);
                json!({
                    "time": rfc3339(at),
                    "event": "session_end",
                    "peer": peer.to_string(),
                    "subject": subject,
                    "fingerprint": fingerprint,
                    "role": role,
                    "reason": reason.label(),
                    "detail": reason.to_string(),
                })
            }
            AuditEntry::Request { peer, record } => {
                let identity = self.identities.get(&peer);
                let accesses = record.touches.iter().flatten().map(|access| AccessLine {
                    table: access.table,
                    address: access.first,
                    quantity: access.last - access.first + 1,
                });
                let (denied_for, rejected_for) = match &record.verdict {
                    Verdict::Allowed => (None, None),
                    Verdict::Denied(denial) => (Some(denial.to_string()), None),
                    Verdict::Rejected(why) => (None, Some(why.to_string())),
                };
                let late_outcome = match record.outcome {
                    RequestOutcome::Abandoned { late } => late.map(|late| late.label()),
                    RequestOutcome::Response | RequestOutcome::Exception(_) => None,
                };
                let line = RequestLine {
                    time: rfc3339(at),
                    event: "request",
                    peer,
                    subject: identity.map_or(&Value::Null, |i| &i.subject),
                    fingerprint: identity.map_or(&Value::Null, |i| &i.fingerprint),
                    role: record.role.as_ref().map(|r| r.as_str()),
                    unit: record.header.unit_id,
                    transaction_id: record.header.transaction_id,
                    function: record.function,
                    function_name: function_name(record.function),
                    accesses: accesses.collect(),
                    decision: record.verdict.label(),
                    denied_for,
                    rejected_for,
                    outcome: record.outcome.label(),
                    late_outcome,
                    exception: record.outcome.exception().map(|code| code as u8),
                    latency_us: u64::try_from(record.latency().as_micros()).unwrap_or(u64::MAX),
                };
                return self.file.write(&line);
            }
            _ => json!({ "time": rfc3339(SystemTime::now()), "event": "unknown" }),
        };
        self.file.write(&line);
    }
}

fn unpack(identity: Option<Identity>) -> (Value, Value, Value) {
    identity.map_or((Value::Null, Value::Null, Value::Null), |i| {
        (i.subject, i.fingerprint, i.role)
    })
}

/// RFC 3339, UTC, microseconds.
fn rfc3339(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// The certificate's subject, as RFC 4514 writes it.
fn subject(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    Some(certificate.tbs_certificate().subject().to_string())
}

/// The certificate's SHA-256, in hex.
fn fingerprint(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}
