//! A steady-state request/response loop over an in-memory pair, shared by
//! the allocation test and the round-trip bench: every buffer is reused.
#![allow(dead_code, unreachable_pub)]

use mbaps_codec::{ExceptionCode, Registers, Request, Response};
use mbaps_session::{
    Client, ClientConfig, ClientEvent, Handler, Reply, RequestContext, Server, ServerConfig,
    ServerEvent, TlsVersions,
};

use super::*;

/// How the server's application answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answering {
    /// Takes each request as an event (an owned PDU) and answers it with
    /// `send_response`: what an application that answers later does.
    Events,
    /// A `Handler` called by `answer_requests`: the request borrowed from
    /// the receive buffer, the response encoded straight into the output.
    Handler,
}

/// Answers every read with [`VALUES`].
struct TenRegisters;

impl Handler for TenRegisters {
    fn handle(
        &self,
        _: &RequestContext<'_>,
        _: &Request<'_>,
        reply: &mut Reply<'_>,
    ) -> Result<(), ExceptionCode> {
        reply.send(&Response::ReadHoldingRegisters {
            values: Registers::from_values(&VALUES),
        })
    }
}

pub struct RoundTrips {
    server: Server,
    client: Client,
    now: std::time::Instant,
    wire: Vec<u8>,
}

const VALUES: [u16; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const READ: Request<'static> = Request::ReadHoldingRegisters {
    address: 0,
    quantity: 10,
};

impl RoundTrips {
    pub fn tls(versions: TlsVersions) -> RoundTrips {
        let server = server_builder().versions(versions).build().unwrap();
        let client = client_builder("operator")
            .max_outstanding(16)
            .build()
            .unwrap();
        Self::connect(&server, &client)
    }

    pub fn plain() -> RoundTrips {
        let role = mbaps_authz::Role::new("operator").unwrap();
        let server = ServerConfig::plain(example_policy(), Some(role))
            .build()
            .unwrap();
        let client = ClientConfig::plain().max_outstanding(16).build().unwrap();
        Self::connect(&server, &client)
    }

    fn connect(server: &ServerConfig, client: &ClientConfig) -> RoundTrips {
        let mut pair = Pair::new(server, client);
        pair.drive().unwrap();
        // A plain session is established by its first request.
        let plain = server.tls().is_none();
        assert!(pair.client.is_connected() && (plain || pair.server.is_authenticated()));
        RoundTrips {
            server: pair.server,
            client: pair.client,
            now: pair.now,
            wire: Vec::with_capacity(64 * 1024),
        }
    }

    /// `batches` rounds of `in_flight` reads of 10 holding registers, each
    /// answered from events; returns the responses received.
    pub fn run(&mut self, batches: usize, in_flight: usize) -> usize {
        self.run_answering(batches, in_flight, Answering::Events)
    }

    /// [`RoundTrips::run`], the server answering as `answering` says.
    pub fn run_answering(
        &mut self,
        batches: usize,
        in_flight: usize,
        answering: Answering,
    ) -> usize {
        let mut received = 0;
        for _ in 0..batches {
            for _ in 0..in_flight {
                self.client.send_request(self.now, 1, &READ).unwrap();
            }
            self.wire.clear();
            self.client.poll_transmit(&mut self.wire);
            let taken = self.server.handle_tls(self.now, &self.wire);
            assert_eq!(taken, self.wire.len());
            if answering == Answering::Handler {
                self.server.answer_requests(self.now, &TenRegisters);
            }
            while let Some(event) = self.server.poll_event() {
                if let ServerEvent::Request { id, .. } = event {
                    let response = Response::ReadHoldingRegisters {
                        values: Registers::from_values(&VALUES),
                    };
                    self.server.send_response(self.now, id, &response).unwrap();
                }
            }
            self.wire.clear();
            self.server.poll_transmit(&mut self.wire);
            self.client.handle_tls(self.now, &self.wire);
            while let Some(event) = self.client.poll_event() {
                if let ClientEvent::Response { .. } = event {
                    received += 1;
                }
            }
        }
        received
    }
}
