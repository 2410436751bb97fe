//! The capture the tap writes: a file, a FIFO or standard output, in
//! pcapng (the default: comments) or classic pcap, rotated by size.
//!
//! - A new file is created mode 0600: it holds the plant's process data in
//!   clear.
//! - An existing pcapng file that ends on a whole block is appended to as
//!   a new section; anything else there (a classic pcap file, a capture
//!   cut short by a crash, another file) is rotated aside first, so that
//!   every file is a valid capture on its own.
//! - A FIFO may have no reader: the capture waits for one without
//!   blocking, drops what comes meanwhile (counted), and starts anew, with
//!   its headers, when a reader opens the FIFO (again, after an EPIPE).
//! - Each rotated file starts with its own section and interface headers.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::conversation::Packet;
use super::{TapFormat, TapTarget};

/// The largest frame the capture holds: an ADU (260 bytes) with its
/// Ethernet, IPv6 and TCP headers fits many times over.
const SNAPLEN: u32 = 65_535;

/// How often a FIFO without a reader is tried again.
const RETRY_READER: Duration = Duration::from_millis(100);

/// Why packets were not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Missed {
    /// No reader on the FIFO or standard output (none yet, or it went
    /// away: EPIPE).
    NoReader = 0,
    /// The file could not be written (a full disk, an I/O error).
    WriteFailed = 1,
}

/// Where the capture goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A regular file (created if need be): rotated by size.
    File,
    /// A FIFO: a reader may come and go.
    Fifo,
    /// Standard output: a reader that goes away does not come back.
    Stdout,
}

/// The capture's output, as far as it is open.
pub(crate) struct Capture {
    target: TapTarget,
    kind: Kind,
    out: Option<(Writer, Output)>,
    /// Packets not written since the last one that was, and why: the next
    /// one written names the gap.
    missed: Option<(Missed, u64)>,
    /// When a FIFO without a reader was last tried.
    tried: Option<Instant>,
    /// Packets given to the output since it was last flushed: lost with
    /// it if the flush fails.
    unflushed: u64,
    /// Packets lost and not yet taken by [`Capture::take_lost`], by why.
    lost: [u64; 2],
}

/// The format's writer over the output.
enum Writer {
    Pcapng(PcapNgWriter<Counted>),
    Pcap(PcapWriter<Counted>),
}

/// The open output, buffered, and how much the file holds. The format's
/// writer owns one handle on it and the capture another (to flush it;
/// pcap-file's classic writer lends no access to what it writes to), both
/// on the writer thread alone.
type Output = Arc<Mutex<Buffered>>;

struct Buffered {
    out: BufWriter<File>,
    written: u64,
}

/// The format writer's handle on the output.
struct Counted(Output);

impl Write for Counted {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut output = crate::lock(&self.0);
        let n = output.out.write(bytes)?;
        output.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        crate::lock(&self.0).out.flush()
    }
}

impl Capture {
    /// Opens the capture: a file is created (or appended to, or rotated
    /// aside) now, so that a path that cannot be written is an error at
    /// start; a FIFO without a reader is not an error.
    pub(crate) fn open(target: TapTarget) -> Result<Capture> {
        let kind = if target.path == Path::new("-") {
            Kind::Stdout
        } else if std::fs::metadata(&target.path).is_ok_and(|m| m.file_type().is_fifo()) {
            Kind::Fifo
        } else {
            Kind::File
        };
        let mut capture = Capture {
            target,
            kind,
            out: None,
            missed: None,
            tried: None,
            unflushed: 0,
            lost: [0; 2],
        };
        match kind {
            Kind::Fifo => capture.try_reader(),
            Kind::File | Kind::Stdout => capture.start()?,
        }
        Ok(capture)
    }

    /// Opens the output and writes the headers.
    fn start(&mut self) -> Result<()> {
        let file = match self.kind {
            Kind::Stdout => {
                use std::os::fd::AsFd;
                // A handle of its own on standard output: unbuffered by
                // std (its line buffering would split binary blocks at
                // every newline byte), buffered here.
                File::from(
                    io::stdout()
                        .as_fd()
                        .try_clone_to_owned()
                        .context("taking standard output for the tap")?,
                )
            }
            Kind::Fifo => open_fifo(&self.target.path)?,
            Kind::File => self.open_file()?,
        };
        let output = Arc::new(Mutex::new(Buffered {
            written: file
                .metadata()
                .map_or(0, |m| if m.is_file() { m.len() } else { 0 }),
            out: BufWriter::with_capacity(64 * 1024, file),
        }));
        let out = Counted(Arc::clone(&output));
        self.unflushed = 0;
        let writer = match self.target.format {
            TapFormat::Pcapng => {
                let mut writer = PcapNgWriter::with_section_header(out, section())
                    .map_err(io_error)
                    .context("writing the tap's section header")?;
                writer
                    .write_pcapng_block(interface())
                    .map_err(io_error)
                    .context("writing the tap's interface header")?;
                Writer::Pcapng(writer)
            }
            TapFormat::Pcap => Writer::Pcap(
                PcapWriter::with_header(
                    out,
                    PcapHeader {
                        snaplen: SNAPLEN,
                        datalink: DataLink::ETHERNET,
                        ts_resolution: TsResolution::NanoSecond,
                        // A live reader (dumpcap, behind `tshark -i`) takes
                        // only its own byte order from a pipe.
                        endianness: Endianness::native(),
                        ..PcapHeader::default()
                    },
                )
                .map_err(io_error)
                .context("writing the tap's header")?,
            ),
        };
        self.out = Some((writer, output));
        Ok(())
    }

    /// The file, created mode 0600, or appended to as a new section if it
    /// is a whole pcapng capture and the tap writes pcapng; anything else
    /// there is rotated aside first.
    fn open_file(&self) -> Result<File> {
        let path = &self.target.path;
        let mut options = OpenOptions::new();
        options.create(true).append(true).read(true).mode(0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("opening the tap {}", path.display()))?;
        let len = file.metadata().map_or(0, |m| m.len());
        let appendable =
            len == 0 || (self.target.format == TapFormat::Pcapng && ends_whole(&mut file)?);
        if appendable {
            return Ok(file);
        }
        drop(file);
        self.shift_numbered()
            .with_context(|| format!("rotating {} aside", path.display()))?;
        options
            .open(path)
            .with_context(|| format!("opening the tap {}", path.display()))
    }

    /// `PATH.N-1` to `PATH.N`, ..., `PATH` to `PATH.1` (at least one kept:
    /// a file found at start is never deleted).
    fn shift_numbered(&self) -> io::Result<()> {
        let keep = self.target.keep.max(1);
        let numbered = |n: u32| {
            let mut name = self.target.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..keep).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.target.path, numbered(1))
    }

    /// A FIFO: opens it if a reader is there (tried at most every
    /// [`RETRY_READER`]).
    fn try_reader(&mut self) {
        if self.tried.is_some_and(|at| at.elapsed() < RETRY_READER) {
            return;
        }
        self.tried = Some(Instant::now());
        match self.start() {
            Ok(()) => {
                if self.missed.is_none() {
                    tracing::info!(path = %self.target.path.display(), "tap: a reader opened the FIFO");
                }
            }
            Err(_) => self.out = None,
        }
    }

    /// Between packets: a FIFO without a reader looks for one, so that
    /// the reader gets the headers at once.
    pub(crate) fn idle(&mut self) {
        if self.kind != Kind::Fifo {
            return;
        }
        match &self.out {
            None => self.try_reader(),
            // The reader went away without our writing anything since:
            // the FIFO is closed now, so that a new reader starts on a
            // fresh capture rather than on what the last one left unread.
            Some((_, output)) if reader_gone(&crate::lock(output).out) => {
                tracing::warn!(path = %self.target.path.display(), "tap: the reader went away; packets are dropped until one comes");
                self.out = None;
                self.tried = None;
            }
            Some(_) => {}
        }
    }

    /// Writes `packet`; `gap` names what was lost before it (the
    /// writer's queue was full), to be said in its comment.
    pub(crate) fn write(&mut self, packet: &Packet, gap: Option<String>) {
        if self.out.is_none() && self.kind == Kind::Fifo {
            self.try_reader();
        }
        if self.out.is_some() && self.rotation_due(packet) {
            self.rotate();
        }
        let Some((out, _)) = &mut self.out else {
            self.lose(Missed::NoReader, 1);
            return;
        };
        let missed = self.missed.take();
        let mut comments = Vec::with_capacity(3);
        if let Some(gap) = gap {
            comments.push(gap);
        }
        if let Some((why, count)) = missed {
            comments.push(format!(
                "tap: {count} packets before this one were not written ({})",
                match why {
                    Missed::NoReader => "no reader",
                    Missed::WriteFailed => "the capture could not be written",
                }
            ));
        }
        let timestamp = packet
            .at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let len = packet.frame.len() as u32;
        let result = match out {
            Writer::Pcapng(writer) => {
                let mut options: Vec<EnhancedPacketOption<'_>> = comments
                    .into_iter()
                    .map(|c| EnhancedPacketOption::Comment(Cow::Owned(c)))
                    .collect();
                options.push(EnhancedPacketOption::Comment(Cow::Borrowed(
                    &packet.comment,
                )));
                if let Some((_, count)) = missed {
                    options.push(EnhancedPacketOption::DropCount(count));
                }
                writer.write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp,
                    original_len: len,
                    data: Cow::Borrowed(&packet.frame),
                    options,
                })
            }
            Writer::Pcap(writer) => writer.write_packet(&PcapPacket {
                timestamp,
                orig_len: len,
                data: Cow::Borrowed(&packet.frame),
            }),
        };
        match result {
            Ok(_) => self.unflushed += 1,
            Err(error) => {
                self.missed = missed;
                // This packet, and those in the buffer with it.
                let lost = self.unflushed + 1;
                self.failed(&io_error(error), lost);
            }
        }
    }

    /// A write failed: a reader that went away (EPIPE) is waited for
    /// again; a file is reopened at the next packet (and, if the failed
    /// write left half a block, rotated aside then).
    fn failed(&mut self, error: &io::Error, lost: u64) {
        self.out = None;
        self.unflushed = 0;
        self.tried = None;
        let why = if error.kind() == io::ErrorKind::BrokenPipe {
            tracing::warn!(path = %self.target.path.display(), "tap: the reader went away; packets are dropped until one comes");
            Missed::NoReader
        } else {
            tracing::error!(path = %self.target.path.display(), %error, "tap: the capture cannot be written");
            Missed::WriteFailed
        };
        if self.kind == Kind::File
            && let Err(error) = self.start()
        {
            tracing::error!(%error, "tap: the capture cannot be reopened");
        }
        self.lose(why, lost)
    }

    /// `count` packets lost: named in the next packet written, and
    /// counted for [`Capture::take_lost`].
    fn lose(&mut self, why: Missed, count: u64) {
        if count == 0 {
            return;
        }
        let total = match self.missed {
            Some((_, before)) => before + count,
            None => count,
        };
        self.missed = Some((why, total));
        self.lost[why as usize] += count;
    }

    /// The packets lost since the last call, by why.
    pub(crate) fn take_lost(&mut self) -> [(Missed, u64); 2] {
        let [no_reader, failed] = std::mem::take(&mut self.lost);
        [(Missed::NoReader, no_reader), (Missed::WriteFailed, failed)]
    }

    /// Whether writing `packet` would take the file past its bound.
    fn rotation_due(&self, packet: &Packet) -> bool {
        let Some((_, output)) = &self.out else {
            return false;
        };
        let written = crate::lock(output).written;
        self.kind == Kind::File
            && self.target.max_bytes > 0
            && written > 0
            && written + packet.frame.len() as u64 + 64 + packet.comment.len() as u64
                > self.target.max_bytes
    }

    /// The file is full: it becomes `PATH.1` and a new one starts, with
    /// its own headers.
    fn rotate(&mut self) {
        self.flush();
        self.out = None;
        let result = if self.target.keep == 0 {
            std::fs::remove_file(&self.target.path)
        } else {
            self.shift_numbered()
        };
        if let Err(error) = result {
            tracing::error!(%error, "tap: rotation failed");
        }
        if let Err(error) = self.start() {
            tracing::error!(%error, "tap: the new capture cannot be opened");
        }
    }

    /// SIGHUP: the path is opened again (an outside rotation moved the
    /// file away: a new one is created).
    pub(crate) fn reopen(&mut self) {
        if self.kind == Kind::Stdout {
            return;
        }
        self.flush();
        self.out = None;
        self.tried = None;
        match self.kind {
            Kind::Fifo => self.try_reader(),
            _ => {
                if let Err(error) = self.start() {
                    tracing::error!(%error, "tap: reopening on SIGHUP failed");
                }
            }
        }
    }

    /// Writes out what is buffered (what cannot be is lost, counted).
    pub(crate) fn flush(&mut self) {
        let Some((_, output)) = self.out.as_ref() else {
            return;
        };
        let flushed = crate::lock(output).out.flush();
        match flushed {
            Ok(()) => self.unflushed = 0,
            Err(error) => {
                let lost = self.unflushed;
                self.failed(&error, lost);
            }
        }
    }
}

/// A FIFO, opened for writing only if a reader is there (no wait), then
/// made blocking: a slow reader slows the writer thread, never a session.
fn open_fifo(path: &Path) -> Result<File> {
    use rustix::fs::OFlags;
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .with_context(|| format!("no reader on the FIFO {}", path.display()))?;
    rustix::fs::fcntl_setfl(&file, OFlags::empty()).context("making the FIFO blocking")?;
    Ok(file)
}

/// Whether the FIFO written through `out` has no reader any more (poll
/// reports an error on a pipe's writing end once every reader closed it).
fn reader_gone(out: &BufWriter<File>) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let file = out.get_ref();
    let mut fds = [PollFd::new(file, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        Err(_) => false,
    }
}

/// The section header: mbaps wrote it, and what it holds.
fn section() -> SectionHeaderBlock<'static> {
    SectionHeaderBlock {
        options: vec![
            SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "mbaps {} (tap)",
                env!("CARGO_PKG_VERSION")
            ))),
            SectionHeaderOption::Comment(Cow::Borrowed(
                "The decrypted Modbus/TCP traffic of an mbaps server or gateway, \
                 in synthesized TCP connections: plaintext process data.",
            )),
        ],
        // A live reader (dumpcap, behind `tshark -i`) takes only its own
        // byte order from a pipe.
        endianness: Endianness::native(),
        ..SectionHeaderBlock::default()
    }
}

/// The one interface: nanosecond timestamps, Ethernet.
fn interface() -> InterfaceDescriptionBlock<'static> {
    InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: SNAPLEN,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed("mbaps-tap")),
            InterfaceDescriptionOption::IfDescription(Cow::Borrowed(
                "Modbus/TCP as decoded and sent by mbaps, after TLS",
            )),
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    }
}

fn io_error(error: pcap_file::PcapError) -> io::Error {
    match error {
        pcap_file::PcapError::IoError(error) => error,
        other => io::Error::other(other.to_string()),
    }
}

/// The pcapng section header's block type, and its byte-order magic.
const SHB_TYPE: u32 = 0x0A0D_0D0A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// Whether `file` is a pcapng capture that ends on a whole block: each
/// section's byte order read from its header, every block's length
/// followed to the end. Anything else (classic pcap, a cut block, other
/// bytes) is not.
pub fn ends_whole(file: &mut (impl Read + Seek)) -> io::Result<bool> {
    let end = file.seek(SeekFrom::End(0))?;
    let mut at = 0u64;
    let mut little = true;
    while at < end {
        if end - at < 12 {
            return Ok(false);
        }
        file.seek(SeekFrom::Start(at))?;
        let mut head = [0u8; 12];
        file.read_exact(&mut head)?;
        let word = |bytes: &[u8], little: bool| {
            let bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
            if little {
                u32::from_le_bytes(bytes)
            } else {
                u32::from_be_bytes(bytes)
            }
        };
        // The section header's type reads the same in either order.
        let kind = word(&head[0..4], true);
        if kind == SHB_TYPE {
            little = match word(&head[8..12], true) {
                BYTE_ORDER_MAGIC => true,
                _ if word(&head[8..12], false) == BYTE_ORDER_MAGIC => false,
                _ => return Ok(false),
            };
        } else if at == 0 {
            return Ok(false);
        }
        let len = u64::from(word(&head[4..8], little));
        if len < 12 || len % 4 != 0 || len > end - at {
            return Ok(false);
        }
        at += len;
    }
    Ok(at == end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn only_a_whole_pcapng_capture_is_appended_to() {
        let mut bytes = Vec::new();
        {
            let mut writer = PcapNgWriter::with_section_header(&mut bytes, section()).unwrap();
            writer.write_pcapng_block(interface()).unwrap();
        }
        assert!(ends_whole(&mut Cursor::new(bytes.clone())).unwrap());
        // A second section after the first, as an append makes.
        let mut twice = bytes.clone();
        twice.extend_from_slice(&bytes);
        assert!(ends_whole(&mut Cursor::new(twice)).unwrap());
        // Cut short.
        let cut = bytes[..bytes.len() - 3].to_vec();
        assert!(!ends_whole(&mut Cursor::new(cut)).unwrap());
        // Classic pcap.
        let mut pcap = Vec::new();
        PcapWriter::new(&mut pcap).unwrap();
        assert!(!ends_whole(&mut Cursor::new(pcap)).unwrap());
        // Text.
        let text = b"not a capture at all, just some words".to_vec();
        assert!(!ends_whole(&mut Cursor::new(text)).unwrap());
    }
}
