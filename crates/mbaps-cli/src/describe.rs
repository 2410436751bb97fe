//! Turns decoded ADUs, PDUs and codec errors into JSON values: the one
//! description both `--json` and the text output are rendered from.

use mbaps_codec::{
    Adu, Bits, CodecError, DeviceIdObject, ExceptionCode, List, Registers, Request, Response,
    WireItem,
};
use serde_json::{Map, Value, json};

/// Whether the PDUs of the input are requests or responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// Describes one ADU: its header, and its PDU as `direction` or the error
/// decoding the PDU gave.
pub(crate) fn adu(offset: usize, adu: &Adu<'_>, direction: Direction) -> (Value, bool) {
    let mut out = Map::new();
    out.insert("offset".into(), json!(offset));
    out.insert("transaction_id".into(), json!(adu.header.transaction_id));
    out.insert("protocol_id".into(), json!(Adu::PROTOCOL_ID));
    out.insert("length".into(), json!(adu.length_field()));
    out.insert("unit_id".into(), json!(adu.header.unit_id));
    let function = adu.function_byte();
    out.insert("function".into(), json!(function));
    let decoded = match direction {
        Direction::Request => adu.request().map(|r| request(&r)),
        Direction::Response => adu.response().map(|r| response(&r)),
    };
    let ok = decoded.is_ok();
    match decoded {
        Ok(fields) => out.extend(fields),
        Err(err) => {
            out.insert("kind".into(), json!(kind_of(direction, function)));
            out.insert("error".into(), error(&err));
        }
    }
    (Value::Object(out), ok)
}

fn kind_of(direction: Direction, function: u8) -> &'static str {
    match direction {
        Direction::Request => "request",
        Direction::Response if function & mbaps_codec::EXCEPTION_BIT != 0 => "exception",
        Direction::Response => "response",
    }
}

/// Describes a codec error: field, value, limit and message.
pub(crate) fn error(err: &CodecError) -> Value {
    let mut out = Map::new();
    out.insert("field".into(), json!(err.field().as_str()));
    out.insert("value".into(), json!(err.value()));
    match *err {
        CodecError::OutOfRange { min, max, .. } => {
            out.insert("min".into(), json!(min));
            out.insert("max".into(), json!(max));
        }
        CodecError::Mismatch { expected, .. } => {
            out.insert("expected".into(), json!(expected));
        }
        CodecError::ProtocolId { frame_len, .. } => {
            out.insert("expected".into(), json!(Adu::PROTOCOL_ID));
            out.insert("frame_len".into(), json!(frame_len));
        }
        CodecError::InsufficientSize { required, .. } => {
            out.insert("expected".into(), json!(required));
        }
        _ => {}
    }
    if let Some(code) = err.exception_code() {
        out.insert("exception_code".into(), json!(code.code()));
    }
    out.insert("message".into(), json!(err.to_string()));
    Value::Object(out)
}

fn header(kind: &str, name: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("kind".into(), json!(kind));
    out.insert("function_name".into(), json!(name));
    out
}

fn set(out: &mut Map<String, Value>, key: &str, value: Value) {
    out.insert(key.into(), value);
}

fn registers(values: Registers<'_>) -> Value {
    Value::Array(values.iter().map(|v| json!(v)).collect())
}

fn bits(values: Bits<'_>) -> Value {
    Value::Array(values.iter().map(|v| json!(u8::from(v))).collect())
}

fn items<'a, T: WireItem<'a>>(list: List<'a, T>, each: impl Fn(T) -> Value) -> Value {
    Value::Array(list.iter().map(each).collect())
}

fn address_quantity(out: &mut Map<String, Value>, address: u16, quantity: u16) {
    set(out, "address", json!(address));
    set(out, "quantity", json!(quantity));
}

/// The typed fields of a request.
pub(crate) fn request(request: &Request<'_>) -> Map<String, Value> {
    let mut out = header("request", request.function().name());
    match *request {
        Request::ReadCoils { address, quantity }
        | Request::ReadDiscreteInputs { address, quantity }
        | Request::ReadHoldingRegisters { address, quantity }
        | Request::ReadInputRegisters { address, quantity } => {
            address_quantity(&mut out, address, quantity);
        }
        Request::WriteSingleCoil { address, value } => {
            set(&mut out, "address", json!(address));
            set(&mut out, "value", json!(value));
        }
        Request::WriteSingleRegister { address, value } => {
            set(&mut out, "address", json!(address));
            set(&mut out, "value", json!(value));
        }
        Request::WriteMultipleCoils { address, values } => {
            address_quantity(&mut out, address, values.len() as u16);
            set(&mut out, "values", bits(values));
        }
        Request::WriteMultipleRegisters { address, values } => {
            address_quantity(&mut out, address, values.len() as u16);
            set(&mut out, "values", registers(values));
        }
        Request::ReadFileRecord { records } => {
            let records = items(records, |r| {
                json!({
                    "file_number": r.file_number,
                    "record_number": r.record_number,
                    "record_length": r.record_length,
                })
            });
            set(&mut out, "records", records);
        }
        Request::WriteFileRecord { records } => set(&mut out, "records", file_writes(records)),
        Request::MaskWriteRegister {
            address,
            and_mask,
            or_mask,
        } => mask(&mut out, address, and_mask, or_mask),
        Request::ReadWriteMultipleRegisters {
            read_address,
            read_quantity,
            write_address,
            values,
        } => {
            set(&mut out, "read_address", json!(read_address));
            set(&mut out, "read_quantity", json!(read_quantity));
            set(&mut out, "write_address", json!(write_address));
            set(&mut out, "write_quantity", json!(values.len()));
            set(&mut out, "values", registers(values));
        }
        Request::ReadFifoQueue { address } => set(&mut out, "address", json!(address)),
        Request::ReadDeviceIdentification { code, object_id } => {
            set(&mut out, "read_device_id_code", json!(code.code()));
            set(&mut out, "object_id", json!(object_id));
        }
        Request::UserDefined { data, .. } => set(&mut out, "data", json!(hex::encode(data))),
        Request::Diagnostics { sub_function, data } => {
            set(&mut out, "sub_function", json!(sub_function));
            set(&mut out, "data", json!(data));
        }
        Request::ReadExceptionStatus
        | Request::GetCommEventCounter
        | Request::GetCommEventLog
        | Request::ReportServerId => {}
    }
    out
}

fn mask(out: &mut Map<String, Value>, address: u16, and_mask: u16, or_mask: u16) {
    set(out, "address", json!(address));
    set(out, "and_mask", json!(and_mask));
    set(out, "or_mask", json!(or_mask));
}

fn file_writes(records: List<'_, mbaps_codec::FileRecordWrite<'_>>) -> Value {
    items(records, |r| {
        json!({
            "file_number": r.file_number,
            "record_number": r.record_number,
            "record_length": r.data.len(),
            "values": registers(r.data),
        })
    })
}

fn object(object: DeviceIdObject<'_>) -> Value {
    let name = match object.id {
        0x00 => "vendor name",
        0x01 => "product code",
        0x02 => "major minor revision",
        0x03 => "vendor url",
        0x04 => "product name",
        0x05 => "model name",
        0x06 => "user application name",
        0x07..=0x7F => "reserved",
        _ => "device specific",
    };
    match object.value_str() {
        Some(text) => json!({ "id": object.id, "name": name, "value": text }),
        None => json!({ "id": object.id, "name": name, "value_hex": hex::encode(object.value) }),
    }
}

/// The typed fields of a response.
pub(crate) fn response(response: &Response<'_>) -> Map<String, Value> {
    let function = response.function_code();
    let name = mbaps_codec::function_name(function).unwrap_or("unknown function");
    if let Response::Exception { code, .. } = *response {
        return exception(name, code);
    }
    let mut out = header("response", name);
    match *response {
        Response::ReadCoils { values } | Response::ReadDiscreteInputs { values } => {
            set(&mut out, "byte_count", json!(values.packed_len()));
            set(&mut out, "values", bits(values));
        }
        Response::ReadHoldingRegisters { values }
        | Response::ReadInputRegisters { values }
        | Response::ReadWriteMultipleRegisters { values } => {
            set(&mut out, "byte_count", json!(values.byte_len()));
            set(&mut out, "values", registers(values));
        }
        Response::WriteSingleCoil { address, value } => {
            set(&mut out, "address", json!(address));
            set(&mut out, "value", json!(value));
        }
        Response::WriteSingleRegister { address, value } => {
            set(&mut out, "address", json!(address));
            set(&mut out, "value", json!(value));
        }
        Response::WriteMultipleCoils { address, quantity }
        | Response::WriteMultipleRegisters { address, quantity } => {
            address_quantity(&mut out, address, quantity);
        }
        Response::ReadFileRecord { records } => {
            let records = items(
                records,
                |r| json!({ "record_length": r.data.len(), "values": registers(r.data) }),
            );
            set(&mut out, "records", records);
        }
        Response::WriteFileRecord { records } => set(&mut out, "records", file_writes(records)),
        Response::MaskWriteRegister {
            address,
            and_mask,
            or_mask,
        } => mask(&mut out, address, and_mask, or_mask),
        Response::ReadFifoQueue { values } => {
            set(&mut out, "fifo_count", json!(values.len()));
            set(&mut out, "values", registers(values));
        }
        Response::ReadDeviceIdentification(id) => {
            set(&mut out, "read_device_id_code", json!(id.code.code()));
            set(
                &mut out,
                "conformity_level",
                json!(id.conformity_level.code()),
            );
            set(&mut out, "more_follows", json!(id.more_follows));
            set(&mut out, "next_object_id", json!(id.next_object_id));
            set(&mut out, "objects", items(id.objects, object));
        }
        Response::UserDefined { data, .. } => set(&mut out, "data", json!(hex::encode(data))),
        Response::ReadExceptionStatus { status } => set(&mut out, "status", json!(status)),
        Response::Diagnostics { sub_function, data } => {
            set(&mut out, "sub_function", json!(sub_function));
            set(&mut out, "data", json!(data));
        }
        Response::GetCommEventCounter {
            status,
            event_count,
        } => {
            set(&mut out, "status", json!(status));
            set(&mut out, "event_count", json!(event_count));
        }
        Response::GetCommEventLog {
            status,
            event_count,
            message_count,
            events,
        } => {
            set(&mut out, "status", json!(status));
            set(&mut out, "event_count", json!(event_count));
            set(&mut out, "message_count", json!(message_count));
            set(&mut out, "events", json!(hex::encode(events)));
        }
        Response::ReportServerId { data } => set(&mut out, "data", json!(hex::encode(data))),
        Response::Exception { .. } => {}
    }
    out
}

fn exception(name: &str, code: ExceptionCode) -> Map<String, Value> {
    let mut out = header("exception", name);
    set(&mut out, "exception_code", json!(code.code()));
    set(&mut out, "exception", json!(code.name()));
    out
}
