//! A tokio Modbus/TCP Security server with an application of its own: a
//! small meter. Holding registers 0..100 are settings (register n holds n
//! at start; 0x03 reads them, 0x06 and 0x10 write them, and each write is
//! printed with the role that made it); input registers 0 and 1 are the
//! seconds since start (0x04, high word first). The handler answers at
//! once, on the session's task: the fast path for an application that
//! never waits.
//!
//! ```sh
//! cargo run -q -p mbaps-cli -- certs --out certs
//! cargo run -p mbaps-tokio --example server -- certs examples/policy.toml 127.0.0.1:8802
//! ```
// The application reads the clock; the sessions never do.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use mbaps_authz::Policy;
use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::{Handler, Reply, RequestContext, ServerConfig};
use mbaps_session::{load_certificates, load_private_key};
use mbaps_tokio::TokioServer;

/// The meter: its settings and when it started.
struct Meter {
    settings: Mutex<[u16; 100]>,
    started: Instant,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            settings: Mutex::new(std::array::from_fn(|n| n as u16)),
            started: Instant::now(),
        }
    }
}

/// The settings `address` and the `count` after it, or exception 0x02 (an
/// address the meter does not have) if any is past the end.
fn span(address: u16, count: usize) -> Result<std::ops::Range<usize>, ExceptionCode> {
    let start = usize::from(address);
    (start + count <= 100)
        .then_some(start..start + count)
        .ok_or(ExceptionCode::IllegalDataAddress)
}

impl Handler for Meter {
    fn handle(
        &self,
        context: &RequestContext<'_>,
        request: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        // The session authorized the request already; the role is there
        // for the application's own records.
        let role = context.role.map_or("(no role)", |role| role.as_str());
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        match *request {
            Request::ReadHoldingRegisters { address, quantity } => {
                let values = &settings[span(address, quantity.into())?];
                reply.send(&Response::ReadHoldingRegisters {
                    values: Registers::from_values(values),
                })
            }
            Request::WriteSingleRegister { address, value } => {
                settings[span(address, 1)?][0] = value;
                println!("{role} set register {address} to {value}");
                reply.send(&Response::WriteSingleRegister { address, value })
            }
            Request::WriteMultipleRegisters { address, values } => {
                let slots = &mut settings[span(address, values.len())?];
                for (slot, value) in slots.iter_mut().zip(values) {
                    *slot = value;
                }
                println!("{role} set registers {address}.. to {values:?}");
                let quantity = values.len() as u16;
                reply.send(&Response::WriteMultipleRegisters { address, quantity })
            }
            Request::ReadInputRegisters { address, quantity } => {
                let seconds = self.started.elapsed().as_secs() as u32;
                let inputs = [(seconds >> 16) as u16, seconds as u16];
                let values = inputs
                    .get(usize::from(address)..usize::from(address) + usize::from(quantity))
                    .ok_or(ExceptionCode::IllegalDataAddress)?;
                reply.send(&Response::ReadInputRegisters {
                    values: Registers::from_values(values),
                })
            }
            // Everything else the policy may allow, the meter does not do.
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [certs, policy, listen] = &args[..] else {
        return Err("usage: server CERTS-DIR POLICY.toml LISTEN-ADDRESS".into());
    };
    let certs = Path::new(certs);
    let config = ServerConfig::builder(
        load_certificates(&certs.join("ca.pem"))?,
        load_certificates(&certs.join("server-chain.pem"))?,
        load_private_key(&certs.join("server.key"))?,
        Policy::load(Path::new(policy))?,
    )
    .build()?;
    let server = TokioServer::bind(listen.as_str(), config, Meter::new())
        .await?
        // Who connected, with which role, what was denied, how it ended.
        .on_log(|entry| println!("{entry}"));
    println!("listening on {}", server.local_addr()?);
    // Ctrl-C: stop accepting, let the sessions finish their requests.
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
