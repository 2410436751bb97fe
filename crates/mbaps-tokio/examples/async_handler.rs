//! A tokio Modbus/TCP Security server whose application answers later:
//! its registers live in a store that takes time to answer (here a
//! stand-in that waits 50 ms, in practice a database or a device on a
//! slow link). With an [`AsyncHandler`] each request's answer is a task of
//! its own, so no runtime worker waits and one session's requests are
//! answered together, up to its window (16 by default): eight reads in
//! flight take one wait, not eight.
//!
//! Holding registers 0..100 (register n holds n at start), read with 0x03
//! and written with 0x06.
//!
//! ```sh
//! cargo run -q -p mbaps-cli -- certs --out certs
//! cargo run -p mbaps-tokio --example async_handler -- certs examples/policy.toml 127.0.0.1:8802
//! ```
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mbaps_authz::Policy;
use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::{Pdu, ServerConfig, load_certificates, load_private_key};
use mbaps_tokio::{AsyncHandler, IncomingRequest, Later, TokioServer};

/// The slow store: registers behind a delay.
#[derive(Clone)]
struct SlowStore {
    registers: Arc<Mutex<Vec<u16>>>,
    delay: Duration,
}

impl SlowStore {
    /// What the store answers to `request`, after its delay.
    async fn answer(self, request: IncomingRequest) -> Result<Pdu, ExceptionCode> {
        tokio::time::sleep(self.delay).await;
        // The request was decoded (and authorized) by the session already.
        let request = request
            .request()
            .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
        // The lock is never held across an await.
        let mut registers = self.registers.lock().unwrap_or_else(|p| p.into_inner());
        let response = match request {
            Request::ReadHoldingRegisters { address, quantity } => {
                let (start, count) = (usize::from(address), usize::from(quantity));
                let values = registers
                    .get(start..start + count)
                    .ok_or(ExceptionCode::IllegalDataAddress)?;
                Pdu::encode_response(&Response::ReadHoldingRegisters {
                    values: Registers::from_values(values),
                })
            }
            Request::WriteSingleRegister { address, value } => {
                *registers
                    .get_mut(usize::from(address))
                    .ok_or(ExceptionCode::IllegalDataAddress)? = value;
                Pdu::encode_response(&Response::WriteSingleRegister { address, value })
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        response.map_err(|_| ExceptionCode::ServerDeviceFailure)
    }
}

impl AsyncHandler for SlowStore {
    fn handle(
        &self,
        request: IncomingRequest,
    ) -> impl Future<Output = Result<Pdu, ExceptionCode>> + Send + 'static {
        // The future owns what it needs: it outlives this call.
        self.clone().answer(request)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [certs, policy, listen] = &args[..] else {
        return Err("usage: async_handler CERTS-DIR POLICY.toml LISTEN-ADDRESS".into());
    };
    let certs = Path::new(certs);
    let config = ServerConfig::builder(
        load_certificates(&certs.join("ca.pem"))?,
        load_certificates(&certs.join("server-chain.pem"))?,
        load_private_key(&certs.join("server.key"))?,
        Policy::load(Path::new(policy))?,
    )
    .build()?;
    let store = SlowStore {
        registers: Arc::new(Mutex::new((0..100).collect())),
        delay: Duration::from_millis(50),
    };
    let server = TokioServer::bind(listen.as_str(), config, Later(store))
        .await?
        .on_log(|entry| println!("{entry}"));
    println!("listening on {}", server.local_addr()?);
    server
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
