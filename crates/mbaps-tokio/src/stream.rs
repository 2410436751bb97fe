//! A byte stream to a device: a TCP connection (Modbus/TCP, TLS, or RTU
//! over TCP) or a serial port. The gateway's device tasks and the RTU
//! client read and write it the same way.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::serial::SerialPort;

/// A connection to a device: TCP, or a serial port.
pub(crate) enum DeviceStream {
    Tcp(TcpStream),
    Serial(SerialPort),
}

impl DeviceStream {
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            DeviceStream::Tcp(tcp) => tcp.read(buf).await,
            DeviceStream::Serial(port) => port.read(buf).await,
        }
    }

    /// Writes `out` whole: at once if the socket takes it, else within
    /// `timeout` (a device that takes none of our bytes for the timeout is
    /// lost).
    pub(crate) async fn write(&mut self, out: &[u8], timeout: Duration) -> std::io::Result<()> {
        let rest = match self {
            DeviceStream::Tcp(tcp) => match tcp.try_write(out) {
                Ok(n) => &out[n..],
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => out,
                Err(error) => return Err(error),
            },
            DeviceStream::Serial(_) => out,
        };
        if rest.is_empty() {
            return Ok(());
        }
        let write = async {
            match self {
                DeviceStream::Tcp(tcp) => tcp.write_all(rest).await,
                DeviceStream::Serial(port) => port.write_all(rest).await,
            }
        };
        tokio::time::timeout(timeout, write)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}
