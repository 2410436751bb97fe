//! MBAP framing: the 7-byte header and the streaming ADU decoder.

use crate::error::{CodecError, Field};
use crate::function::limits::{MAX_ADU_LEN, MBAP_HEADER_LEN, MBAP_LENGTH};
use crate::request::Request;
use crate::response::Response;
use crate::wire::Writer;

/// The MBAP header fields a user chooses (Implementation Guide 3.1.3).
///
/// The protocol id is always 0 and the length is derived from the PDU, so
/// neither is stored: a decoded header with any other protocol id is an
/// error, and an encoded one always has the right length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MbapHeader {
    /// Chosen by the client, echoed by the server.
    pub transaction_id: u16,
    /// 0xFF (or 0) for a device reached directly; 1..=247 behind a gateway.
    /// Kept as it is and echoed by the server.
    pub unit_id: u8,
}

/// One application data unit: an MBAP header and the PDU it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adu<'a> {
    /// The header.
    pub header: MbapHeader,
    /// Function code and data, 1..=253 bytes, borrowed from the input.
    pub pdu: &'a [u8],
}

impl<'a> Adu<'a> {
    /// The protocol id: always 0 (Modbus) for a decoded or encoded ADU.
    pub const PROTOCOL_ID: u16 = 0;

    /// The value of the MBAP length field: unit id + PDU.
    pub fn length_field(&self) -> usize {
        1 + self.pdu.len()
    }

    /// Length of the whole ADU on the wire.
    pub fn wire_len(&self) -> usize {
        MBAP_HEADER_LEN + self.pdu.len()
    }

    /// The PDU's function code byte (exception bit included).
    pub fn function_byte(&self) -> u8 {
        self.pdu.first().copied().unwrap_or(0)
    }

    /// Decodes the PDU as a request (server side).
    #[inline]
    pub fn request(&self) -> Result<Request<'a>, CodecError> {
        Request::decode(self.pdu)
    }

    /// Decodes the PDU as a response (client side).
    #[inline]
    pub fn response(&self) -> Result<Response<'a>, CodecError> {
        Response::decode(self.pdu)
    }

    /// Writes the ADU (header and PDU bytes as they are) into `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        let pdu_len = self.pdu.len();
        check_pdu_len(pdu_len)?;
        let mut w = Writer::with_capacity(out, MBAP_HEADER_LEN + pdu_len)?;
        write_header(&mut w, self.header, pdu_len)?;
        w.bytes(self.pdu)?;
        Ok(w.written())
    }
}

/// What [`decode`] found at the start of its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole ADU, and how many bytes of the input it took.
    Frame {
        /// The ADU, borrowing from the input.
        adu: Adu<'a>,
        /// Bytes to drop from the front of the input before the next decode.
        consumed: usize,
    },
    /// The input ends inside an ADU: at least `needed` more bytes are
    /// required (exactly that many once the 6-byte header prefix is in).
    Incomplete {
        /// More bytes required.
        needed: usize,
    },
}

/// Decodes the ADU at the start of a byte stream.
///
/// The stream may hold several ADUs back to back (call again after dropping
/// `consumed` bytes) or end in the middle of one ([`Decoded::Incomplete`]),
/// as TLS records and TCP reads cut it. The length (2..=254) and the
/// protocol id (0) are checked as soon as the first six bytes are in, before
/// any body is waited for, so no peer can make a reader buffer more than
/// [`MAX_ADU_LEN`] bytes.
///
/// Errors: a bad length is [`CodecError::OutOfRange`] on [`Field::Length`]
/// and leaves the stream out of step (close the connection); a non-zero
/// protocol id is [`CodecError::ProtocolId`], whose `frame_len` lets a server
/// discard the ADU silently and go on.
#[inline]
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, CodecError> {
    // Transaction id, protocol id and length: the unit id is not needed to
    // know the frame's extent.
    if buf.len() < 6 {
        return Ok(Decoded::Incomplete {
            needed: MBAP_HEADER_LEN - buf.len(),
        });
    }
    let length = u16::from_be_bytes([buf[4], buf[5]]);
    if !MBAP_LENGTH.contains(&length) {
        return Err(CodecError::OutOfRange {
            function: None,
            field: Field::Length,
            value: u32::from(length),
            min: u32::from(*MBAP_LENGTH.start()),
            max: u32::from(*MBAP_LENGTH.end()),
        });
    }
    let frame_len = 6 + usize::from(length);
    let protocol_id = u16::from_be_bytes([buf[2], buf[3]]);
    if protocol_id != Adu::PROTOCOL_ID {
        return Err(CodecError::ProtocolId {
            value: protocol_id,
            frame_len,
        });
    }
    if buf.len() < frame_len {
        return Ok(Decoded::Incomplete {
            needed: frame_len - buf.len(),
        });
    }
    let header = MbapHeader {
        transaction_id: u16::from_be_bytes([buf[0], buf[1]]),
        unit_id: buf[6],
    };
    Ok(Decoded::Frame {
        adu: Adu {
            header,
            pdu: &buf[MBAP_HEADER_LEN..frame_len],
        },
        consumed: frame_len,
    })
}

/// Encodes a request ADU (header + PDU) into `out`, without an intermediate
/// buffer, and returns its length.
pub fn encode_request(
    header: MbapHeader,
    request: &Request<'_>,
    out: &mut [u8],
) -> Result<usize, CodecError> {
    encode_with(header, out, |pdu| request.encode(pdu))
}

/// Encodes a response ADU (header + PDU) into `out`, without an intermediate
/// buffer, and returns its length.
pub fn encode_response(
    header: MbapHeader,
    response: &Response<'_>,
    out: &mut [u8],
) -> Result<usize, CodecError> {
    encode_with(header, out, |pdu| response.encode(pdu))
}

fn encode_with(
    header: MbapHeader,
    out: &mut [u8],
    encode_pdu: impl FnOnce(&mut [u8]) -> Result<usize, CodecError>,
) -> Result<usize, CodecError> {
    let available = out.len();
    // With less room than a header, the PDU is still encoded into nothing,
    // so that a limit error is reported before a size error.
    let (head, pdu_out) = if available >= MBAP_HEADER_LEN {
        out.split_at_mut(MBAP_HEADER_LEN)
    } else {
        (&mut [][..], &mut [][..])
    };
    let written = encode_pdu(pdu_out).map_err(|err| match err {
        CodecError::InsufficientSize { required, .. } => CodecError::InsufficientSize {
            required: MBAP_HEADER_LEN + required,
            available,
        },
        other => other,
    })?;
    let mut w = Writer::with_capacity(head, MBAP_HEADER_LEN)?;
    write_header(&mut w, header, written)?;
    Ok(MBAP_HEADER_LEN + written)
}

fn check_pdu_len(pdu_len: usize) -> Result<(), CodecError> {
    if (1..=MAX_ADU_LEN - MBAP_HEADER_LEN).contains(&pdu_len) {
        Ok(())
    } else {
        Err(CodecError::OutOfRange {
            function: None,
            field: Field::Length,
            value: u32::try_from(pdu_len + 1).unwrap_or(u32::MAX),
            min: u32::from(*MBAP_LENGTH.start()),
            max: u32::from(*MBAP_LENGTH.end()),
        })
    }
}

fn write_header(w: &mut Writer<'_>, header: MbapHeader, pdu_len: usize) -> Result<(), CodecError> {
    check_pdu_len(pdu_len)?;
    w.u16(header.transaction_id)?;
    w.u16(Adu::PROTOCOL_ID)?;
    // check_pdu_len bounds the length to 254.
    w.u16((pdu_len + 1) as u16)?;
    w.u8(header.unit_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ_HOLDING: [u8; 12] = [
        0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03,
    ];

    #[test]
    fn a_frame_split_anywhere_asks_for_exactly_the_rest() {
        for cut in 0..READ_HOLDING.len() {
            match decode(&READ_HOLDING[..cut]).unwrap() {
                Decoded::Incomplete { needed } if cut < 6 => assert!(cut + needed <= 12),
                Decoded::Incomplete { needed } => assert_eq!(cut + needed, 12),
                Decoded::Frame { .. } => panic!("frame from {cut} bytes"),
            }
        }
    }

    #[test]
    fn two_frames_in_one_buffer_decode_one_after_the_other() {
        let mut buf = [0u8; 24];
        buf[..12].copy_from_slice(&READ_HOLDING);
        buf[12..].copy_from_slice(&READ_HOLDING);
        buf[13] = 0x02;
        let Decoded::Frame { adu, consumed } = decode(&buf).unwrap() else {
            panic!()
        };
        assert_eq!((adu.header.transaction_id, consumed), (1, 12));
        let Decoded::Frame { adu, consumed } = decode(&buf[consumed..]).unwrap() else {
            panic!()
        };
        assert_eq!((adu.header.transaction_id, adu.header.unit_id), (2, 0x11));
        assert_eq!(consumed, 12);
    }

    #[test]
    fn length_is_checked_from_the_header_before_the_body_arrives() {
        for (length, ok) in [
            (0u16, false),
            (1, false),
            (2, true),
            (254, true),
            (255, false),
            (0xFFFF, false),
        ] {
            let header = [0, 1, 0, 0, (length >> 8) as u8, length as u8];
            let result = decode(&header);
            assert_eq!(result.is_ok(), ok, "length {length}");
            if !ok {
                assert_eq!(
                    result.unwrap_err(),
                    CodecError::OutOfRange {
                        function: None,
                        field: Field::Length,
                        value: u32::from(length),
                        min: 2,
                        max: 254
                    }
                );
            }
        }
    }

    #[test]
    fn a_non_modbus_protocol_id_reports_the_frame_length_to_skip() {
        let header = [0, 1, 0, 1, 0, 6];
        assert_eq!(
            decode(&header).unwrap_err(),
            CodecError::ProtocolId {
                value: 1,
                frame_len: 12
            }
        );
    }

    #[test]
    fn a_limit_error_comes_before_a_size_error_whatever_the_buffer() {
        let invalid = Request::ReadCoils {
            address: 0,
            quantity: 2001,
        };
        let header = MbapHeader {
            transaction_id: 1,
            unit_id: 1,
        };
        for size in [0, 3, 7, 8, 260] {
            let err = encode_request(header, &invalid, &mut [0u8; 260][..size]).unwrap_err();
            assert_eq!(err.field(), Field::Quantity, "buffer of {size}");
        }
    }

    #[test]
    fn encode_writes_header_and_pdu_and_refuses_small_buffers() {
        let adu = Adu {
            header: MbapHeader {
                transaction_id: 1,
                unit_id: 0x11,
            },
            pdu: &READ_HOLDING[7..],
        };
        let mut out = [0u8; 12];
        assert_eq!(adu.encode(&mut out), Ok(12));
        assert_eq!(out, READ_HOLDING);
        assert_eq!(
            adu.encode(&mut [0u8; 11]),
            Err(CodecError::InsufficientSize {
                required: 12,
                available: 11
            })
        );
        let request = adu.request().unwrap();
        assert_eq!(encode_request(adu.header, &request, &mut out), Ok(12));
        assert_eq!(out, READ_HOLDING);
        assert_eq!(
            encode_request(adu.header, &request, &mut [0u8; 9]),
            Err(CodecError::InsufficientSize {
                required: 12,
                available: 9
            })
        );
    }
}
