//! A realistic mix of Modbus/TCP traffic, shared by the codec bench and the
//! allocation test: a SCADA master polling registers and coils, writing a
//! few setpoints, and one exception, with the server's responses.

use mbaps_codec::{
    Bits, ExceptionCode, MbapHeader, Registers, Request, Response, encode_request, encode_response,
};

/// Request and response streams, each a byte stream of ADUs back to back.
pub(crate) struct Mix {
    /// Client to server.
    pub(crate) requests: Vec<u8>,
    /// Server to client.
    pub(crate) responses: Vec<u8>,
}

impl Mix {
    /// The mix repeated `rounds` times (21 request/response pairs a round).
    pub(crate) fn new(rounds: usize) -> Mix {
        let registers: Vec<u16> = (0..125).map(|i| 1000 + i).collect();
        let coils: Vec<bool> = (0..32).map(|i| i % 3 == 0).collect();
        let pairs: Vec<(Request<'_>, Response<'_>)> = vec![
            (
                Request::ReadHoldingRegisters {
                    address: 0,
                    quantity: 10,
                },
                Response::ReadHoldingRegisters {
                    values: Registers::from_values(&registers[..10]),
                },
            ),
            (
                Request::ReadHoldingRegisters {
                    address: 100,
                    quantity: 2,
                },
                Response::ReadHoldingRegisters {
                    values: Registers::from_values(&registers[..2]),
                },
            ),
            (
                Request::ReadHoldingRegisters {
                    address: 200,
                    quantity: 60,
                },
                Response::ReadHoldingRegisters {
                    values: Registers::from_values(&registers[..60]),
                },
            ),
            (
                Request::ReadHoldingRegisters {
                    address: 0,
                    quantity: 125,
                },
                Response::ReadHoldingRegisters {
                    values: Registers::from_values(&registers),
                },
            ),
            (
                Request::ReadInputRegisters {
                    address: 30,
                    quantity: 20,
                },
                Response::ReadInputRegisters {
                    values: Registers::from_values(&registers[..20]),
                },
            ),
            (
                Request::ReadInputRegisters {
                    address: 0,
                    quantity: 4,
                },
                Response::ReadInputRegisters {
                    values: Registers::from_values(&registers[..4]),
                },
            ),
            (
                Request::ReadCoils {
                    address: 0,
                    quantity: 16,
                },
                Response::ReadCoils {
                    values: Bits::from_bools(&coils[..16]),
                },
            ),
            (
                Request::ReadDiscreteInputs {
                    address: 0,
                    quantity: 32,
                },
                Response::ReadDiscreteInputs {
                    values: Bits::from_bools(&coils),
                },
            ),
            (
                Request::WriteSingleRegister {
                    address: 10,
                    value: 1234,
                },
                Response::WriteSingleRegister {
                    address: 10,
                    value: 1234,
                },
            ),
            (
                Request::WriteSingleCoil {
                    address: 3,
                    value: true,
                },
                Response::WriteSingleCoil {
                    address: 3,
                    value: true,
                },
            ),
            (
                Request::WriteMultipleRegisters {
                    address: 20,
                    values: Registers::from_values(&registers[..8]),
                },
                Response::WriteMultipleRegisters {
                    address: 20,
                    quantity: 8,
                },
            ),
            (
                Request::WriteMultipleCoils {
                    address: 0,
                    values: Bits::from_bools(&coils[..10]),
                },
                Response::WriteMultipleCoils {
                    address: 0,
                    quantity: 10,
                },
            ),
            (
                Request::ReadWriteMultipleRegisters {
                    read_address: 0,
                    read_quantity: 6,
                    write_address: 50,
                    values: Registers::from_values(&registers[..3]),
                },
                Response::ReadWriteMultipleRegisters {
                    values: Registers::from_values(&registers[..6]),
                },
            ),
            (
                Request::MaskWriteRegister {
                    address: 4,
                    and_mask: 0xF2,
                    or_mask: 0x25,
                },
                Response::MaskWriteRegister {
                    address: 4,
                    and_mask: 0xF2,
                    or_mask: 0x25,
                },
            ),
            (
                Request::ReadHoldingRegisters {
                    address: 9000,
                    quantity: 10,
                },
                Response::exception(0x03, ExceptionCode::IllegalDataAddress),
            ),
            (
                Request::ReadHoldingRegisters {
                    address: 0,
                    quantity: 10,
                },
                Response::ReadHoldingRegisters {
                    values: Registers::from_values(&registers[..10]),
                },
            ),
            (
                Request::ReadHoldingRegisters {
                    address: 10,
                    quantity: 10,
                },
                Response::ReadHoldingRegisters {
                    values: Registers::from_values(&registers[..10]),
                },
            ),
            (
                Request::ReadHoldingRegisters {
                    address: 20,
                    quantity: 10,
                },
                Response::ReadHoldingRegisters {
                    values: Registers::from_values(&registers[..10]),
                },
            ),
            (
                Request::ReadInputRegisters {
                    address: 0,
                    quantity: 2,
                },
                Response::ReadInputRegisters {
                    values: Registers::from_values(&registers[..2]),
                },
            ),
            (
                Request::ReadCoils {
                    address: 100,
                    quantity: 8,
                },
                Response::ReadCoils {
                    values: Bits::from_bools(&coils[..8]),
                },
            ),
            (
                Request::ReadFifoQueue { address: 0x04DE },
                Response::ReadFifoQueue {
                    values: Registers::from_values(&registers[..2]),
                },
            ),
        ];
        let mut requests = Vec::new();
        let mut responses = Vec::new();
        let mut buf = [0u8; 260];
        for round in 0..rounds {
            for (i, (request, response)) in pairs.iter().enumerate() {
                let header = MbapHeader {
                    transaction_id: (round * pairs.len() + i) as u16,
                    unit_id: 0xFF,
                };
                let n = encode_request(header, request, &mut buf).expect("mix request encodes");
                requests.extend_from_slice(&buf[..n]);
                let n = encode_response(header, response, &mut buf).expect("mix response encodes");
                responses.extend_from_slice(&buf[..n]);
            }
        }
        Mix {
            requests,
            responses,
        }
    }

    /// Total bytes of both streams.
    pub(crate) fn bytes(&self) -> usize {
        self.requests.len() + self.responses.len()
    }
}

/// Decodes every ADU of both streams down to typed PDUs; returns a checksum
/// of what it saw so that nothing can be optimised away.
pub(crate) fn decode_all(mix: &Mix) -> u64 {
    let mut sum = 0u64;
    let mut rest = &mix.requests[..];
    while let Ok(mbaps_codec::Decoded::Frame { adu, consumed }) = mbaps_codec::decode(rest) {
        let request = adu.request().expect("mix request decodes");
        sum = sum
            .wrapping_add(u64::from(adu.header.transaction_id) + request.function().code() as u64);
        rest = &rest[consumed..];
    }
    let mut rest = &mix.responses[..];
    while let Ok(mbaps_codec::Decoded::Frame { adu, consumed }) = mbaps_codec::decode(rest) {
        let response = adu.response().expect("mix response decodes");
        sum = sum
            .wrapping_add(u64::from(adu.header.transaction_id) + response.function_code() as u64);
        rest = &rest[consumed..];
    }
    sum
}

/// Decodes both streams and encodes every ADU again into `out`, frame by
/// frame; returns the bytes written.
#[allow(dead_code)] // used by the allocation test, not by the bench
pub(crate) fn reencode_all(mix: &Mix, out: &mut [u8]) -> usize {
    let mut written = 0;
    let mut rest = &mix.requests[..];
    while let Ok(mbaps_codec::Decoded::Frame { adu, consumed }) = mbaps_codec::decode(rest) {
        let request = adu.request().expect("mix request decodes");
        written += encode_request(adu.header, &request, &mut out[written..]).expect("fits");
        rest = &rest[consumed..];
    }
    let mut rest = &mix.responses[..];
    while let Ok(mbaps_codec::Decoded::Frame { adu, consumed }) = mbaps_codec::decode(rest) {
        let response = adu.response().expect("mix response decodes");
        written += encode_response(adu.header, &response, &mut out[written..]).expect("fits");
        rest = &rest[consumed..];
    }
    written
}
