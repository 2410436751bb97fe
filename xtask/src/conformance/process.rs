//! Child processes for the conformance runs: every wait is bounded, and a
//! peer started in the background is killed when its guard is dropped, so
//! a failing check never leaves a server running.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a finished (or killed) command printed, and whether it succeeded.
pub(crate) struct Finished {
    /// Exit status 0 within the time allowed.
    pub(crate) success: bool,
    /// Stdout, lossily decoded.
    pub(crate) stdout: String,
    /// Stdout then stderr, lossily decoded.
    pub(crate) output: String,
}

/// Runs `command` with stdin closed and waits at most `limit`; a command
/// still running then is killed, with every process it started, and
/// reported as failed. The output is read on threads, so a chatty command
/// cannot block on a full pipe, and at most 5 s more is spent collecting
/// it (a process that escaped its group may hold the pipe open).
#[allow(clippy::disallowed_methods)] // a build tool bounding a real process
pub(crate) fn run_bounded(command: &mut Command, limit: Duration) -> Result<Finished> {
    own_process_group(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let collect = |pipe: mpsc::Receiver<String>| {
        pipe.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| "(output not collected: the pipe stayed open)".into())
    };
    let stdout = collect(stdout);
    let mut output = stdout.clone();
    output.push_str(&collect(stderr));
    if status.is_none() {
        output.push_str(&format!("\n(killed after {} s)", limit.as_secs()));
    }
    Ok(Finished {
        success: status.is_some_and(|s| s.success()),
        stdout,
        output,
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = sender.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    receiver
}

/// Starts the command in a process group of its own (on Unix), so that a
/// kill reaches what it started too (pip's and venv's helpers, cargo's).
fn own_process_group(command: &mut Command) {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(command, 0);
    #[cfg(not(unix))]
    let _ = command;
}

/// Kills the child's process group (the child alone elsewhere) and reaps
/// the child.
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        // The group id is the child's pid (`process_group(0)`); `kill`
        // needs no unsafe code.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A peer running in the background: killed on drop. Its output goes to a
/// log file, read back with [`Background::log`] for the checks and for the
/// error message when one fails.
pub(crate) struct Background {
    child: Child,
    log: PathBuf,
    /// Held open: `openssl s_server` stops when its stdin ends.
    _stdin: Option<ChildStdin>,
}

/// How to tell that a peer started in the background is ready.
pub(crate) enum Ready<'a> {
    /// The address accepts a TCP connection.
    Listening(SocketAddr),
    /// The log holds this text (for `s_server -naccept 1`, which a test
    /// connection would use up).
    Logged(&'a str),
}

impl Background {
    /// Starts `command` with its output in `log` and waits (at most 20 s)
    /// until `address` accepts connections.
    pub(crate) fn start(command: &mut Command, log: &Path, address: SocketAddr) -> Result<Self> {
        Self::start_when(command, log, &Ready::Listening(address))
    }

    /// Starts `command` with its output in `log` and waits (at most 20 s)
    /// until it is `ready`.
    #[allow(clippy::disallowed_methods)] // waits for a real server
    pub(crate) fn start_when(command: &mut Command, log: &Path, ready: &Ready<'_>) -> Result<Self> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        let stdin = child.stdin.take();
        let mut peer = Background {
            child,
            log: log.to_path_buf(),
            _stdin: stdin,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let is_ready = match ready {
                Ready::Listening(address) => {
                    TcpStream::connect_timeout(address, Duration::from_millis(200)).is_ok()
                }
                Ready::Logged(text) => peer.log().contains(text),
            };
            if is_ready {
                return Ok(peer);
            }
            if let Some(status) = peer.child.try_wait()? {
                bail!(
                    "{:?} exited with {status}: {}",
                    command.get_program(),
                    peer.log()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{:?} was not ready within 20 s: {}",
                    command.get_program(),
                    peer.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the peer has written so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits at most `limit` for the peer to exit on its own (`s_server
    /// -naccept 1` does after its one connection), then kills it.
    #[allow(clippy::disallowed_methods)] // a build tool bounding a real process
    pub(crate) fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        kill_group(&mut self.child);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// A loopback address with a port nobody listens on right now. Another
/// process could take it before our server binds it; on a CI machine's
/// loopback that is rare enough, and the checks against it then fail.
pub(crate) fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

#[cfg(all(test, unix))]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use super::run_bounded;

    #[test]
    fn a_command_past_its_limit_is_killed_with_what_it_started() {
        // The background sleep holds the output pipes: without the group
        // kill (or the bounded collection) this would wait 300 s.
        let done = run_bounded(
            Command::new("sh").args(["-c", "echo started; sleep 300 & sleep 300"]),
            Duration::from_millis(500),
        )
        .unwrap();
        assert!(!done.success);
        assert!(done.output.starts_with("started"), "{}", done.output);
        assert!(
            done.output.contains("(killed after 0 s)"),
            "{}",
            done.output
        );
    }

    #[test]
    fn a_command_within_its_limit_reports_its_status_and_output() {
        let done = run_bounded(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(!done.success);
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.output, "out\nerr\n");
    }
}
