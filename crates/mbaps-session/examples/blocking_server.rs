//! A Modbus/TCP Security server on a blocking `std::net` loop, driving the
//! sans-IO session by hand: the loop to copy into a device or an existing
//! event loop. The application is the simulator's register map (register n
//! holds n); a `Handler` of your own goes in its place.
//!
//! ```sh
//! cargo run -q -p mbaps-cli -- certs --out certs
//! cargo run -p mbaps-session --example blocking_server -- certs examples/policy.toml 127.0.0.1:8802
//! ```
// The adapter owns the clock; the session only ever gets `now` as an argument.
#![allow(clippy::disallowed_methods)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use mbaps_authz::Policy;
use mbaps_session::{Handler, Server, ServerConfig, ServerEvent};
use mbaps_session::{load_certificates, load_private_key};
use mbaps_simulator::{RegisterMap, Tables};

/// One connection, start to end: the run loop of the crate's docs.
fn serve(
    config: &ServerConfig,
    handler: &dyn Handler,
    mut socket: TcpStream,
) -> std::io::Result<()> {
    let mut session = Server::new(config, Instant::now()).map_err(std::io::Error::other)?;
    let (mut buf, mut input, mut out) = ([0u8; 16 * 1024], Vec::new(), Vec::new());
    // A client that stops reading must not hold this thread for ever.
    socket.set_write_timeout(Some(Duration::from_secs(10)))?;
    loop {
        if !input.is_empty() && session.wants_read() {
            let taken = session.handle_tls(Instant::now(), &input);
            input.drain(..taken);
        }
        session.answer_requests(Instant::now(), handler);
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::Authenticated { role, .. } => println!("session up: role {role:?}"),
                // The requests the session refused itself (0x01, R-31).
                ServerEvent::Answered(record) => {
                    println!("function 0x{:02X} {}", record.function, record.verdict)
                }
                ServerEvent::Closed(reason) => {
                    println!("session over ({}): {reason}", reason.label())
                }
                _ => {}
            }
        }
        out.clear();
        session.poll_transmit(&mut out);
        socket.write_all(&out)?;
        if session.is_closed() {
            return Ok(());
        }
        if !input.is_empty() && session.wants_read() {
            continue;
        }
        let wait = session
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        socket.set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1))))?;
        match socket.read(&mut buf) {
            Ok(0) => session.handle_eof(Instant::now()),
            Ok(n) => input.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                session.handle_timeout(Instant::now())
            }
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [certs, policy, listen] = &args[..] else {
        return Err("usage: blocking_server CERTS-DIR POLICY.toml LISTEN-ADDRESS".into());
    };
    let certs = Path::new(certs);
    let config = ServerConfig::builder(
        load_certificates(&certs.join("ca.pem"))?,
        load_certificates(&certs.join("server-chain.pem"))?,
        load_private_key(&certs.join("server.key"))?,
        Policy::load(Path::new(policy))?,
    )
    .build()?;
    let registers = RegisterMap::new(Tables::preset());
    let listener = TcpListener::bind(listen)?;
    println!("listening on {}", listener.local_addr()?);
    // Unbounded threads for brevity: mbaps-std's StdServer bounds them.
    std::thread::scope(|threads| {
        for socket in listener.incoming().flatten() {
            let (config, registers) = (&config, &registers);
            threads.spawn(move || {
                if let Err(error) = serve(config, registers, socket) {
                    println!("connection lost: {error}");
                }
            });
        }
    });
    Ok(())
}
