//! Modbus RTU framing (Modbus over Serial Line V1.02, section 2.5.1): the
//! ADU is the unit id, the PDU and a CRC-16, with no header that says how
//! long it is.
//!
//! A serial line delimits frames by silence, which an operating system's
//! reads blur (a USB adapter delivers bytes in bursts) and which does not
//! exist at all when RTU frames are carried over TCP. So the decoder finds
//! where a frame ends from what it carries: the function code, and the byte
//! count of the functions that have one. That needs to know whether the
//! frame is a request or a response ([`RtuFrameKind`]), and it cannot frame
//! a function with no length rule (the user-defined codes, MEI types other
//! than 0x0E): [`CodecError::NoLengthRule`].
//!
//! ```
//! use mbaps_codec::rtu::{RtuDecoded, RtuFrameKind, decode_rtu, encode_rtu_request};
//! use mbaps_codec::Request;
//!
//! // Read holding registers 108..=110 from unit 0x11 (Serial Line V1.02, 2.5.1.2).
//! let mut out = [0u8; mbaps_codec::rtu::MAX_RTU_FRAME_LEN];
//! let request = Request::ReadHoldingRegisters { address: 0x6B, quantity: 3 };
//! let len = encode_rtu_request(0x11, &request, &mut out)?;
//! assert_eq!(&out[..len], [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]);
//!
//! let RtuDecoded::Frame { frame, consumed } = decode_rtu(&out[..len], RtuFrameKind::Request)? else {
//!     unreachable!()
//! };
//! assert_eq!((frame.unit_id, consumed), (0x11, 8));
//! assert_eq!(frame.request()?, request);
//! # Ok::<(), mbaps_codec::CodecError>(())
//! ```

use crate::error::{CodecError, Field};
use crate::function::limits::MAX_PDU_LEN;
use crate::request::Request;
use crate::response::{EXCEPTION_BIT, Response};

/// The longest RTU frame: unit id, a PDU of 253 bytes, CRC (Serial Line
/// V1.02, 2.5.1).
pub const MAX_RTU_FRAME_LEN: usize = 1 + MAX_PDU_LEN + 2;

/// The shortest RTU frame: unit id, function code, CRC.
pub const MIN_RTU_FRAME_LEN: usize = 4;

/// The unit id of a broadcast: every server acts on it, none answers
/// (Serial Line V1.02, 2.2). Only writes may be broadcast.
pub const BROADCAST_UNIT: u8 = 0;

/// The addresses of individual servers on a serial line (Serial Line
/// V1.02, 2.2): 0 is the broadcast, 248..=255 are reserved.
pub const SERVER_UNITS: core::ops::RangeInclusive<u8> = 1..=247;

/// CRC-16/MODBUS of `bytes`: polynomial 0xA001 (0x8005 reflected), initial
/// value 0xFFFF (Serial Line V1.02, 6.2.2). On the wire its low byte comes
/// first.
pub const fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    let mut i = 0;
    while i < bytes.len() {
        crc ^= bytes[i] as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        i += 1;
    }
    crc
}

/// Whether a frame carries a request (a client's, read by a server) or a
/// response (read by a client): their length rules differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RtuFrameKind {
    /// A request, from the client (the serial line's master).
    Request,
    /// A response, from the server (the serial line's slave).
    Response,
}

/// One RTU frame: the unit id and the PDU it carries (the CRC checked and
/// left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtuFrame<'a> {
    /// The server addressed (1..=247), or 0 for a broadcast.
    pub unit_id: u8,
    /// Function code and data, 1..=253 bytes, borrowed from the input.
    pub pdu: &'a [u8],
}

impl<'a> RtuFrame<'a> {
    /// Length of the whole frame on the wire, CRC included.
    pub fn wire_len(&self) -> usize {
        1 + self.pdu.len() + 2
    }

    /// The PDU's function code byte (exception bit included).
    pub fn function_byte(&self) -> u8 {
        self.pdu.first().copied().unwrap_or(0)
    }

    /// Decodes the PDU as a request (server side).
    pub fn request(&self) -> Result<Request<'a>, CodecError> {
        Request::decode(self.pdu)
    }

    /// Decodes the PDU as a response (client side).
    pub fn response(&self) -> Result<Response<'a>, CodecError> {
        Response::decode(self.pdu)
    }

    /// Writes the frame (unit id, PDU bytes as they are, CRC) into `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        check_rtu_pdu_len(self.function_byte(), self.pdu.len())?;
        let len = self.wire_len();
        let Some(frame) = out.get_mut(..len) else {
            return Err(CodecError::InsufficientSize {
                required: len,
                available: out.len(),
            });
        };
        frame[0] = self.unit_id;
        frame[1..1 + self.pdu.len()].copy_from_slice(self.pdu);
        seal(frame);
        Ok(len)
    }
}

/// What [`decode_rtu`] found at the start of its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtuDecoded<'a> {
    /// A whole frame whose CRC is right, and how many bytes it took.
    Frame {
        /// The frame, borrowing from the input.
        frame: RtuFrame<'a>,
        /// Bytes to drop from the front of the input before the next decode.
        consumed: usize,
    },
    /// The input ends inside a frame: at least `needed` more bytes are
    /// required (exactly that many once the length is known).
    Incomplete {
        /// More bytes required.
        needed: usize,
    },
}

/// Decodes the RTU frame at the start of a byte stream.
///
/// The frame's length comes from its function code and byte count (see the
/// module's documentation); it is known, and checked against
/// [`MAX_RTU_FRAME_LEN`], as soon as the bytes that carry it are in, so no
/// peer can make a reader buffer more than 256 bytes.
///
/// Errors, none of which leaves the stream in step (a reader hunts for the
/// next frame, or waits for the line's silence):
/// - [`CodecError::NoLengthRule`]: a function whose length cannot be known
///   (code 0, a user-defined code, an MEI type other than 0x0E, a request
///   with the exception bit);
/// - [`CodecError::OutOfRange`] on [`Field::FrameLength`]: the byte count
///   makes the frame longer than 256 bytes;
/// - [`CodecError::Crc`]: the frame's CRC is not the CRC of its bytes.
pub fn decode_rtu(buf: &[u8], kind: RtuFrameKind) -> Result<RtuDecoded<'_>, CodecError> {
    if buf.len() < 2 {
        return Ok(RtuDecoded::Incomplete {
            needed: MIN_RTU_FRAME_LEN - buf.len(),
        });
    }
    let pdu_len = match pdu_extent(&buf[1..], kind)? {
        Extent::Known(len) => len,
        Extent::AtLeast(len) => {
            // A PDU that must be longer than 253 bytes is refused now.
            check_rtu_pdu_len(buf[1], len)?;
            return Ok(RtuDecoded::Incomplete {
                needed: 1 + len + 2 - buf.len(),
            });
        }
    };
    check_rtu_pdu_len(buf[1], pdu_len)?;
    let frame_len = 1 + pdu_len + 2;
    if buf.len() < frame_len {
        return Ok(RtuDecoded::Incomplete {
            needed: frame_len - buf.len(),
        });
    }
    let computed = crc16(&buf[..frame_len - 2]);
    let received = u16::from_le_bytes([buf[frame_len - 2], buf[frame_len - 1]]);
    if computed != received {
        return Err(CodecError::Crc {
            computed,
            received,
            frame_len,
        });
    }
    Ok(RtuDecoded::Frame {
        frame: RtuFrame {
            unit_id: buf[0],
            pdu: &buf[1..1 + pdu_len],
        },
        consumed: frame_len,
    })
}

/// Encodes a request as an RTU frame into `out`, and returns its length.
pub fn encode_rtu_request(
    unit_id: u8,
    request: &Request<'_>,
    out: &mut [u8],
) -> Result<usize, CodecError> {
    encode_rtu_with(unit_id, out, |pdu| request.encode(pdu))
}

/// Encodes a response as an RTU frame into `out`, and returns its length.
pub fn encode_rtu_response(
    unit_id: u8,
    response: &Response<'_>,
    out: &mut [u8],
) -> Result<usize, CodecError> {
    encode_rtu_with(unit_id, out, |pdu| response.encode(pdu))
}

fn encode_rtu_with(
    unit_id: u8,
    out: &mut [u8],
    encode_pdu: impl FnOnce(&mut [u8]) -> Result<usize, CodecError>,
) -> Result<usize, CodecError> {
    let available = out.len();
    // The PDU is encoded even without room, so that a limit error is
    // reported before a size error (as for MBAP).
    let room = available.saturating_sub(3);
    let pdu_out = match out.get_mut(1..1 + room) {
        Some(pdu_out) => pdu_out,
        None => &mut [][..],
    };
    let pdu_len = encode_pdu(pdu_out).map_err(|err| match err {
        CodecError::InsufficientSize { required, .. } => CodecError::InsufficientSize {
            required: required + 3,
            available,
        },
        other => other,
    })?;
    let frame = &mut out[..1 + pdu_len + 2];
    frame[0] = unit_id;
    seal(frame);
    Ok(frame.len())
}

/// Writes the CRC of everything before the frame's last two bytes into them.
fn seal(frame: &mut [u8]) {
    let body = frame.len() - 2;
    let crc = crc16(&frame[..body]).to_le_bytes();
    frame[body..].copy_from_slice(&crc);
}

fn check_rtu_pdu_len(function: u8, pdu_len: usize) -> Result<(), CodecError> {
    if (1..=MAX_PDU_LEN).contains(&pdu_len) {
        return Ok(());
    }
    Err(CodecError::OutOfRange {
        function: Some(function & !EXCEPTION_BIT),
        field: Field::FrameLength,
        value: u32::try_from(1 + pdu_len + 2).unwrap_or(u32::MAX),
        min: MIN_RTU_FRAME_LEN as u32,
        max: MAX_RTU_FRAME_LEN as u32,
    })
}

/// How long a PDU is, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Extent {
    /// The PDU is this long.
    Known(usize),
    /// At least this many PDU bytes are needed to know.
    AtLeast(usize),
}

/// The length rule of each function code the codec knows, the serial-line
/// ones included (Application Protocol V1.1b3, section 6). `pdu` holds at
/// least the function code.
fn pdu_extent(pdu: &[u8], kind: RtuFrameKind) -> Result<Extent, CodecError> {
    let code = pdu[0];
    // The PDU is `fixed` bytes, then as many as the byte at `at` says.
    let counted = |at: usize, fixed: usize| match pdu.get(at) {
        Some(&count) => Extent::Known(fixed + usize::from(count)),
        None => Extent::AtLeast(at + 1),
    };
    let unframeable = CodecError::NoLengthRule { code };
    if code & EXCEPTION_BIT != 0 {
        return match kind {
            // Function code with the exception bit, exception code.
            RtuFrameKind::Response if code != EXCEPTION_BIT => Ok(Extent::Known(2)),
            _ => Err(unframeable),
        };
    }
    Ok(match (kind, code) {
        (RtuFrameKind::Request, 0x01..=0x06) => Extent::Known(5),
        (RtuFrameKind::Request, 0x07 | 0x0B | 0x0C | 0x11) => Extent::Known(1),
        // Sub-function and one data word: the length every sub-function
        // but "return query data" has, and the one implementations frame.
        (_, 0x08) => Extent::Known(5),
        (RtuFrameKind::Request, 0x0F | 0x10) => counted(5, 6),
        (_, 0x14 | 0x15) => counted(1, 2),
        (_, 0x16) => Extent::Known(7),
        (RtuFrameKind::Request, 0x17) => counted(9, 10),
        (RtuFrameKind::Request, 0x18) => Extent::Known(3),
        (RtuFrameKind::Request, 0x2B) => match pdu.get(1) {
            None => Extent::AtLeast(2),
            Some(0x0E) => Extent::Known(4),
            Some(_) => return Err(unframeable),
        },
        (RtuFrameKind::Response, 0x01..=0x04 | 0x0C | 0x11 | 0x17) => counted(1, 2),
        (RtuFrameKind::Response, 0x05 | 0x06 | 0x0F | 0x10) => Extent::Known(5),
        (RtuFrameKind::Response, 0x07) => Extent::Known(2),
        (RtuFrameKind::Response, 0x0B) => Extent::Known(5),
        (RtuFrameKind::Response, 0x18) => match pdu.get(1..3) {
            Some(count) => Extent::Known(3 + usize::from(u16::from_be_bytes([count[0], count[1]]))),
            None => Extent::AtLeast(3),
        },
        (RtuFrameKind::Response, 0x2B) => device_identification_extent(pdu)?,
        _ => return Err(unframeable),
    })
}

/// Read device identification responses have no byte count: the PDU is
/// walked object by object (function, MEI type, read code, conformity,
/// more follows, next object id, number of objects, then id, length and
/// value of each).
fn device_identification_extent(pdu: &[u8]) -> Result<Extent, CodecError> {
    match pdu.get(1) {
        None => return Ok(Extent::AtLeast(2)),
        Some(0x0E) => {}
        Some(_) => return Err(CodecError::NoLengthRule { code: pdu[0] }),
    }
    let Some(&objects) = pdu.get(6) else {
        return Ok(Extent::AtLeast(7));
    };
    let mut end = 7usize;
    for _ in 0..objects {
        match pdu.get(end + 1) {
            Some(&len) => end += 2 + usize::from(len),
            None => return Ok(Extent::AtLeast(end + 2)),
        }
    }
    Ok(Extent::Known(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames and CRCs from the Modbus over Serial Line specification V1.02
    /// and from pymodbus 3.16.1 (`FramerRTU.compute_CRC`), an independent
    /// implementation: the bytes before the CRC, and the CRC as on the wire.
    const VECTORS: [(&[u8], [u8; 2], RtuFrameKind); 12] = [
        // Serial Line V1.02, 6.2.2: the CRC of 0x02 0x07 is 0x1241.
        (&[0x02, 0x07], [0x41, 0x12], RtuFrameKind::Request),
        (
            &[0x11, 0x03, 0x00, 0x6B, 0x00, 0x03],
            [0x76, 0x87],
            RtuFrameKind::Request,
        ),
        (
            &[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A],
            [0xC5, 0xCD],
            RtuFrameKind::Request,
        ),
        (
            &[0x11, 0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01],
            [0xBF, 0x0B],
            RtuFrameKind::Request,
        ),
        (
            &[
                0x11, 0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02,
            ],
            [0xC6, 0xF0],
            RtuFrameKind::Request,
        ),
        (
            &[0x11, 0x03, 0x06, 0xAE, 0x41, 0x56, 0x52, 0x43, 0x40],
            [0x49, 0xAD],
            RtuFrameKind::Response,
        ),
        (&[0x11, 0x83, 0x02], [0xC1, 0x34], RtuFrameKind::Response),
        (&[0x01, 0x07], [0x41, 0xE2], RtuFrameKind::Request),
        (
            &[0x01, 0x08, 0x00, 0x00, 0xA5, 0x37],
            [0xDA, 0x8D],
            RtuFrameKind::Request,
        ),
        (&[0x11, 0x0B], [0x4C, 0x27], RtuFrameKind::Request),
        (&[0x11, 0x07, 0x00], [0x23, 0xF5], RtuFrameKind::Response),
        (
            &[0x11, 0x2B, 0x0E, 0x01, 0x00],
            [0xB1, 0xB4],
            RtuFrameKind::Request,
        ),
    ];

    fn framed(body: &[u8], crc: [u8; 2]) -> ([u8; MAX_RTU_FRAME_LEN], usize) {
        let mut out = [0u8; MAX_RTU_FRAME_LEN];
        out[..body.len()].copy_from_slice(body);
        out[body.len()..body.len() + 2].copy_from_slice(&crc);
        (out, body.len() + 2)
    }

    #[test]
    fn the_crc_of_the_specification_and_of_an_independent_implementation() {
        for (body, crc, _) in VECTORS {
            assert_eq!(crc16(body).to_le_bytes(), crc, "{body:02X?}");
        }
    }

    #[test]
    fn every_vector_decodes_whole_and_asks_for_exactly_the_rest_when_cut() {
        for (body, crc, kind) in VECTORS {
            let (buf, len) = framed(body, crc);
            let Ok(RtuDecoded::Frame { frame, consumed }) = decode_rtu(&buf[..len], kind) else {
                panic!("{body:02X?}")
            };
            assert_eq!(
                (consumed, frame.unit_id, frame.pdu),
                (len, body[0], &body[1..])
            );
            for cut in 0..len {
                match decode_rtu(&buf[..cut], kind) {
                    Ok(RtuDecoded::Incomplete { needed }) => {
                        assert!(cut + needed <= len, "{body:02X?} cut at {cut}")
                    }
                    other => panic!("{body:02X?} cut at {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_corrupted_byte_is_a_crc_error_naming_both_crcs() {
        let (mut buf, len) = framed(&[0x11, 0x03, 0x00, 0x6B, 0x00, 0x03], [0x76, 0x87]);
        buf[3] ^= 0x10;
        assert_eq!(
            decode_rtu(&buf[..len], RtuFrameKind::Request),
            Err(CodecError::Crc {
                computed: crc16(&buf[..6]),
                received: 0x8776,
                frame_len: 8
            })
        );
    }

    #[test]
    fn a_byte_count_past_256_bytes_is_refused_before_the_body_arrives() {
        // Write multiple registers with a byte count of 0xF8: 1 + 6 + 248 + 2.
        let head = [0x11, 0x10, 0x00, 0x00, 0x00, 0x7C, 0xF8];
        assert_eq!(
            decode_rtu(&head, RtuFrameKind::Request),
            Err(CodecError::OutOfRange {
                function: Some(0x10),
                field: Field::FrameLength,
                value: 257,
                min: 4,
                max: 256
            })
        );
        // A FIFO response whose count says 0x0100 bytes.
        assert!(matches!(
            decode_rtu(&[0x11, 0x18, 0x01, 0x00], RtuFrameKind::Response),
            Err(CodecError::OutOfRange {
                field: Field::FrameLength,
                ..
            })
        ));
    }

    #[test]
    fn functions_without_a_length_rule_are_named() {
        for (code, kind) in [
            (0x41, RtuFrameKind::Request),
            (0x64, RtuFrameKind::Response),
            (0x00, RtuFrameKind::Request),
            (0x83, RtuFrameKind::Request),
            (0x80, RtuFrameKind::Response),
        ] {
            assert_eq!(
                decode_rtu(&[1, code, 0, 0], kind),
                Err(CodecError::NoLengthRule { code })
            );
        }
        assert_eq!(
            decode_rtu(&[1, 0x2B, 0x0D, 0, 0, 0], RtuFrameKind::Request),
            Err(CodecError::NoLengthRule { code: 0x2B })
        );
    }

    #[test]
    fn a_device_identification_response_is_walked_object_by_object() {
        let mut out = [0u8; MAX_RTU_FRAME_LEN];
        let body = [
            0x01, 0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x02, 0x00, 0x03, b'a', b'b', b'c', 0x01,
            0x01, b'z',
        ];
        out[..body.len()].copy_from_slice(&body);
        let crc = crc16(&body).to_le_bytes();
        out[body.len()..body.len() + 2].copy_from_slice(&crc);
        let len = body.len() + 2;
        let Ok(RtuDecoded::Frame { frame, consumed }) =
            decode_rtu(&out[..len], RtuFrameKind::Response)
        else {
            panic!()
        };
        assert_eq!((consumed, frame.pdu.len()), (len, body.len() - 1));
        assert!(frame.response().is_ok());
    }

    #[test]
    fn encoding_seals_the_frame_and_refuses_small_buffers() {
        let request = Request::ReadHoldingRegisters {
            address: 0x6B,
            quantity: 3,
        };
        let mut out = [0u8; 8];
        assert_eq!(encode_rtu_request(0x11, &request, &mut out), Ok(8));
        assert_eq!(out, [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]);
        for size in 0..8 {
            assert_eq!(
                encode_rtu_request(0x11, &request, &mut [0u8; 8][..size]),
                Err(CodecError::InsufficientSize {
                    required: 8,
                    available: size
                }),
                "buffer of {size}"
            );
        }
        let frame = RtuFrame {
            unit_id: 0x11,
            pdu: &[0x03, 0x00, 0x6B, 0x00, 0x03],
        };
        let mut again = [0u8; 8];
        assert_eq!(frame.encode(&mut again), Ok(8));
        assert_eq!(again, out);
        let invalid = Request::ReadCoils {
            address: 0,
            quantity: 2001,
        };
        assert_eq!(
            encode_rtu_request(1, &invalid, &mut [0u8; 2]).map_err(|e| e.field()),
            Err(Field::Quantity)
        );
    }
}
