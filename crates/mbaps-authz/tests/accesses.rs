//! `accesses` against the Application Protocol (V1.1b3, section 6): each
//! request is written as the bytes of the specification's own example (or
//! its field layout), decoded by the codec, and the tables and address
//! ranges it touches are spelled out by hand from those bytes. The
//! reference evaluator of `decide_reference.rs` uses `accesses`; this is
//! what keeps it honest.

use mbaps_authz::{Access, Table, accesses};
use mbaps_codec::Request;

fn access(table: Table, first: u32, last: u32) -> Access {
    Access { table, first, last }
}

fn pdu(hex: &str) -> Vec<u8> {
    hex::decode(hex.replace(' ', "")).unwrap()
}

#[test]
fn every_function_code_touches_what_its_fields_say() {
    use Table::*;
    let cases: &[(&str, &str, &[Access])] = &[
        // 6.1: starting address 0x0013 (coil 20), quantity 0x0013 (19).
        ("read coils", "01 0013 0013", &[access(Coils, 19, 37)]),
        // 6.2: starting address 0x00C4, quantity 0x0016 (22).
        (
            "read discrete inputs",
            "02 00C4 0016",
            &[access(DiscreteInputs, 196, 217)],
        ),
        // 6.3: starting address 0x006B, quantity 3.
        (
            "read holding registers",
            "03 006B 0003",
            &[access(HoldingRegisters, 107, 109)],
        ),
        // 6.4: starting address 0x0008, quantity 1.
        (
            "read input registers",
            "04 0008 0001",
            &[access(InputRegisters, 8, 8)],
        ),
        // 6.5: output address 0x00AC, ON.
        (
            "write single coil",
            "05 00AC FF00",
            &[access(Coils, 172, 172)],
        ),
        // 6.6: register address 0x0001, value 3.
        (
            "write single register",
            "06 0001 0003",
            &[access(HoldingRegisters, 1, 1)],
        ),
        // 6.11: starting address 0x0013, 10 outputs, 2 bytes.
        (
            "write multiple coils",
            "0F 0013 000A 02 CD01",
            &[access(Coils, 19, 28)],
        ),
        // 6.12: starting address 0x0001, 2 registers, 4 bytes.
        (
            "write multiple registers",
            "10 0001 0002 04 000A 0102",
            &[access(HoldingRegisters, 1, 2)],
        ),
        // 6.14: two sub-requests, files 4 and 3.
        (
            "read file record",
            "14 0E 06 0004 0001 0002 06 0003 0009 0002",
            &[access(Files, 4, 4), access(Files, 3, 3)],
        ),
        // 6.15: one sub-request, file 4, three registers.
        (
            "write file record",
            "15 0D 06 0004 0007 0003 06AF 04BE 100D",
            &[access(Files, 4, 4)],
        ),
        // 6.16: reference address 0x0004.
        (
            "mask write register",
            "16 0004 00F2 0025",
            &[access(HoldingRegisters, 4, 4)],
        ),
        // 6.17: read 6 from 0x0003, write 3 at 0x000E.
        (
            "read/write multiple registers",
            "17 0003 0006 000E 0003 06 00FF 00FF 00FF",
            &[
                access(HoldingRegisters, 3, 8),
                access(HoldingRegisters, 14, 16),
            ],
        ),
        // 6.18: FIFO pointer address 0x04DE: its count register and the up
        // to 31 values a server may return after it.
        (
            "read FIFO queue",
            "18 04DE",
            &[access(HoldingRegisters, 1246, 1277)],
        ),
        // 6.21: device identification touches no data table.
        ("read device identification", "2B 0E 01 00", &[]),
        // A user-defined function: its data has no layout mbaps knows.
        ("user-defined", "41 0102", &[]),
        // The limits: 2000 coils from 0; a range that runs past 0xFFFF.
        (
            "read coils, 2000",
            "01 0000 07D0",
            &[access(Coils, 0, 1999)],
        ),
        (
            "read coils past the end",
            "01 FFFF 0002",
            &[access(Coils, 0xFFFF, 0x1_0000)],
        ),
    ];
    for (name, hex, expected) in cases {
        let bytes = pdu(hex);
        let request = Request::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<Access> = accesses(&request).collect();
        assert_eq!(got, *expected, "{name}");
    }
}
