//! Random sequences of operations on a client/server pair (send a request,
//! answer one, deliver k bytes either way so records split anywhere,
//! advance the clock, close either side), with the invariants a user relies
//! on: every request ends in exactly one outcome (response, invalid,
//! timeout or abort), no transaction id is reused while outstanding, each
//! server request is answered at most once, and nothing arrives after close.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use mbaps_codec::{Registers, Request, Response};
use mbaps_session::{Client, ClientEvent, RequestId, Server, ServerEvent, SessionError};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Send { read: bool, quantity: u16 },
    Answer { which: usize },
    ToServer { bytes: usize },
    ToClient { bytes: usize },
    Advance { millis: u64 },
    CloseClient,
    CloseServer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 1..=20u16).prop_map(|(read, quantity)| Op::Send { read, quantity }),
        3 => (0..8usize).prop_map(|which| Op::Answer { which }),
        4 => (1..400usize).prop_map(|bytes| Op::ToServer { bytes }),
        4 => (1..400usize).prop_map(|bytes| Op::ToClient { bytes }),
        1 => (0..3000u64).prop_map(|millis| Op::Advance { millis }),
        1 => Just(Op::CloseClient),
        1 => Just(Op::CloseServer),
    ]
}

struct World {
    server: Server,
    client: Client,
    now: std::time::Instant,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// Client transaction ids in flight, and every outcome seen per id.
    in_flight: HashSet<u16>,
    outcomes: HashMap<u16, usize>,
    sent: usize,
    /// Server requests waiting for an answer.
    waiting: Vec<(RequestId, Request<'static>)>,
    answered: HashSet<RequestId>,
    client_closed: bool,
    close_called: bool,
    server_closed: bool,
}

impl World {
    fn new() -> World {
        let server = server_builder().build().unwrap();
        let client = client_builder("operator")
            .max_outstanding(8)
            .build()
            .unwrap();
        let now = virtual_epoch();
        World {
            server: Server::new(&server, now).unwrap(),
            client: Client::new(&client, localhost(), now).unwrap(),
            now,
            to_server: Vec::new(),
            to_client: Vec::new(),
            in_flight: HashSet::new(),
            outcomes: HashMap::new(),
            sent: 0,
            waiting: Vec::new(),
            answered: HashSet::new(),
            client_closed: false,
            close_called: false,
            server_closed: false,
        }
    }

    fn transmit(&mut self) {
        self.client.poll_transmit(&mut self.to_server);
        self.server.poll_transmit(&mut self.to_client);
    }

    fn drain(&mut self) {
        while let Some(event) = self.client.poll_event() {
            assert!(!self.client_closed, "client event after Closed: {event:?}");
            match event {
                ClientEvent::Response { transaction_id, .. }
                | ClientEvent::Invalid { transaction_id, .. }
                | ClientEvent::Timeout { transaction_id }
                | ClientEvent::Aborted { transaction_id } => {
                    assert!(
                        self.in_flight.remove(&transaction_id),
                        "outcome for {transaction_id} not in flight"
                    );
                    *self.outcomes.entry(transaction_id).or_default() += 1;
                }
                ClientEvent::Closed(_) => self.client_closed = true,
                ClientEvent::Connected(_) => {}
            }
        }
        while let Some(event) = self.server.poll_event() {
            assert!(!self.server_closed, "server event after Closed: {event:?}");
            match event {
                ServerEvent::Request { id, pdu, .. } => {
                    let request = match pdu.request().unwrap() {
                        Request::ReadHoldingRegisters { address, quantity } => {
                            Request::ReadHoldingRegisters { address, quantity }
                        }
                        Request::WriteSingleRegister { address, value } => {
                            Request::WriteSingleRegister { address, value }
                        }
                        other => panic!("unexpected {other:?}"),
                    };
                    self.waiting.push((id, request));
                }
                ServerEvent::Closed(_) => {
                    self.server_closed = true;
                    self.waiting.clear();
                }
                ServerEvent::Denied { .. } | ServerEvent::Rejected { .. } => {
                    panic!("an operator's valid request was refused: {event:?}")
                }
                _ => {}
            }
        }
        self.transmit();
    }

    fn apply(&mut self, op: &Op) -> Result<(), SessionError> {
        match *op {
            Op::Send { read, quantity } => {
                let request = if read {
                    Request::ReadHoldingRegisters {
                        address: 0,
                        quantity,
                    }
                } else {
                    Request::WriteSingleRegister {
                        address: quantity,
                        value: 1,
                    }
                };
                match self.client.send_request(self.now, 1, &request) {
                    Ok(txn) => {
                        assert!(
                            self.in_flight.insert(txn),
                            "transaction id {txn} reused while outstanding"
                        );
                        self.sent += 1;
                    }
                    Err(SessionError::TooManyOutstanding(n)) => assert_eq!(n, 8),
                    // Refused only once the client closed, or its session ended.
                    Err(SessionError::Closed) => assert!(self.close_called || self.client_closed),
                    Err(err) => return Err(err),
                }
            }
            Op::Answer { which } => {
                if !self.waiting.is_empty() {
                    let (id, request) = self.waiting.remove(which % self.waiting.len());
                    let values = [7u16; 20];
                    let response = match request {
                        Request::ReadHoldingRegisters { quantity, .. } => {
                            Response::ReadHoldingRegisters {
                                values: Registers::from_values(&values[..usize::from(quantity)]),
                            }
                        }
                        Request::WriteSingleRegister { address, value } => {
                            Response::WriteSingleRegister { address, value }
                        }
                        _ => unreachable!(),
                    };
                    assert!(self.answered.insert(id), "request answered twice");
                    match self.server.send_response(self.now, id, &response) {
                        Ok(()) | Err(SessionError::Closed) => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            Op::ToServer { bytes } => {
                let n = bytes.min(self.to_server.len());
                let taken = self.server.handle_tls(self.now, &self.to_server[..n])?;
                self.to_server.drain(..taken);
            }
            Op::ToClient { bytes } => {
                let n = bytes.min(self.to_client.len());
                let chunk: Vec<u8> = self.to_client.drain(..n).collect();
                self.client.handle_tls(self.now, &chunk)?;
            }
            Op::Advance { millis } => {
                self.now += Duration::from_millis(millis);
                // Each side runs its own timers, whatever the other does.
                let server = self.server.handle_timeout(self.now);
                let client = self.client.handle_timeout(self.now);
                server.and(client)?;
            }
            Op::CloseClient => {
                self.close_called = true;
                self.client.close(self.now);
            }
            Op::CloseServer => self.server.close(self.now),
        }
        self.drain();
        Ok(())
    }

    /// Delivers everything and lets every deadline pass.
    fn settle(&mut self) -> Result<(), SessionError> {
        for _ in 0..100 {
            self.transmit();
            if self.to_server.is_empty() && self.to_client.is_empty() {
                break;
            }
            let taken = self.server.handle_tls(self.now, &self.to_server)?;
            self.to_server.drain(..taken);
            let to_client: Vec<u8> = self.to_client.drain(..).collect();
            self.client.handle_tls(self.now, &to_client)?;
            self.drain();
        }
        // As an adapter does: a side whose session is over closes its
        // socket, and the other side reads EOF.
        if self.server.is_closed() && !self.client.is_closed() {
            self.client.handle_eof(self.now)?;
        }
        if self.client.is_closed() && !self.server.is_closed() {
            self.server.handle_eof(self.now)?;
        }
        self.drain();
        self.now += Duration::from_secs(6);
        self.client.handle_timeout(self.now)?;
        self.drain();
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_request_ends_once_and_ids_are_never_reused_while_outstanding(ops in proptest::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        world.transmit();
        let mut failed = false;
        for op in &ops {
            match world.apply(op) {
                Ok(()) => {}
                // The model may hold bytes back for longer than the
                // handshake timeout: the one fatal error it can cause.
                Err(SessionError::HandshakeTimeout(_)) => {
                    world.drain();
                    failed = true;
                    break;
                }
                Err(err) => panic!("{op:?}: {err}"),
            }
        }
        if !failed {
            world.settle().unwrap();
        }
        prop_assert!(world.in_flight.is_empty(), "still in flight: {:?}", world.in_flight);
        prop_assert_eq!(world.outcomes.values().sum::<usize>(), world.sent);
        prop_assert!(world.outcomes.values().all(|&n| n >= 1));
    }
}
