//! Every function code a TCP server serves, through real servers and
//! clients on 127.0.0.1 (std and tokio, every pairing), with real
//! certificates, as the operator role.

mod common;

use common::{Adapter, PAIRINGS, connect, pki, role_config, server_config, start};

use mbaps_codec::{
    Bits, ExceptionCode, FileRecordData, FileRecordRead, FileRecordWrite, List, ReadDeviceIdCode,
    Registers, Request, Response,
};
use mbaps_session::ClientError;
use mbaps_simulator::{RegisterMap, Tables};

#[test]
fn every_function_code_round_trips_through_every_pairing_of_adapters() {
    for (server, client) in PAIRINGS {
        every_function_code(server, client);
    }
}

fn every_function_code(server: Adapter, client: Adapter) {
    let config = server_config(pki());
    let map = RegisterMap::new(Tables::preset());
    // A FIFO of two values at holding register 0x04DE.
    map.tables().holding_registers[0x04DE..0x04E1].copy_from_slice(&[2, 440, 4740]);
    let running = start(server, config, map.clone(), |_| {});
    let mut client = connect(client, running.address, role_config("operator")).unwrap();
    let mut call = |request: Request<'_>| -> Vec<u8> {
        client.request(1, &request).unwrap().as_bytes().to_vec()
    };
    let encode = |response: Response<'_>| -> Vec<u8> {
        let mut out = [0u8; 253];
        let n = response.encode(&mut out).unwrap();
        out[..n].to_vec()
    };
    let on = |n: usize| n.is_multiple_of(3);

    // 0x01 / 0x02: bits packed, padded to whole bytes.
    let coils: Vec<bool> = (0..16).map(on).collect();
    assert_eq!(
        call(Request::ReadCoils {
            address: 0,
            quantity: 16
        }),
        encode(Response::ReadCoils {
            values: Bits::from_bools(&coils)
        })
    );
    assert_eq!(
        call(Request::ReadDiscreteInputs {
            address: 0,
            quantity: 16
        }),
        encode(Response::ReadDiscreteInputs {
            values: Bits::from_bools(&coils)
        })
    );
    // 0x03 / 0x04.
    assert_eq!(
        call(Request::ReadHoldingRegisters {
            address: 10,
            quantity: 2
        }),
        encode(Response::ReadHoldingRegisters {
            values: Registers::from_values(&[10, 11])
        })
    );
    assert_eq!(
        call(Request::ReadInputRegisters {
            address: 7,
            quantity: 1
        }),
        encode(Response::ReadInputRegisters {
            values: Registers::from_values(&[7])
        })
    );
    // 0x05 / 0x0F, then read back.
    assert_eq!(
        call(Request::WriteSingleCoil {
            address: 1,
            value: true
        }),
        encode(Response::WriteSingleCoil {
            address: 1,
            value: true
        })
    );
    let written = [true, true, false];
    assert_eq!(
        call(Request::WriteMultipleCoils {
            address: 4,
            values: Bits::from_bools(&written)
        }),
        encode(Response::WriteMultipleCoils {
            address: 4,
            quantity: 3
        })
    );
    assert_eq!(
        &map.tables().coils[1..7],
        &[true, false, true, true, true, false]
    );
    // 0x06 / 0x10 / 0x16 / 0x17.
    assert_eq!(
        call(Request::WriteSingleRegister {
            address: 200,
            value: 5
        }),
        encode(Response::WriteSingleRegister {
            address: 200,
            value: 5
        })
    );
    assert_eq!(
        call(Request::WriteMultipleRegisters {
            address: 201,
            values: Registers::from_values(&[6, 7])
        }),
        encode(Response::WriteMultipleRegisters {
            address: 201,
            quantity: 2
        })
    );
    map.tables().holding_registers[4] = 0x12;
    assert_eq!(
        call(Request::MaskWriteRegister {
            address: 4,
            and_mask: 0xF2,
            or_mask: 0x25
        }),
        encode(Response::MaskWriteRegister {
            address: 4,
            and_mask: 0xF2,
            or_mask: 0x25
        })
    );
    assert_eq!(map.tables().holding_registers[4], 0x17);
    assert_eq!(
        call(Request::ReadWriteMultipleRegisters {
            read_address: 200,
            read_quantity: 3,
            write_address: 202,
            values: Registers::from_values(&[9])
        }),
        encode(Response::ReadWriteMultipleRegisters {
            values: Registers::from_values(&[5, 6, 9])
        })
    );
    // 0x18.
    assert_eq!(
        call(Request::ReadFifoQueue { address: 0x04DE }),
        encode(Response::ReadFifoQueue {
            values: Registers::from_values(&[440, 4740])
        })
    );
    // 0x15 then 0x14.
    let writes = [FileRecordWrite {
        file_number: 4,
        record_number: 7,
        data: Registers::from_values(&[0x06AF, 0x04BE, 0x100D]),
    }];
    assert_eq!(
        call(Request::WriteFileRecord {
            records: List::from_items(&writes)
        }),
        encode(Response::WriteFileRecord {
            records: List::from_items(&writes)
        })
    );
    let reads = [FileRecordRead {
        file_number: 4,
        record_number: 8,
        record_length: 2,
    }];
    let data = [FileRecordData {
        data: Registers::from_values(&[0x04BE, 0x100D]),
    }];
    assert_eq!(
        call(Request::ReadFileRecord {
            records: List::from_items(&reads)
        }),
        encode(Response::ReadFileRecord {
            records: List::from_items(&data)
        })
    );
    // 0x2B / 0x0E: the three basic objects.
    let id = client
        .request(
            1,
            &Request::ReadDeviceIdentification {
                code: ReadDeviceIdCode::Basic,
                object_id: 0,
            },
        )
        .unwrap();
    let Ok(Response::ReadDeviceIdentification(id)) = id.response() else {
        panic!()
    };
    let names: Vec<&str> = id.objects.iter().map(|o| o.value_str().unwrap()).collect();
    assert_eq!(names[..2], ["mbaps", "mbaps-simulator"]);
    // A device exception comes back as such: an address past the end.
    match client.request(
        1,
        &Request::ReadHoldingRegisters {
            address: 65_535,
            quantity: 2,
        },
    ) {
        Err(ClientError::Exception(ExceptionCode::IllegalDataAddress)) => {}
        other => panic!("{other:?}"),
    }
    // A user-defined code is not in the operator's groups: denied.
    match client.request(
        1,
        &Request::UserDefined {
            function: 65,
            data: &[1],
        },
    ) {
        Err(ClientError::Exception(ExceptionCode::IllegalFunction)) => {}
        other => panic!("{other:?}"),
    }
    client.close();
    running.stop();
}
