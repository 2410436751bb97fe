//! # mbaps-codec
//!
//! The Modbus/TCP application data unit, as Modbus/TCP Security carries it
//! unchanged inside TLS (R-05): the MBAP header and a typed PDU for every
//! function code a TCP server may serve. `#![no_std]` without `alloc`: the
//! crate cannot allocate, and no peer can make it buffer more than one ADU
//! (260 bytes).
//!
//! ```text
//!  TLS plaintext stream ──► decode(&[u8]) ──► Decoded::Frame { adu, consumed }
//!                                │                 │
//!                                │                 ├─ adu.request()  ─► Request<'_>   (server)
//!                                │                 └─ adu.response() ─► Response<'_>  (client)
//!                                └─► Decoded::Incomplete { needed }   (read more bytes)
//!
//!  Request / Response ──► encode_request / encode_response(header, &pdu, &mut [u8]) ──► bytes
//! ```
//!
//! Decoding borrows: register and coil values stay in the input buffer and
//! are read through iterators ([`Registers`], [`Bits`], [`List`]). Encoding
//! writes into the caller's buffer and returns the length, or
//! [`CodecError::InsufficientSize`].
//!
//! Every limit of the specification (quantities, byte counts, the coil value
//! of 0x05, the MBAP length 2..=254, protocol id 0) is checked on decode and
//! again on encode; an error names the field, the value and the limit, and
//! [`CodecError::exception_code`] gives the exception a server answers with.
//!
//! ```
//! use mbaps_codec::{Decoded, MbapHeader, Request, Response, Registers, decode, encode_response};
//!
//! // Read holding registers 108..=110 from unit 0x11 (Application Protocol 6.3).
//! let stream = [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03];
//! let Decoded::Frame { adu, consumed } = decode(&stream)? else { unreachable!() };
//! assert_eq!(consumed, stream.len());
//! assert_eq!(adu.request()?, Request::ReadHoldingRegisters { address: 0x6B, quantity: 3 });
//!
//! let response = Response::ReadHoldingRegisters { values: Registers::from_values(&[0x022B, 0, 0x64]) };
//! let mut out = [0u8; mbaps_codec::limits::MAX_ADU_LEN];
//! let len = encode_response(adu.header, &response, &mut out)?;
//! assert_eq!(&out[..len], [0, 1, 0, 0, 0, 9, 0x11, 0x03, 0x06, 0x02, 0x2B, 0, 0, 0, 0x64]);
//! # Ok::<(), mbaps_codec::CodecError>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

mod data;
mod error;
mod frame;
mod function;
mod items;
mod pdu;
mod request;
mod response;
pub mod rtu;
mod wire;

pub use data::{Bits, BitsIter, List, ListIter, Registers, RegistersIter, WireItem};
pub use error::{CodecError, Field};
pub use frame::{Adu, Decoded, MbapHeader, decode, encode_request, encode_response};
pub use function::{ExceptionCode, FunctionCode, FunctionName, function_name, limits};
pub use items::{
    ConformityLevel, DeviceIdObject, FileRecordData, FileRecordRead, FileRecordWrite,
    MAX_READ_FILE_RECORD_LENGTH, MAX_WRITE_FILE_RECORD_LENGTH, ReadDeviceIdCode,
};
pub use request::{DIAGNOSTICS_CHANGING_STATE, DIAGNOSTICS_READING, Request};
pub use response::{DeviceIdentification, EXCEPTION_BIT, Response};
