//! Serial ports under tokio, for Modbus RTU: a line's settings
//! ([`SerialLine`]), and the port opened exclusively with those settings,
//! read back and checked ([`SerialPort`]).
//!
//! The port is opened and configured with `serial2-tokio` (termios, 8 data
//! bits, raw, no flow control) and held exclusively (`flock` and
//! `TIOCEXCL`: a second open by another mbaps, or by any program that
//! opens it after, fails; a program that opened the port before without a
//! lock goes unnoticed). The
//! settings are read back after they are applied: a driver that silently
//! drops one (a pseudo-terminal clears parity; an adapter that cannot do a
//! speed) is refused with the setting named, never used with the wrong
//! framing. Serial ports are supported on Unix.

use std::path::{Path, PathBuf};

use mbaps_session::Handler;
use mbaps_session::rtu_server::RtuServer;
pub use mbaps_session::upstream::serial_line::{Parity, SerialLine, StopBits};

/// Why a serial port could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerialError {
    /// The port could not be opened or configured: missing, no permission,
    /// a speed the driver refuses.
    #[error("serial port {}: {reason}", path.display())]
    Open {
        /// The port.
        path: PathBuf,
        /// What the system said.
        reason: std::io::Error,
    },
    /// Another program has the port open exclusively, or it could not be
    /// made exclusive.
    #[error("serial port {}: cannot be opened exclusively (another program holds it?): {reason}", path.display())]
    Exclusive {
        /// The port.
        path: PathBuf,
        /// What the system said.
        reason: std::io::Error,
    },
    /// The driver accepted a setting and did not apply it (read back
    /// after configuring).
    #[error(
        "serial port {}: {setting} {asked} was asked but the port reports {found}: the driver does not support it",
        path.display()
    )]
    Mismatch {
        /// The port.
        path: PathBuf,
        /// `baud`, `parity`, `stop_bits` or `data_bits`.
        setting: &'static str,
        /// What was asked.
        asked: String,
        /// What the port reports.
        found: String,
    },
    /// Serial ports are not supported on this platform.
    #[error("serial port {}: serial ports are supported on Unix only", path.display())]
    Unsupported {
        /// The port.
        path: PathBuf,
    },
}

#[cfg(unix)]
pub use unix::SerialPort;

#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::OpenOptionsExt;

    use serial2_tokio::{CharSize, FlowControl, KeepSettings};

    use super::{Parity, SerialError, SerialLine, StopBits};

    /// A serial port opened exclusively with a line's settings, read and
    /// written under tokio.
    pub struct SerialPort {
        port: serial2_tokio::SerialPort,
        /// Holds the exclusive lock for as long as the port is open.
        _lock: File,
    }

    impl std::fmt::Debug for SerialPort {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SerialPort").finish_non_exhaustive()
        }
    }

    impl SerialPort {
        /// Opens `line.path` exclusively, applies the settings (raw, 8
        /// data bits, no flow control), reads them back and refuses a
        /// mismatch. Must be called within a tokio runtime.
        pub fn open(line: &SerialLine) -> Result<SerialPort, SerialError> {
            let path = &line.path;
            let open_error = |reason| SerialError::Open {
                path: path.clone(),
                reason,
            };
            // Opened as it is, made exclusive, then configured: a port
            // another program holds is never reconfigured under it.
            let mut port =
                serial2_tokio::SerialPort::open(path, KeepSettings).map_err(open_error)?;
            let lock = lock(line)?;
            local_line(line, &lock)?;
            let mut settings = port.get_configuration().map_err(open_error)?;
            settings.set_raw();
            settings.set_baud_rate(line.baud).map_err(open_error)?;
            settings.set_char_size(CharSize::Bits8);
            settings.set_parity(match line.parity {
                Parity::None => serial2_tokio::Parity::None,
                Parity::Even => serial2_tokio::Parity::Even,
                Parity::Odd => serial2_tokio::Parity::Odd,
            });
            settings.set_stop_bits(match line.stop_bits {
                StopBits::One => serial2_tokio::StopBits::One,
                StopBits::Two => serial2_tokio::StopBits::Two,
            });
            settings.set_flow_control(FlowControl::None);
            // serial2 reads the settings back and fails without saying
            // which one the driver dropped: the read-back check names it.
            let applied = port.set_configuration(&settings);
            check_settings(line, &port)?;
            applied.map_err(open_error)?;
            Ok(SerialPort { port, _lock: lock })
        }

        /// Reads what the line has received (waits for at least a byte).
        pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
            self.port.read(buf).await
        }

        /// Writes all of `bytes` to the line.
        pub async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
            self.port.write_all(bytes).await
        }
    }

    /// Takes the port for this program: an advisory lock (`flock`, which
    /// holds against another mbaps even as root) and the terminal's
    /// exclusive mode (`TIOCEXCL`: later opens fail with EBUSY, except
    /// root's), both on a descriptor of the device kept open with the port.
    fn lock(line: &SerialLine) -> Result<File, SerialError> {
        let exclusive = |reason: io::Error| SerialError::Exclusive {
            path: line.path.clone(),
            reason,
        };
        // Non-blocking: a port whose settings wait for carrier (CLOCAL
        // clear) would block the open until a modem says so.
        let flags = rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::NONBLOCK;
        let file = File::options()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(&line.path)
            .map_err(exclusive)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|errno| exclusive(errno.into()))?;
        rustix::termios::ioctl_tiocexcl(&file).map_err(|errno| exclusive(errno.into()))?;
        Ok(file)
    }

    /// The line ignores the modem's lines (CLOCAL) and receives (CREAD): an
    /// RS-485 adapter has no carrier to wait for, and a port left without
    /// them would read nothing. Set through the lock's descriptor (the
    /// terminal's settings are the terminal's, whichever descriptor), before
    /// the rest is read and applied.
    fn local_line(line: &SerialLine, lock: &File) -> Result<(), SerialError> {
        use rustix::termios::{ControlModes, OptionalActions, tcgetattr, tcsetattr};
        let open_error = |errno: rustix::io::Errno| SerialError::Open {
            path: line.path.clone(),
            reason: errno.into(),
        };
        let mut termios = tcgetattr(lock).map_err(open_error)?;
        termios
            .control_modes
            .insert(ControlModes::CLOCAL | ControlModes::CREAD);
        tcsetattr(lock, OptionalActions::Now, &termios).map_err(open_error)
    }

    /// The settings the port reports must be the ones asked.
    fn check_settings(
        line: &SerialLine,
        port: &serial2_tokio::SerialPort,
    ) -> Result<(), SerialError> {
        let read_error = |reason| SerialError::Open {
            path: line.path.clone(),
            reason,
        };
        let settings = port.get_configuration().map_err(read_error)?;
        let mismatch = |setting, asked: String, found: String| SerialError::Mismatch {
            path: line.path.clone(),
            setting,
            asked,
            found,
        };
        let baud = settings.get_baud_rate().map_err(read_error)?;
        if baud != line.baud {
            return Err(mismatch("baud", line.baud.to_string(), baud.to_string()));
        }
        let parity = match settings.get_parity().map_err(read_error)? {
            serial2_tokio::Parity::None => Parity::None,
            serial2_tokio::Parity::Even => Parity::Even,
            serial2_tokio::Parity::Odd => Parity::Odd,
        };
        if parity != line.parity {
            return Err(mismatch(
                "parity",
                line.parity.to_string(),
                parity.to_string(),
            ));
        }
        let stop_bits = match settings.get_stop_bits().map_err(read_error)? {
            serial2_tokio::StopBits::One => StopBits::One,
            serial2_tokio::StopBits::Two => StopBits::Two,
        };
        if stop_bits != line.stop_bits {
            return Err(mismatch(
                "stop_bits",
                line.stop_bits.count().to_string(),
                stop_bits.count().to_string(),
            ));
        }
        let data_bits = settings.get_char_size().map_err(read_error)?;
        if data_bits != CharSize::Bits8 {
            return Err(mismatch("data_bits", "8".into(), data_bits.to_string()));
        }
        Ok(())
    }
}

/// On platforms without serial support: every open is refused.
#[cfg(not(unix))]
#[derive(Debug)]
pub struct SerialPort(std::convert::Infallible);

#[cfg(not(unix))]
impl SerialPort {
    /// Refused: serial ports are supported on Unix only.
    pub fn open(line: &SerialLine) -> Result<SerialPort, SerialError> {
        Err(SerialError::Unsupported {
            path: line.path.clone(),
        })
    }

    /// Never called: no port opens.
    pub async fn read(&self, _buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0 {}
    }

    /// Never called: no port opens.
    pub async fn write_all(&self, _bytes: &[u8]) -> std::io::Result<()> {
        match self.0 {}
    }
}

/// Serves `handler` as a Modbus RTU device on `port` (the simulator of
/// `mbaps server --serial`: no security, for labs and tests), answering
/// the units of `server` ([`RtuServer`]). Runs until the port fails or
/// reads an end (an `Err` for a failure).
pub async fn serve_rtu<H: Handler>(
    port: SerialPort,
    mut server: RtuServer,
    handler: H,
) -> std::io::Result<()> {
    let mut buf = [0u8; 512];
    let mut out = Vec::new();
    loop {
        let n = port.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        server.handle_bytes(&buf[..n], &handler);
        out.clear();
        server.poll_transmit(&mut out);
        if !out.is_empty() {
            port.write_all(&out).await?;
        }
    }
}

/// Whether `path` names the same port as `other` (for routes sharing a
/// bus): the same path, or two paths to one device file.
pub(crate) fn same_port(path: &Path, other: &Path) -> bool {
    path == other
        || matches!(
            (std::fs::canonicalize(path), std::fs::canonicalize(other)),
            (Ok(a), Ok(b)) if a == b
        )
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A pseudo-terminal's slave path, its master kept open.
    fn pty() -> (std::os::fd::OwnedFd, PathBuf) {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        (master, PathBuf::from(name.to_string_lossy().into_owned()))
    }

    #[tokio::test]
    async fn a_missing_port_is_named_with_the_reason() {
        let line = SerialLine::new("/dev/mbaps-no-such-port");
        let error = SerialPort::open(&line).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("/dev/mbaps-no-such-port"), "{text}");
        assert!(text.contains("No such file"), "{text}");
    }

    #[tokio::test]
    async fn parity_a_pseudo_terminal_drops_is_refused_by_name() {
        let (_master, path) = pty();
        let error = SerialPort::open(&SerialLine::new(&path)).unwrap_err();
        match &error {
            SerialError::Mismatch { setting, asked, .. } => {
                assert_eq!((*setting, asked.as_str()), ("parity", "even"))
            }
            other => panic!("{other}"),
        }
        assert!(error.to_string().contains(&*path.to_string_lossy()));
    }

    #[tokio::test]
    async fn a_port_is_opened_once_and_carries_bytes() {
        let (master, path) = pty();
        let line = SerialLine {
            parity: Parity::None,
            ..SerialLine::new(&path)
        };
        let port = SerialPort::open(&line).unwrap();
        assert!(matches!(
            SerialPort::open(&line),
            Err(SerialError::Exclusive { .. }) | Err(SerialError::Open { .. })
        ));
        port.write_all(&[1, 2, 3]).await.unwrap();
        let mut buf = [0u8; 8];
        let n = rustix::io::read(&master, &mut buf).unwrap();
        assert_eq!(&buf[..n], [1, 2, 3]);
        rustix::io::write(&master, &[9, 8]).unwrap();
        let n = port.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], [9, 8]);
    }
}
