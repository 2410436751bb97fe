//! A Modbus RTU server, sans-IO: the serial side of a device, answering
//! with a [`Handler`]. For labs and tests (`mbaps server --serial`): a
//! serial line has no authentication and no roles, like plain Modbus/TCP.
//!
//! Frames are found by their length rule, past noise and truncated frames
//! (the decoder hunts one byte further after a bad frame, as the gateway's
//! line does). A request to one of the server's units is answered; one to
//! unit 0 is a broadcast, carried out (writes only) and never answered;
//! requests to other units are someone else's and ignored (Serial Line
//! V1.02, 2.2).

use mbaps_codec::rtu::{BROADCAST_UNIT, MAX_RTU_FRAME_LEN, RtuFrame, RtuFrameKind};
use mbaps_codec::{ExceptionCode, MbapHeader, Request, Response};

use crate::event::Pdu;
use crate::handler::{Handler, Reply, RequestContext};
use crate::upstream::rtu::{Received, broadcast_answer};

/// What an [`RtuServer`] saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtuServerCounters {
    /// Requests answered.
    pub answered: u64,
    /// Broadcasts carried out (unanswered).
    pub broadcasts: u64,
    /// Requests to units not this server's: ignored.
    pub other_units: u64,
    /// Frames with a bad CRC.
    pub crc_errors: u64,
}

/// A Modbus RTU server (see the module's documentation).
pub struct RtuServer {
    /// Indexed by unit id: whether this server answers it.
    units: [bool; 256],
    received: Received,
    transmit: Vec<u8>,
    counters: RtuServerCounters,
}

impl RtuServer {
    /// A server answering `units` (1..=247; none given: every unit
    /// 1..=247). Unit 0 is the broadcast address, never answered.
    pub fn new(units: impl IntoIterator<Item = u8>) -> RtuServer {
        let mut table = [false; 256];
        let mut any = false;
        for unit in units {
            table[usize::from(unit)] = true;
            any = true;
        }
        if !any {
            table[1..=247].fill(true);
        }
        table[usize::from(BROADCAST_UNIT)] = false;
        RtuServer {
            units: table,
            received: Received::default(),
            transmit: Vec::new(),
            counters: RtuServerCounters::default(),
        }
    }

    /// What the server saw so far.
    pub fn counters(&self) -> RtuServerCounters {
        RtuServerCounters {
            crc_errors: self.received.crc_errors,
            ..self.counters
        }
    }

    /// Bytes read from the line: every whole request in them is answered
    /// (by `handler`) into [`RtuServer::poll_transmit`].
    pub fn handle_bytes(&mut self, bytes: &[u8], handler: &dyn Handler) {
        self.received.extend(bytes);
        let mut start = 0;
        loop {
            match self.received.next_frame(RtuFrameKind::Request, start) {
                Ok((frame, end)) => {
                    // Fields apart: the frame borrows what was received.
                    Self::serve(
                        &self.units,
                        &mut self.counters,
                        &mut self.transmit,
                        frame,
                        handler,
                    );
                    start = end;
                }
                Err(from) => {
                    self.received.consume(from);
                    return;
                }
            }
        }
    }

    /// Appends the bytes to write to the line; returns how many.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.transmit.len();
        out.append(&mut self.transmit);
        n
    }

    fn serve(
        units: &[bool; 256],
        counters: &mut RtuServerCounters,
        transmit: &mut Vec<u8>,
        frame: RtuFrame<'_>,
        handler: &dyn Handler,
    ) {
        let broadcast = frame.unit_id == BROADCAST_UNIT;
        if !broadcast && !units[usize::from(frame.unit_id)] {
            counters.other_units += 1;
            return;
        }
        let function = frame.function_byte();
        let answer = match frame.request() {
            Ok(request) => {
                if broadcast && broadcast_answer(&Pdu::copy_of(frame.pdu)).is_none() {
                    // Only writes are broadcast: a read to unit 0 is noise.
                    return;
                }
                answer_pdu(handler, frame.unit_id, &request, function)
            }
            Err(error) => match error.exception_code() {
                Some(code) => exception_pdu(function, code),
                None => return,
            },
        };
        if broadcast {
            counters.broadcasts += 1;
            return;
        }
        counters.answered += 1;
        let mut out = [0u8; MAX_RTU_FRAME_LEN];
        let reply = RtuFrame {
            unit_id: frame.unit_id,
            pdu: answer.as_bytes(),
        };
        if let Ok(len) = reply.encode(&mut out) {
            transmit.extend_from_slice(&out[..len]);
        }
    }
}

/// `handler`'s answer to `request` (function byte `function`, to
/// `unit_id`), outside a session: its response, its exception, or 0x04 as
/// a session gives it. No role: a serial line has none.
fn answer_pdu(handler: &dyn Handler, unit_id: u8, request: &Request<'_>, function: u8) -> Pdu {
    let header = MbapHeader {
        transaction_id: 0,
        unit_id,
    };
    let context = RequestContext {
        unit_id,
        transaction_id: 0,
        role: None,
    };
    let mut out = Vec::with_capacity(mbaps_codec::limits::MAX_ADU_LEN);
    let mut reply = Reply::new(&mut out, header, function);
    let result = handler.handle(&context, request, &mut reply);
    reply.finish(result);
    Pdu::copy_of(
        out.get(mbaps_codec::limits::MBAP_HEADER_LEN..)
            .unwrap_or(&[]),
    )
}

fn exception_pdu(function: u8, code: ExceptionCode) -> Pdu {
    Pdu::encode_response(&Response::exception(function, code))
        .unwrap_or_else(|_| Pdu::copy_of(&[function | 0x80, code.code()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers reads with the address as the value; writes are echoed.
    struct Echo;

    impl Handler for Echo {
        fn handle(
            &self,
            _context: &RequestContext<'_>,
            request: &Request<'_>,
            reply: &mut Reply<'_>,
        ) -> Result<(), ExceptionCode> {
            match *request {
                Request::ReadHoldingRegisters { address, .. } => {
                    let values = [address];
                    reply.send(&Response::ReadHoldingRegisters {
                        values: mbaps_codec::Registers::from_values(&values),
                    })
                }
                Request::WriteSingleRegister { address, value } => {
                    reply.send(&Response::WriteSingleRegister { address, value })
                }
                _ => Err(ExceptionCode::IllegalFunction),
            }
        }
    }

    fn frame(unit_id: u8, pdu: &[u8]) -> Vec<u8> {
        let mut out = [0u8; MAX_RTU_FRAME_LEN];
        let len = RtuFrame { unit_id, pdu }.encode(&mut out).unwrap();
        out[..len].to_vec()
    }

    fn answers(server: &mut RtuServer, bytes: &[u8]) -> Vec<u8> {
        server.handle_bytes(bytes, &Echo);
        let mut out = Vec::new();
        server.poll_transmit(&mut out);
        out
    }

    #[test]
    fn its_units_are_answered_others_ignored_and_broadcasts_carried_out_in_silence() {
        let mut server = RtuServer::new([5]);
        let read = [0x03, 0x00, 0x07, 0x00, 0x01];
        assert_eq!(
            answers(&mut server, &frame(5, &read)),
            frame(5, &[0x03, 2, 0, 7])
        );
        assert!(answers(&mut server, &frame(6, &read)).is_empty());
        assert!(answers(&mut server, &frame(0, &[0x06, 0, 1, 0, 2])).is_empty());
        assert!(answers(&mut server, &frame(0, &read)).is_empty());
        let counters = server.counters();
        assert_eq!(
            (counters.answered, counters.other_units, counters.broadcasts),
            (1, 1, 1)
        );
    }

    #[test]
    fn noise_and_split_frames_are_passed_over_and_bad_requests_answered_with_exceptions() {
        let mut server = RtuServer::new([]);
        // A corrupted frame, then a good one, cut across reads: the bad
        // frame counts once, not the false starts inside it.
        let mut corrupted = frame(1, &[0x03, 0x00, 0x07, 0x00, 0x01]);
        corrupted[2] ^= 0x08;
        let good = frame(1, &[0x03, 0x00, 0x09, 0x00, 0x01]);
        let mut bytes = corrupted.clone();
        bytes.extend_from_slice(&good[..3]);
        assert!(answers(&mut server, &bytes).is_empty());
        assert_eq!(answers(&mut server, &good[3..]), frame(1, &[0x03, 2, 0, 9]));
        assert_eq!(server.counters().crc_errors, 1);
        // Noise before a frame.
        let mut bytes = vec![0xFF, 0x00, 0x13];
        bytes.extend_from_slice(&good);
        assert_eq!(answers(&mut server, &bytes), frame(1, &[0x03, 2, 0, 9]));
        // Quantity 0: 0x03, illegal data value; a function not served: 0x01.
        assert_eq!(
            answers(&mut server, &frame(1, &[0x03, 0, 0, 0, 0])),
            frame(1, &[0x83, 0x03])
        );
        assert_eq!(
            answers(&mut server, &frame(1, &[0x07])),
            frame(1, &[0x87, 0x01])
        );
    }
}
