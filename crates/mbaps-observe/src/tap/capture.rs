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
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use byteorder_slice::byteorder::NativeEndian;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::ENHANCED_PACKET_BLOCK;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::{PcapNgBlock, PcapNgWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use rustix::fs::OFlags;

use super::{TapFormat, TapTarget};

/// The largest frame the capture holds: an ADU (260 bytes) with its
/// Ethernet, IPv6 and TCP headers fits many times over.
const SNAPLEN: u32 = 65_535;

/// How often a FIFO without a reader, or a file that could not be
/// opened, is tried again.
const RETRY_OPEN: Duration = Duration::from_millis(100);

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
    out: Option<Output>,
    /// The block being encoded, kept between packets.
    block: Vec<u8>,
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

/// The open output, buffered, and how much the file holds.
struct Output {
    out: BufWriter<File>,
    written: u64,
}

impl Capture {
    /// Opens the capture: a file is created (or appended to, or rotated
    /// aside) now, so that a path that cannot be written is an error at
    /// start; a FIFO without a reader is not an error.
    pub(crate) fn open(target: TapTarget) -> Result<Capture> {
        let kind = if target.path == Path::new("-") {
            use std::io::IsTerminal;
            if io::stdout().is_terminal() {
                anyhow::bail!(
                    "standard output is a terminal: give the capture to a reader (`| tshark -i -`) or a file"
                );
            }
            Kind::Stdout
        } else {
            match std::fs::symlink_metadata(&target.path) {
                Ok(found) if found.file_type().is_symlink() => anyhow::bail!(
                    "{} is a symbolic link: give the tap the path itself (a link could point a server run as root at any file)",
                    target.path.display()
                ),
                Ok(found) if found.file_type().is_fifo() => {
                    check_fifo_mode(&target.path, &found)?;
                    Kind::Fifo
                }
                Ok(found) if !found.file_type().is_file() => anyhow::bail!(
                    "{} is neither a regular file nor a FIFO",
                    target.path.display()
                ),
                _ => Kind::File,
            }
        };
        let mut capture = Capture {
            target,
            kind,
            out: None,
            block: Vec::with_capacity(1024),
            missed: None,
            tried: None,
            unflushed: 0,
            lost: [0; 2],
        };
        match kind {
            Kind::Fifo => capture.try_open(),
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
        let headers = match self.target.format {
            TapFormat::Pcapng => {
                let mut writer = PcapNgWriter::with_section_header(Vec::new(), section())
                    .map_err(io_error)
                    .context("encoding the tap's section header")?;
                writer
                    .write_pcapng_block(interface())
                    .map_err(io_error)
                    .context("encoding the tap's interface header")?;
                writer.into_inner()
            }
            TapFormat::Pcap => PcapWriter::with_header(
                Vec::new(),
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
            .context("encoding the tap's header")?
            .into_writer(),
        };
        let mut output = Output {
            written: file
                .metadata()
                .map_or(0, |m| if m.is_file() { m.len() } else { 0 }),
            out: BufWriter::with_capacity(64 * 1024, file),
        };
        output
            .out
            .write_all(&headers)
            .context("writing the tap's headers")?;
        output.written += headers.len() as u64;
        self.unflushed = 0;
        self.out = Some(output);
        Ok(())
    }

    /// The file, created mode 0600, or appended to as a new section if it
    /// is a whole pcapng capture and the tap writes pcapng; anything else
    /// there is rotated aside first.
    fn open_file(&self) -> Result<File> {
        let path = &self.target.path;
        let mut options = OpenOptions::new();
        // Never through a link: a server run as root must not be pointed
        // at another file by whoever can write to the tap's folder.
        options
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32);
        let open = |options: &OpenOptions| -> Result<File> {
            let file = options.open(path).with_context(|| {
                format!("opening the tap {} (not through a link)", path.display())
            })?;
            let found = file.metadata()?;
            if !found.is_file() {
                anyhow::bail!("{} is not a regular file", path.display());
            }
            // The capture holds plaintext process data: 0600, whoever made
            // the file (logrotate's `create 0644`, say).
            if found.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} mode 0600", path.display()))?;
            }
            Ok(file)
        };
        let mut file = open(&options)?;
        let len = file.metadata().map_or(0, |m| m.len());
        let appendable =
            len == 0 || (self.target.format == TapFormat::Pcapng && ends_whole(&mut file)?);
        if appendable {
            return Ok(file);
        }
        drop(file);
        self.shift_numbered()
            .with_context(|| format!("rotating {} aside", path.display()))?;
        open(&options)
    }

    /// `PATH.N-1` to `PATH.N`, ..., `PATH` to `PATH.1` (at least one kept:
    /// a file found at start is moved aside, not deleted; the oldest
    /// numbered one gives way, as at a rotation).
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

    /// Opens the output again (tried at most every [`RETRY_OPEN`]): a
    /// FIFO if a reader is there, a file that could not be opened or
    /// written (a full table of descriptors, a folder briefly gone).
    fn try_open(&mut self) {
        if self.kind == Kind::Stdout || self.tried.is_some_and(|at| at.elapsed() < RETRY_OPEN) {
            return;
        }
        let first = self.tried.is_none();
        self.tried = Some(Instant::now());
        match self.start() {
            Ok(()) => {
                self.tried = None;
                tracing::info!(path = %self.target.path.display(), "tap: writing the capture");
            }
            Err(error) => {
                self.out = None;
                // Said once per outage, not at every try.
                if first {
                    match self.kind {
                        Kind::Fifo => {
                            tracing::warn!(path = %self.target.path.display(), "tap: no reader on the FIFO; packets are dropped until one opens it")
                        }
                        _ => {
                            tracing::error!(path = %self.target.path.display(), "tap: the capture cannot be opened, packets are dropped until it can: {error:#}")
                        }
                    }
                }
            }
        }
    }

    /// Why a packet cannot be written while the output is closed.
    fn closed_because(&self) -> Missed {
        match self.kind {
            Kind::File => Missed::WriteFailed,
            Kind::Fifo | Kind::Stdout => Missed::NoReader,
        }
    }

    /// Between packets: a FIFO without a reader looks for one, so that
    /// the reader gets the headers at once.
    pub(crate) fn idle(&mut self) {
        match &self.out {
            None => self.try_open(),
            Some(_) if self.kind != Kind::Fifo => {}
            // The reader went away without our writing anything since:
            // the FIFO is closed now, so that a new reader starts on a
            // fresh capture rather than on what the last one left unread.
            Some(output) if reader_gone(&output.out) => {
                tracing::warn!(path = %self.target.path.display(), "tap: the reader went away; packets are dropped until one comes");
                self.out = None;
                // The outage is said: the tries that follow are quiet.
                self.tried = Some(Instant::now());
            }
            Some(_) => {}
        }
    }

    /// Writes a packet: `frame` (Ethernet and up) at `at`, annotated with
    /// `comment`; `gap` names what was lost before it (the writer's queue
    /// was full).
    pub(crate) fn write(&mut self, at: SystemTime, frame: &[u8], comment: &str, gap: Option<&str>) {
        if self.out.is_none() {
            self.try_open();
        }
        if self.out.is_some() && self.rotation_due(frame.len() + comment.len()) {
            self.rotate();
        }
        if self.out.is_none() {
            self.lose(self.closed_because(), 1);
            return;
        }
        let missed = self.missed.take();
        self.encode(at, frame, comment, gap, missed);
        let Some(output) = &mut self.out else {
            return;
        };
        match output.out.write_all(&self.block) {
            Ok(()) => {
                output.written += self.block.len() as u64;
                self.unflushed += 1;
            }
            Err(error) => {
                self.missed = missed;
                // This packet, and those in the buffer with it.
                let lost = self.unflushed + 1;
                self.failed(&error, lost);
            }
        }
    }

    /// Encodes one packet's block (pcapng: an enhanced packet block with
    /// its comments; pcap: a record) into `self.block`.
    fn encode(
        &mut self,
        at: SystemTime,
        frame: &[u8],
        comment: &str,
        gap: Option<&str>,
        missed: Option<(Missed, u64)>,
    ) {
        let timestamp = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let len = frame.len() as u32;
        self.block.clear();
        match self.target.format {
            TapFormat::Pcapng => {
                let mut options = Vec::with_capacity(4);
                if let Some(gap) = gap {
                    options.push(EnhancedPacketOption::Comment(Cow::Borrowed(gap)));
                }
                let missed_note;
                if let Some((why, count)) = missed {
                    missed_note = format!(
                        "tap: {count} packets before this one were not written ({})",
                        match why {
                            Missed::NoReader => "no reader",
                            Missed::WriteFailed => "the capture could not be written",
                        }
                    );
                    options.push(EnhancedPacketOption::Comment(Cow::Borrowed(&missed_note)));
                    options.push(EnhancedPacketOption::DropCount(count));
                }
                options.push(EnhancedPacketOption::Comment(Cow::Borrowed(comment)));
                let block = EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp,
                    original_len: len,
                    data: Cow::Borrowed(frame),
                    options,
                };
                // The block's type and length, its body, its length again
                // (pcap-file's writer encodes each body twice, once to
                // measure it: the tap's hot path does it once).
                self.block
                    .extend_from_slice(&ENHANCED_PACKET_BLOCK.to_ne_bytes());
                self.block.extend_from_slice(&[0; 4]);
                // Writing to a Vec cannot fail.
                let _ = block.write_to::<NativeEndian, _>(&mut self.block);
                let padded = self.block.len().next_multiple_of(4);
                self.block.resize(padded, 0);
                let total = (padded + 4) as u32;
                self.block[4..8].copy_from_slice(&total.to_ne_bytes());
                self.block.extend_from_slice(&total.to_ne_bytes());
            }
            TapFormat::Pcap => {
                let packet = PcapPacket {
                    timestamp,
                    orig_len: len,
                    data: Cow::Borrowed(frame),
                };
                let _ = packet.write_to::<_, NativeEndian>(
                    &mut self.block,
                    TsResolution::NanoSecond,
                    SNAPLEN,
                );
            }
        }
    }

    /// A write failed: a reader that went away (EPIPE) is waited for
    /// again; a file is opened again at the next packet (and, if the
    /// failed write left half a block, moved aside then).
    fn failed(&mut self, error: &io::Error, lost: u64) {
        self.out = None;
        self.unflushed = 0;
        // The outage is said here: the tries that follow are quiet.
        self.tried = Some(Instant::now());
        let why = if error.kind() == io::ErrorKind::BrokenPipe {
            tracing::warn!(path = %self.target.path.display(), "tap: the reader went away; packets are dropped until one comes");
            Missed::NoReader
        } else {
            tracing::error!(path = %self.target.path.display(), %error, "tap: the capture cannot be written");
            Missed::WriteFailed
        };
        // Opened again at the next packet (a file that ends on half a
        // block is moved aside then), or at the next try.
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

    /// Whether a packet of about `bytes` (its frame and comment) would
    /// take the file past its bound.
    fn rotation_due(&self, bytes: usize) -> bool {
        let Some(output) = &self.out else {
            return false;
        };
        self.kind == Kind::File
            && self.target.max_bytes > 0
            && output.written > 0
            // The block's own fields, the drop notes, the padding.
            && output.written + bytes as u64 + 160 > self.target.max_bytes
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
            self.tried = Some(Instant::now());
        }
    }

    /// SIGHUP: a file's path is opened again (an outside rotation moved
    /// the file away: a new one is created). A FIFO or standard output
    /// stays as it is: closing it would end the live reader's capture.
    pub(crate) fn reopen(&mut self) {
        if self.kind != Kind::File {
            return;
        }
        self.flush();
        // Still the file at the path (a reload that moved nothing): kept,
        // not moved aside nor started anew.
        if let Some(output) = &self.out
            && let (Ok(open), Ok(at_path)) = (
                output.out.get_ref().metadata(),
                std::fs::symlink_metadata(&self.target.path),
            )
            && (open.dev(), open.ino()) == (at_path.dev(), at_path.ino())
        {
            return;
        }
        self.out = None;
        self.tried = None;
        self.try_open();
    }

    /// Writes out what is buffered (what cannot be is lost, counted).
    pub(crate) fn flush(&mut self) {
        let Some(output) = &mut self.out else {
            return;
        };
        let flushed = output.out.flush();
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
    let file = OpenOptions::new()
        .write(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOFOLLOW).bits() as i32)
        .open(path)
        .with_context(|| format!("no reader on the FIFO {}", path.display()))?;
    // Still the FIFO it was at start (not a file or a link put there
    // since), still readable by its owner and group alone.
    let found = file.metadata()?;
    if !found.file_type().is_fifo() {
        anyhow::bail!("{} is no longer a FIFO", path.display());
    }
    check_fifo_mode(path, &found)?;
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

/// A FIFO others may read would hand them the plaintext (and let any
/// local account become "the reader" while the IDS is away): refused.
fn check_fifo_mode(path: &Path, found: &std::fs::Metadata) -> Result<()> {
    let mode = found.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        anyhow::bail!(
            "the FIFO {} is mode {mode:04o}: others may open it; make it with `mkfifo -m 0600` (or 0640 and the IDS's group)",
            path.display()
        );
    }
    Ok(())
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

/// Whether `file` is a pcapng capture that ends on a whole block: it
/// starts with a section header (its byte order read there), and its last
/// four bytes are the length of a block whose first length field says the
/// same. Anything else (classic pcap, a block cut short by a crash, other
/// bytes) is not. Two reads, whatever the file's size: it runs at start
/// and after a failed write, on captures of gigabytes.
pub fn ends_whole(file: &mut (impl Read + Seek)) -> io::Result<bool> {
    let end = file.seek(SeekFrom::End(0))?;
    if end < 28 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(0))?;
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
    if word(&head[0..4], true) != SHB_TYPE {
        return Ok(false);
    }
    let little = match word(&head[8..12], true) {
        BYTE_ORDER_MAGIC => true,
        _ if word(&head[8..12], false) == BYTE_ORDER_MAGIC => false,
        _ => return Ok(false),
    };
    let first = u64::from(word(&head[4..8], little));
    if first < 28 || first % 4 != 0 || first > end {
        return Ok(false);
    }
    // The last block: its trailing length, then its leading one, in the
    // first section's byte order (a later section in the other order, as
    // another machine would write, is judged not whole and moved aside:
    // reading it both ways would take a cut block for a whole one).
    file.seek(SeekFrom::Start(end - 4))?;
    let mut tail = [0u8; 4];
    file.read_exact(&mut tail)?;
    let len = u64::from(word(&tail, little));
    if len < 12 || len % 4 != 0 || len > end {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(end - len + 4))?;
    let mut lead = [0u8; 4];
    file.read_exact(&mut lead)?;
    Ok(u64::from(word(&lead, little)) == len)
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
        // Cut short anywhere in the interface block (the section header
        // alone is a whole capture).
        let header = PcapNgWriter::with_section_header(Vec::new(), section())
            .unwrap()
            .into_inner()
            .len();
        for len in header + 1..bytes.len() {
            let cut = &bytes[..len];
            assert!(!ends_whole(&mut Cursor::new(cut)).unwrap(), "cut to {len}");
        }
        assert!(ends_whole(&mut Cursor::new(&bytes[..header])).unwrap());
        // Classic pcap.
        let mut pcap = Vec::new();
        PcapWriter::new(&mut pcap).unwrap();
        assert!(!ends_whole(&mut Cursor::new(pcap)).unwrap());
        // Text.
        let text = b"not a capture at all, just some words".to_vec();
        assert!(!ends_whole(&mut Cursor::new(text)).unwrap());
    }
}
