//! A plaintext tap for the plant's IDS: what a server or a gateway let
//! through, written as the Modbus/TCP capture a monitor on the wire would
//! have seen without TLS (pcapng by default, classic pcap on request),
//! annotated with who asked and what was decided.
//!
//! The tap is one more reader of the served connections' records
//! ([`AuditEntry`], with the PDUs: give [`Tap::record`] to a server's
//! `on_audit_with_pdus`). For each session it synthesizes a TCP
//! connection from the client's real address and port to the server's
//! address on [`TapTarget::port`] (502 by default, so that IDS rules and
//! dissectors work unchanged): a handshake whose SYN names the TLS version
//! and suite, a segment per request and per response stamped with the
//! time the server read or wrote it, denied and rejected requests and
//! their exception answers included, and a FIN at the session's end, an
//! RST when it was dropped. Every packet carries a pcapng comment with the
//! role, the client certificate's fingerprint and subject, and the
//! decision.
//!
//! Never in the way: the sessions hand records to a bounded queue and a
//! thread of its own writes them; a full queue drops the record, counts
//! it, and the next packet written says how many were lost; a FIFO or
//! standard output without a reader drops and counts likewise. See
//! `capture` for files, FIFOs and rotation.
//!
//! The capture holds the plant's process data in clear and the identity
//! of every client: it is created mode 0600 and never holds key material.

mod capture;
mod conversation;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use mbaps_admission::AuditEntry;
use mbaps_session::{CloseReason, Handshake, RequestOutcome, RequestRecord, Verdict};

use crate::identity::{fingerprint, subject};
use capture::{Capture, Missed};
use conversation::{Conversation, Emit, Side};

#[doc(hidden)]
pub use capture::ends_whole;

/// Records waiting for the writer at most, by default: at 200,000
/// requests a second, a third of a second of them.
pub const DEFAULT_QUEUE: usize = 65_536;

/// How long the writer sleeps when it has written everything (see the
/// audit trail's writer: polling costs the sessions less than waking).
const IDLE_POLL: Duration = Duration::from_millis(10);

/// How often records lost to a full queue are logged at most.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// Sessions the writer follows at most: beyond, the one quiet the longest
/// is forgotten (its end was lost to a full queue).
const MAX_CONVERSATIONS: usize = 65_536;

/// The port the capture shows the server on by default: plain
/// Modbus/TCP's, which IDS rules and dissectors expect.
pub const DEFAULT_PORT: u16 = 502;

/// Rotated captures kept by default (`PATH.1` to `PATH.5`).
pub const DEFAULT_KEEP: u32 = 5;

/// Rotated captures kept at most.
pub const MAX_KEEP: u32 = 1_000;

/// The smallest size a capture may be rotated at (but 0: never): a few
/// hundred packets, so that a capture is never mostly headers.
pub const MIN_MAX_BYTES: u64 = 65_536;

/// The capture's file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TapFormat {
    /// pcapng, with a comment on every packet (the default).
    #[default]
    Pcapng,
    /// Classic pcap (nanosecond timestamps), for tools that read only
    /// that: without the comments.
    Pcap,
}

/// Where the capture goes and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapTarget {
    /// A file, a FIFO, or `-` for standard output.
    pub path: PathBuf,
    /// The server's port in the capture.
    pub port: u16,
    /// The file format.
    pub format: TapFormat,
    /// Rotate a file when it would grow past this many bytes (0: never).
    pub max_bytes: u64,
    /// Rotated files kept (`PATH.1` the newest).
    pub keep: u32,
    /// Records waiting for the writer at most ([`DEFAULT_QUEUE`]); beyond,
    /// a record is dropped (and counted, and named in the capture).
    pub queue: usize,
}

/// Why the tap lost something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TapDrop {
    /// A record: the writer's queue was full.
    QueueFull,
    /// A packet: no reader on the FIFO or standard output.
    NoReader,
    /// A packet: the capture could not be written.
    WriteFailed,
}

impl TapDrop {
    /// A stable word for metrics labels: `queue_full`, `no_reader`,
    /// `write_failed`.
    pub fn label(self) -> &'static str {
        match self {
            TapDrop::QueueFull => "queue_full",
            TapDrop::NoReader => "no_reader",
            TapDrop::WriteFailed => "write_failed",
        }
    }
}

/// Told of every loss, as it happens (a metric).
pub type DropObserver = Arc<dyn Fn(TapDrop, u64) + Send + Sync>;

/// A record and when it was handed over, by both clocks (the wall clock
/// stamps the packets; the monotonic one places the record's instants).
type Stamped = (SystemTime, Instant, AuditEntry);

/// What the sessions' side and the writer share.
struct Shared {
    /// Records lost to a full queue and not yet named in the capture.
    gap: AtomicU64,
    /// SIGHUP: the path is to be opened again.
    reopen: AtomicBool,
    /// Everything lost, by [`TapDrop`].
    dropped: [AtomicU64; 3],
    /// Records lost and not yet logged, and when that was last done.
    unsaid: AtomicU64,
    said: std::sync::Mutex<Option<Instant>>,
    on_drop: Option<DropObserver>,
}

impl Shared {
    /// Logs records lost to a full queue: at most one line every
    /// [`WARN_EVERY`], with the count since the last one (an overload lasts;
    /// a line per gap would add to it).
    fn warn_dropped(&self, lost: u64) {
        let unsaid = self.unsaid.fetch_add(lost, Ordering::Relaxed) + lost;
        let mut said = crate::lock(&self.said);
        if said.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *said = Some(Instant::now());
            self.unsaid.fetch_sub(unsaid, Ordering::Relaxed);
            tracing::warn!(lost = unsaid, "tap: records dropped, the queue was full");
        }
    }

    fn dropped(&self, why: TapDrop, count: u64) {
        let index = match why {
            TapDrop::QueueFull => 0,
            TapDrop::NoReader => 1,
            TapDrop::WriteFailed => 2,
        };
        self.dropped[index].fetch_add(count, Ordering::Relaxed);
        if let Some(on_drop) = &self.on_drop {
            on_drop(why, count);
        }
    }
}

/// The sessions' end of the tap: give [`Tap::record`] to a server's
/// `on_audit_with_pdus`.
#[derive(Clone)]
pub struct Tap {
    queue: SyncSender<Stamped>,
    shared: Arc<Shared>,
}

impl Tap {
    /// Queues `entry`, stamped with the time now; a full queue drops it
    /// and counts the drop. Never waits.
    pub fn record(&self, entry: &AuditEntry) {
        match self
            .queue
            .try_send((SystemTime::now(), Instant::now(), entry.clone()))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.gap.fetch_add(1, Ordering::Relaxed);
                self.shared.dropped(TapDrop::QueueFull, 1);
            }
        }
    }

    /// Opens a file's path again if the file there is no longer the one
    /// written (on SIGHUP: a file moved away by an outside rotation is
    /// created anew). A FIFO or standard output stays as it is.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Relaxed);
    }

    /// What was lost so far, by [`TapDrop`].
    pub fn dropped(&self, why: TapDrop) -> u64 {
        let index = match why {
            TapDrop::QueueFull => 0,
            TapDrop::NoReader => 1,
            TapDrop::WriteFailed => 2,
        };
        self.shared.dropped[index].load(Ordering::Relaxed)
    }
}

/// The writer thread, to wait for at the end.
pub struct TapWriter {
    done: crate::writer::Finished,
}

impl TapWriter {
    /// Waits until the writer has written and flushed what was queued
    /// (every [`Tap`] is gone), for a few seconds at most.
    pub fn finish(self) {
        self.done.wait();
    }
}

/// Opens the capture (a file is created or appended to now, so that a
/// path that cannot be written is an error at start; a FIFO without a
/// reader is not) and starts its writer thread. `on_drop` is told of
/// every loss.
pub fn start(target: TapTarget, on_drop: Option<DropObserver>) -> Result<(Tap, TapWriter)> {
    let port = target.port;
    let queue = target.queue.max(1);
    let capture = Capture::open(target)?;
    let (queue, records) = sync_channel(queue);
    let shared = Arc::new(Shared {
        gap: AtomicU64::new(0),
        reopen: AtomicBool::new(false),
        dropped: Default::default(),
        unsaid: AtomicU64::new(0),
        said: std::sync::Mutex::new(None),
        on_drop,
    });
    let writer = Writer {
        capture,
        port,
        shared: Arc::clone(&shared),
        conversations: HashMap::new(),
        sessions: 0,
        frame: Vec::with_capacity(512),
        adu: Vec::with_capacity(260),
        comment: String::with_capacity(512),
    };
    let done = crate::writer::spawn("mbaps-tap", "the tap", move || writer.run(records))?;
    Ok((Tap { queue, shared }, TapWriter { done }))
}

/// The writer thread: records in, packets out.
struct Writer {
    capture: Capture,
    port: u16,
    shared: Arc<Shared>,
    /// The sessions open, by client and server address.
    conversations: HashMap<(SocketAddr, SocketAddr), Conversation>,
    /// Sessions seen so far.
    sessions: u64,
    /// The frame, the ADU and the comment being built, kept between
    /// packets.
    frame: Vec<u8>,
    adu: Vec<u8>,
    comment: String,
}

/// The packets of a conversation, into the capture; a loss to a full
/// queue is named on the next one.
struct ToCapture<'a> {
    capture: &'a mut Capture,
    shared: &'a Shared,
}

impl Emit for ToCapture<'_> {
    fn packet(&mut self, at: SystemTime, frame: &[u8], comment: &str) {
        // Read before it is taken: a write per packet to the line the
        // sessions count drops on would cost more than the check.
        let gap = match self.shared.gap.load(Ordering::Relaxed) {
            0 => None,
            _ => match self.shared.gap.swap(0, Ordering::Relaxed) {
                0 => None,
                lost => Some(lost),
            },
        };
        let gap = match gap {
            None => None,
            Some(lost) => {
                self.shared.warn_dropped(lost);
                Some(format!(
                    "tap: {lost} records before this packet were dropped (the tap's queue was full)"
                ))
            }
        };
        self.capture.write(at, frame, comment, gap.as_deref());
    }
}

impl Writer {
    fn run(mut self, records: Receiver<Stamped>) {
        loop {
            if self.shared.reopen.load(Ordering::Relaxed)
                && self.shared.reopen.swap(false, Ordering::Relaxed)
            {
                self.capture.reopen();
                self.count_lost();
            }
            match records.try_recv() {
                Ok(stamped) => {
                    self.take(stamped);
                    self.count_lost();
                }
                Err(TryRecvError::Empty) => {
                    self.capture.flush();
                    self.capture.idle();
                    self.count_lost();
                    std::thread::sleep(IDLE_POLL);
                }
                Err(TryRecvError::Disconnected) => {
                    self.capture.flush();
                    self.count_lost();
                    return;
                }
            }
        }
    }

    /// Counts the packets the capture lost since the last call.
    fn count_lost(&mut self) {
        for (why, count) in self.capture.take_lost() {
            if count > 0 {
                self.shared.dropped(
                    match why {
                        Missed::NoReader => TapDrop::NoReader,
                        Missed::WriteFailed => TapDrop::WriteFailed,
                    },
                    count,
                );
            }
        }
    }

    /// The packets of one record, written.
    fn take(&mut self, (wall, now, entry): Stamped) {
        // An instant of the record, on the wall clock.
        let when = |instant: Instant| {
            wall.checked_sub(now.saturating_duration_since(instant))
                .unwrap_or(wall)
        };
        match entry {
            AuditEntry::SessionStarted {
                peer,
                local,
                role,
                certificate,
                handshake,
            } => {
                let certificate = match certificate.as_deref() {
                    Some(der) => Certificate::Der(der),
                    None => Certificate::None,
                };
                let identity = identity(role.as_ref().map(|r| r.as_str()), certificate);
                match self.conversations.get_mut(&(peer, local)) {
                    // Opened already by records that came before it (a
                    // plain client's frames that did not decode): the
                    // connection goes on, now knowing who it is.
                    Some(conversation) => conversation.identity = identity,
                    None => {
                        let comment =
                            format!("session start; {}; {identity}", tls(handshake.as_ref()));
                        self.start(peer, local, identity, wall, &comment);
                    }
                }
            }
            AuditEntry::Request {
                peer,
                local,
                record,
            } => {
                let known = self.exchange(peer, local, &record, when);
                if !known {
                    // Its session's start was not seen (lost to a full
                    // queue, or a plain client's frames before its first
                    // request that decodes): the connection is opened
                    // here, so that it can be followed.
                    let identity = identity(
                        record.role.as_ref().map(|r| r.as_str()),
                        Certificate::Unknown,
                    );
                    self.start(
                        peer,
                        local,
                        identity,
                        when(record.arrived),
                        "session start not seen before this request \
                         (lost to a full queue, or frames of a plain client before its first request)",
                    );
                    self.exchange(peer, local, &record, when);
                }
            }
            AuditEntry::SessionEnded {
                peer,
                local,
                reason,
            } => {
                if let Some(mut conversation) = self.conversations.remove(&(peer, local)) {
                    let mut out = ToCapture {
                        capture: &mut self.capture,
                        shared: &self.shared,
                    };
                    end(&mut conversation, &reason, wall, &mut self.frame, &mut out);
                }
            }
            _ => {}
        }
    }

    /// The packets of a request of the session from `peer` to `local`;
    /// `false` if that session is not known.
    fn exchange(
        &mut self,
        peer: SocketAddr,
        local: SocketAddr,
        record: &RequestRecord,
        when: impl Fn(Instant) -> SystemTime,
    ) -> bool {
        let Writer {
            capture,
            shared,
            conversations,
            frame,
            adu,
            comment,
            ..
        } = self;
        let Some(conversation) = conversations.get_mut(&(peer, local)) else {
            return false;
        };
        let mut out = ToCapture { capture, shared };
        let buffers = Buffers {
            frame,
            adu,
            comment,
        };
        exchange(conversation, record, when, buffers, &mut out);
        true
    }

    /// A new session's conversation, opened (the one quiet the longest is
    /// forgotten if too many are open: their ends were lost).
    fn start(
        &mut self,
        peer: SocketAddr,
        local: SocketAddr,
        identity: String,
        at: SystemTime,
        comment: &str,
    ) {
        if self.conversations.len() >= MAX_CONVERSATIONS {
            self.forget_the_quiet_half();
        }
        self.sessions += 1;
        let mut conversation = Conversation::new(peer, local, self.port, self.sessions, identity);
        let mut out = ToCapture {
            capture: &mut self.capture,
            shared: &self.shared,
        };
        conversation.open(at, comment, &mut self.frame, &mut out);
        self.conversations.insert((peer, local), conversation);
    }
}

impl Writer {
    /// The table is full (sessions whose ends were lost to a full queue,
    /// or plain clients that sent nothing that decoded): the half quiet
    /// the longest is forgotten at once, so that a flood of such sessions
    /// costs a sort now and then, not a scan per session.
    fn forget_the_quiet_half(&mut self) {
        let mut quiet: Vec<(SystemTime, (SocketAddr, SocketAddr))> = self
            .conversations
            .iter()
            .map(|(key, c)| (c.last, *key))
            .collect();
        let half = quiet.len() / 2;
        quiet.select_nth_unstable(half);
        for (_, key) in &quiet[..half] {
            self.conversations.remove(key);
        }
    }
}

/// The longest subject a comment holds: a certificate's subject is the
/// CA's to choose, and it goes on every packet of the session.
const MAX_SUBJECT: usize = 256;

/// Who a client is, on every packet of its session: `role=…; certificate
/// sha256=…; subject=…` (the subject last and at most [`MAX_SUBJECT`]
/// bytes: it may hold `; ` and anything else a CA put there), or
/// `certificate=none` on plain Modbus/TCP, `certificate=unknown` when the
/// session's start was not seen.
fn identity(role: Option<&str>, certificate: Certificate<'_>) -> String {
    let mut text = format!("role={}", role.unwrap_or("NULL"));
    match certificate {
        Certificate::Der(der) => {
            let subject = subject(der);
            let subject = subject.as_deref().unwrap_or("(unreadable)");
            let _ = write!(text, "; certificate sha256={}; subject=", fingerprint(der));
            push_capped(&mut text, subject);
        }
        Certificate::None => text.push_str("; certificate=none"),
        Certificate::Unknown => text.push_str("; certificate=unknown"),
    }
    text
}

/// Appends `subject`, cut at [`MAX_SUBJECT`] bytes (on a character's
/// boundary) and marked `…` if it was longer.
fn push_capped(text: &mut String, subject: &str) {
    if subject.len() <= MAX_SUBJECT {
        text.push_str(subject);
        return;
    }
    let mut cut = MAX_SUBJECT;
    while !subject.is_char_boundary(cut) {
        cut -= 1;
    }
    text.push_str(&subject[..cut]);
    text.push('…');
}

/// What the tap knows of a session's certificate.
enum Certificate<'a> {
    Der(&'a [u8]),
    /// Plain Modbus/TCP.
    None,
    /// The session's start was not seen.
    Unknown,
}

/// `tls=TLSv1_3; suite=…`, or plain Modbus/TCP.
fn tls(handshake: Option<&Handshake>) -> String {
    match handshake {
        Some(h) => format!(
            "tls={:?}; suite={:?}{}",
            h.version,
            h.cipher_suite,
            if h.resumed { "; resumed" } else { "" }
        ),
        None => "plain Modbus/TCP (no TLS)".into(),
    }
}

/// The writer's buffers, lent to build one request's packets.
struct Buffers<'a> {
    frame: &'a mut Vec<u8>,
    adu: &'a mut Vec<u8>,
    comment: &'a mut String,
}

/// `adu`: the MBAP header of `record` over `pdu`.
fn encode_adu(adu: &mut Vec<u8>, record: &RequestRecord, pdu: &[u8]) {
    adu.clear();
    adu.extend_from_slice(&record.header.transaction_id.to_be_bytes());
    adu.extend_from_slice(&[0, 0]);
    // A PDU is at most 253 bytes.
    adu.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    adu.push(record.header.unit_id);
    adu.extend_from_slice(pdu);
}

/// A request's segment and its answer's.
fn exchange(
    conversation: &mut Conversation,
    record: &RequestRecord,
    when: impl Fn(Instant) -> SystemTime,
    buffers: Buffers<'_>,
    out: &mut impl Emit,
) {
    let Buffers {
        frame,
        adu,
        comment,
    } = buffers;
    let Some(pdus) = &record.pdus else {
        return;
    };
    // `request; decision=…; <who>`, said of both packets. What the
    // packet itself says (unit, transaction, function, exception) is not
    // repeated: a comment per packet is most of the capture's bytes.
    // The decision first: the identity ends with the subject, which may
    // hold anything.
    comment.clear();
    let _ = match &record.verdict {
        Verdict::Allowed => write!(comment, "request; decision=allowed; "),
        Verdict::Denied(denial) => write!(comment, "request; decision=denied ({denial}); "),
        Verdict::Rejected(why) => write!(comment, "request; decision=rejected ({why}); "),
    };
    comment.push_str(&conversation.identity);
    encode_adu(adu, record, pdus.request.as_bytes());
    match (&record.outcome, &pdus.response) {
        (RequestOutcome::Response | RequestOutcome::Exception(_), Some(response)) => {
            conversation.data(Side::Client, adu, when(record.arrived), comment, frame, out);
            comment.replace_range(.."request".len(), "response");
            encode_adu(adu, record, response.as_bytes());
            conversation.data(
                Side::Server,
                adu,
                when(record.answered),
                comment,
                frame,
                out,
            );
        }
        (outcome, _) => {
            // Received, never answered to the client (its session ended
            // first): the request alone, with what was done, if known.
            let note = format!(
                "answer=none, the session ended first ({}); ",
                outcome.label()
            );
            comment.insert_str("request; ".len(), &note);
            conversation.data(Side::Client, adu, when(record.arrived), comment, frame, out);
        }
    }
}

/// The session's end: a FIN from the side that closed in order, an RST
/// from the side that cut the connection.
fn end(
    conversation: &mut Conversation,
    reason: &CloseReason,
    at: SystemTime,
    frame: &mut Vec<u8>,
    out: &mut impl Emit,
) {
    let comment = format!(
        "session end; reason={} ({reason}); {}",
        reason.label(),
        conversation.identity
    );
    match reason {
        CloseReason::PeerClosed | CloseReason::PeerEofWithoutCloseNotify => {
            conversation.finish(Side::Client, at, &comment, frame, out);
        }
        CloseReason::LocalClose
        | CloseReason::Evicted
        | CloseReason::Refused
        | CloseReason::Shutdown
        | CloseReason::IdleTimeout => conversation.finish(Side::Server, at, &comment, frame, out),
        CloseReason::Reset(_) => conversation.reset(Side::Client, at, &comment, frame, out),
        CloseReason::Dropped | CloseReason::WriteTimeout(_) | CloseReason::Failed(_) => {
            conversation.reset(Side::Server, at, &comment, frame, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use etherparse::{SlicedPacket, TransportSlice};
    use mbaps_authz::Role;
    use mbaps_codec::{MbapHeader, Registers, Request, Response};
    use mbaps_session::{Pdu, RecordedPdus};
    use pcap_file::pcapng::{Block, PcapNgReader};

    fn record(transaction_id: u16, at: Instant) -> RequestRecord {
        let request = Pdu::encode_request(&Request::ReadHoldingRegisters {
            address: 0,
            quantity: 2,
        })
        .unwrap();
        let response = Pdu::encode_response(&Response::ReadHoldingRegisters {
            values: Registers::from_values(&[1, 2]),
        })
        .unwrap();
        RequestRecord {
            header: MbapHeader {
                transaction_id,
                unit_id: 1,
            },
            function: 3,
            touches: [None, None],
            role: Some(Role::new("viewer").unwrap()),
            verdict: Verdict::Allowed,
            outcome: RequestOutcome::Response,
            arrived: at,
            answered: at,
            pdus: Some(Arc::new(RecordedPdus {
                request,
                response: Some(response),
            })),
        }
    }

    /// What a packet of the capture says: its TCP ends, sequence number,
    /// what it takes of the sequence, and its comments.
    struct Seen {
        ports: (u16, u16),
        seq: u32,
        ack: Option<u32>,
        taken: u32,
        comments: Vec<String>,
    }

    fn read_back(path: &std::path::Path) -> Vec<Seen> {
        let file = std::fs::File::open(path).unwrap();
        let mut reader = PcapNgReader::new(file).unwrap();
        let mut seen = Vec::new();
        while let Some(block) = reader.next_block() {
            let Block::EnhancedPacket(packet) = block.unwrap() else {
                continue;
            };
            let sliced = SlicedPacket::from_ethernet(&packet.data).unwrap();
            let Some(TransportSlice::Tcp(tcp)) = sliced.transport else {
                panic!("not TCP");
            };
            let comments = packet
                .options
                .iter()
                .filter_map(|o| match o {
                    pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption::Comment(
                        c,
                    ) => Some(c.to_string()),
                    _ => None,
                })
                .collect();
            seen.push(Seen {
                ports: (tcp.source_port(), tcp.destination_port()),
                seq: tcp.sequence_number(),
                ack: tcp.ack().then(|| tcp.acknowledgment_number()),
                taken: tcp.payload().len() as u32 + u32::from(tcp.syn()) + u32::from(tcp.fin()),
                comments,
            });
        }
        seen
    }

    /// A tap writing pcapng to a fresh folder named after `tag`, with a
    /// queue of `queue`: the tap, its writer, the capture's path.
    fn tap_in_folder(tag: &str, queue: usize) -> (Tap, TapWriter, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mbaps-tap-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tap.pcapng");
        let target = TapTarget {
            path: path.clone(),
            port: DEFAULT_PORT,
            format: TapFormat::Pcapng,
            max_bytes: 0,
            keep: 1,
            queue,
        };
        let (tap, writer) = start(target, None).unwrap();
        (tap, writer, path)
    }

    #[test]
    fn records_lost_to_a_full_queue_leave_every_stream_whole_and_are_named() {
        let (tap, writer, path) = tap_in_folder("queue", 4);
        let local: SocketAddr = "192.0.2.1:802".parse().unwrap();
        // Three sessions fed faster than a queue of 4 is drained.
        for session in 0..3u16 {
            let peer: SocketAddr = format!("192.0.2.{}:4000{session}", 10 + session)
                .parse()
                .unwrap();
            tap.record(&AuditEntry::SessionStarted {
                peer,
                local,
                role: Some(Role::new("viewer").unwrap()),
                certificate: None,
                handshake: None,
            });
            for n in 0..2_000 {
                tap.record(&AuditEntry::Request {
                    peer,
                    local,
                    record: record(n, Instant::now()),
                });
            }
            tap.record(&AuditEntry::SessionEnded {
                peer,
                local,
                reason: CloseReason::PeerClosed,
            });
        }
        let dropped = tap.dropped(TapDrop::QueueFull);
        drop(tap);
        writer.finish();
        assert!(dropped > 0, "a queue of 4 overflowed");
        let seen = read_back(&path);
        // Every stream's numbers follow its bytes, each way, gaps or not.
        let mut next: HashMap<(u16, u16), u32> = HashMap::new();
        for packet in &seen {
            if let Some(expected) = next.get(&packet.ports) {
                assert_eq!(packet.seq, *expected, "a hole in {:?}", packet.ports);
            }
            if let (Some(ack), Some(other)) =
                (packet.ack, next.get(&(packet.ports.1, packet.ports.0)))
            {
                assert_eq!(ack, *other, "acknowledges what was sent");
            }
            next.insert(packet.ports, packet.seq.wrapping_add(packet.taken));
        }
        // The losses are named where they happened.
        let named: u64 = seen
            .iter()
            .flat_map(|p| &p.comments)
            .filter_map(|c| {
                c.strip_prefix("tap: ")?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        assert!(named > 0 && named <= dropped, "{named} named of {dropped}");
        let requests = seen
            .iter()
            .filter(|p| p.comments.iter().any(|c| c.starts_with("request;")))
            .count() as u64;
        // Each session: start, 2,000 requests, end; a lost start or end
        // takes no request with it.
        assert!(
            requests + dropped >= 6_000 && requests < 6_000,
            "{requests}"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_request_whose_client_had_gone_is_there_without_an_answer() {
        let (tap, writer, path) = tap_in_folder("gone", DEFAULT_QUEUE);
        let (peer, local): (SocketAddr, SocketAddr) = (
            "192.0.2.9:40000".parse().unwrap(),
            "192.0.2.1:802".parse().unwrap(),
        );
        tap.record(&AuditEntry::SessionStarted {
            peer,
            local,
            role: Some(Role::new("operator").unwrap()),
            certificate: None,
            handshake: None,
        });
        // A write through a gateway, carried out after its client left:
        // the device's late answer never reached the client.
        let mut gone = record(7, Instant::now());
        gone.outcome = RequestOutcome::Abandoned {
            late: Some(mbaps_session::LateAnswer::Response),
        };
        tap.record(&AuditEntry::Request {
            peer,
            local,
            record: gone,
        });
        tap.record(&AuditEntry::SessionEnded {
            peer,
            local,
            reason: CloseReason::Reset(std::io::ErrorKind::ConnectionReset),
        });
        drop(tap);
        writer.finish();
        let seen = read_back(&path);
        // Handshake, the request alone, the client's reset.
        assert_eq!(seen.len(), 5);
        let request = &seen[3];
        assert_eq!(request.ports, (40000, 502));
        assert!(
            request.comments[0].contains("answer=none, the session ended first (abandoned)"),
            "{:?}",
            request.comments
        );
        assert_eq!(seen[4].ports, (40000, 502), "the client reset it");
        assert!(seen[4].comments[0].contains("reason=reset"));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_long_subject_is_cut_on_a_character_boundary() {
        let mut text = String::new();
        let long = "é".repeat(MAX_SUBJECT);
        push_capped(&mut text, &long);
        assert!(text.len() <= MAX_SUBJECT + '…'.len_utf8());
        assert!(text.ends_with('…'));
        let mut short = String::new();
        push_capped(&mut short, "CN=meter");
        assert_eq!(short, "CN=meter");
    }
}
