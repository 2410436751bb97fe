//! `mbaps server --serial-pty LINK`: the simulator as an RTU device on a
//! new pseudo-terminal, for labs and tests without serial hardware. The
//! simulator holds the terminal's master side; LINK points to its port
//! (the slave side), which the gateway or the field tools open as they
//! would a real one.

use std::path::Path;

use anyhow::{Context, Result};
use mbaps_session::Handler;
use mbaps_session::rtu_server::RtuServer;

/// Makes the pseudo-terminal, points `link` to its port and serves
/// `handler` there until interrupted (SIGINT or SIGTERM end the process).
pub(crate) fn serve(link: &Path, mut server: RtuServer, handler: impl Handler) -> Result<bool> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).context("creating a pseudo-terminal")?;
    grantpt(&master).context("granting the pseudo-terminal")?;
    unlockpt(&master).context("unlocking the pseudo-terminal")?;
    let port = ptsname(&master, Vec::new()).context("naming the pseudo-terminal")?;
    let port = std::path::PathBuf::from(port.to_string_lossy().into_owned());
    // A link left by an earlier run is replaced; anything else is not.
    if let Ok(metadata) = std::fs::symlink_metadata(link) {
        if !metadata.file_type().is_symlink() {
            anyhow::bail!(
                "{} exists and is not a symbolic link: give another --serial-pty path",
                link.display()
            );
        }
        std::fs::remove_file(link).with_context(|| format!("replacing {}", link.display()))?;
    }
    std::os::unix::fs::symlink(&port, link)
        .with_context(|| format!("linking {} to {}", link.display(), port.display()))?;
    println!(
        "listening on {} (the simulator as a Modbus RTU device on the pseudo-terminal {}: open it with --parity none; no security)",
        link.display(),
        port.display()
    );
    let mut buf = [0u8; 512];
    let mut out = Vec::new();
    loop {
        // Nobody has the port open: the master reads an error (EIO) until
        // someone does. Waiting a little keeps that from spinning.
        let n = match rustix::io::read(&master, &mut buf) {
            Ok(n) => n,
            Err(rustix::io::Errno::IO) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            Err(error) => return Err(error).context("reading the pseudo-terminal"),
        };
        server.handle_bytes(&buf[..n], &handler);
        out.clear();
        server.poll_transmit(&mut out);
        let mut rest = &out[..];
        while !rest.is_empty() {
            let written =
                rustix::io::write(&master, rest).context("writing the pseudo-terminal")?;
            rest = &rest[written..];
        }
    }
}
