"""pymodbus as an independent Modbus/TCP Security peer for `cargo xtask conformance`.

client MODE: pymodbus's TLS client, with a client certificate, runs every
function code both pymodbus and Modbus/TCP (not serial-only) support against
`mbaps server` (the register map preset by `mbaps server`: register n holds
n, coil and input n are on when n % 3 == 0). Each check prints one JSON line
{"id", "ok", "detail"}.

server MODE: pymodbus's TLS server, requiring a client certificate from the
given CA, with the same preset data, until killed. `cargo xtask conformance`
runs `mbaps read` and `mbaps write` against it.

With --plain, both modes speak plain Modbus/TCP (no TLS, no certificates):
the client reaches `mbaps server` through `mbaps gateway --plain`, and the
server is the plain device behind `mbaps gateway`.

serial-server MODE: pymodbus's serial RTU server (with pyserial) on one of
two pseudo-terminals joined as by a null-modem cable; --link is made to
point to the other's port, for `mbaps gateway --upstream-serial` (parity
none: a pseudo-terminal has none). Prints "ready" when it serves.

rtu-tcp-server MODE: pymodbus's TCP server with the RTU framer (RTU frames
over TCP, as an Ethernet-to-serial converter carries them), for `mbaps
gateway --upstream-rtu-over-tcp`.
"""

import argparse
import asyncio
import json
import logging
import ssl
import sys

import pymodbus
from pymodbus.client import AsyncModbusTcpClient, AsyncModbusTlsClient, ModbusTlsClient
from pymodbus.pdu.file_message import FileRecord

COUNT = 200


def report(check_id, ok, detail):
    print(json.dumps({"id": check_id, "ok": bool(ok), "detail": str(detail)}), flush=True)


def client_context(args, cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(args.ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


async def connect(args, cert, key):
    if args.plain:
        client = AsyncModbusTcpClient(
            args.host, port=args.port, timeout=5, retries=0, reconnect_delay=0)
        return client, await client.connect()
    client = AsyncModbusTlsClient(
        args.host,
        port=args.port,
        sslctx=client_context(args, cert, key),
        timeout=5,
        retries=0,
        reconnect_delay=0,
    )
    return client, await client.connect()


async def expect(check_id, call, accept):
    """Runs one request; `accept(response)` returns None when it is right,
    else what is wrong."""
    try:
        response = await call()
    except Exception as error:  # pylint: disable=broad-except
        report(check_id, False, f"raised {type(error).__name__}: {error}")
        return False
    if response.isError():
        report(check_id, False, f"error response: {response}")
        return False
    wrong = accept(response)
    report(check_id, wrong is None, wrong or "as expected")
    return wrong is None


def preset_bit(n):
    return n % 3 == 0


def sync_client_checks_names(args):
    """pymodbus's synchronous TLS client wraps its socket without a server
    name, so a context that checks names (Python's default for clients)
    cannot connect at all: a finding, reported, not a failure of ours."""
    client = ModbusTlsClient(args.host, port=args.port,
                             sslctx=client_context(args, args.cert, args.key),
                             timeout=5, retries=0, reconnect_delay=0)
    try:
        connected = client.connect()
        detail = "connected"
    except ValueError as error:
        connected = False
        detail = f"ValueError: {error}"
    client.close()
    finding = not connected and "server_hostname" in detail
    print(json.dumps({"id": "sync_client_checks_server_name", "finding": finding,
                      "detail": detail}), flush=True)


async def run_client(args):
    """Every function code against mbaps server, then a denied write."""
    if not args.plain:
        sync_client_checks_names(args)
    client, connected = await connect(args, args.cert, args.key)
    report("client_connects_with_its_certificate", connected, f"pymodbus {pymodbus.__version__}")
    if not connected:
        return 1
    results = []

    def same(got, want):
        return None if list(got) == list(want) else f"got {list(got)}, want {list(want)}"

    results.append(await expect("client_fc01_read_coils", lambda: client.read_coils(20, count=10),
                          lambda r: same(r.bits[:10], [preset_bit(n) for n in range(20, 30)])))
    results.append(await expect("client_fc02_read_discrete_inputs",
                          lambda: client.read_discrete_inputs(30, count=7),
                          lambda r: same(r.bits[:7], [preset_bit(n) for n in range(30, 37)])))
    results.append(await expect("client_fc03_read_holding_registers",
                          lambda: client.read_holding_registers(100, count=5),
                          lambda r: same(r.registers, range(100, 105))))
    results.append(await expect("client_fc04_read_input_registers",
                          lambda: client.read_input_registers(200, count=3),
                          lambda r: same(r.registers, range(200, 203))))
    results.append(await expect("client_fc05_write_single_coil", lambda: client.write_coil(1001, True),
                          lambda r: None if r.bits[0] else f"echoed {r.bits}"))
    results.append(await expect("client_fc06_write_single_register",
                          lambda: client.write_register(1002, 0xBEEF),
                          lambda r: same(r.registers, [0xBEEF])))
    results.append(await expect("client_fc0f_write_multiple_coils",
                          lambda: client.write_coils(1010, [True, False, True, True]),
                          lambda r: None if r.count == 4 else f"count {r.count}"))
    results.append(await expect("client_fc10_write_multiple_registers",
                          lambda: client.write_registers(1020, [1, 2, 3]),
                          lambda r: None if r.count == 3 else f"count {r.count}"))
    results.append(await expect("client_reads_back_its_writes",
                          lambda: client.read_holding_registers(1020, count=3),
                          lambda r: same(r.registers, [1, 2, 3])))
    results.append(await expect("client_fc14_read_file_record",
                          lambda: client.read_file_record(
                              [FileRecord(file_number=4, record_number=1, record_length=4)]),
                          lambda r: same(r.records[0].record_data, b"\x00\x00\x00\x00")))
    results.append(await expect("client_fc15_write_file_record",
                          lambda: client.write_file_record(
                              [FileRecord(file_number=4, record_number=7,
                                          record_data=b"\x12\x34\x56\x78")]),
                          lambda r: same(r.records[0].record_data, b"\x12\x34\x56\x78")))
    results.append(await expect("client_fc16_mask_write_register",
                          lambda: client.mask_write_register(address=1030, and_mask=0x00F2,
                                                             or_mask=0x0025),
                          lambda r: None if (r.and_mask, r.or_mask) == (0x00F2, 0x0025)
                          else f"echoed {r.and_mask:#x} {r.or_mask:#x}"))
    results.append(await expect("client_fc17_read_write_multiple_registers",
                          lambda: client.readwrite_registers(read_address=1040, read_count=2,
                                                             write_address=1040,
                                                             values=[7, 8]),
                          lambda r: same(r.registers, [7, 8])))
    results.append(await expect("client_fc18_read_fifo_queue", lambda: client.read_fifo_queue(address=3),
                          lambda r: same(r.values, [4, 5, 6])))
    results.append(await expect("client_fc2b_read_device_identification",
                          lambda: client.read_device_information(read_code=1, object_id=0),
                          lambda r: None if r.information.get(0) == b"mbaps"
                          else f"objects {r.information}"))
    client.close()
    report("client_every_function", all(results), f"{sum(results)} of {len(results)}")
    if args.plain:
        return 0

    # A viewer's write is denied with exception 01 and the session stays up.
    if args.denied_cert:
        client, connected = await connect(args, args.denied_cert, args.denied_key)
        denied = await client.write_register(5, 1) if connected else None
        code = getattr(denied, "exception_code", None)
        after = await client.read_holding_registers(5, count=1) if connected else None
        ok = (connected and denied is not None and denied.isError() and code == 1
              and after is not None and not after.isError() and after.registers == [5])
        report("client_denied_write_gets_exception_01", ok,
               f"write answered {denied}, then read answered {after}")
        client.close()

    # Without a certificate there is no session (the request cannot succeed).
    client, connected = await connect(args, None, None)
    response = None
    try:
        if connected:
            response = await client.read_holding_registers(0, count=1)
    except Exception as error:  # pylint: disable=broad-except
        response = error
    # No session: the connection fails, or (TLS 1.3, where the server's
    # alert follows the handshake) the request gets no answer. A Modbus
    # answer of any kind, an exception included, would mean a session.
    refused = not connected or isinstance(response, Exception)
    report("client_without_certificate_refused", refused, f"connect {connected}, read {response!r}")
    client.close()
    return 0


def null_modem(link):
    """Two pseudo-terminals whose masters are joined: returns the port
    the server opens; `link` points to the other one."""
    import os  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel
    import tty  # pylint: disable=import-outside-toplevel

    ends = [os.openpty() for _ in range(2)]
    for _, slave in ends:
        tty.setraw(slave)

    def pipe(source, sink):
        while True:
            try:
                data = os.read(source, 512)
            except OSError:
                return
            if not data:
                return
            os.write(sink, data)

    (master_a, slave_a), (master_b, slave_b) = ends
    for source, sink in ((master_a, master_b), (master_b, master_a)):
        threading.Thread(target=pipe, args=(source, sink), daemon=True).start()
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.ttyname(slave_a), link)
    return os.ttyname(slave_b)


async def run_server(args):
    # Imported here: only the server needs them, and they warn on import.
    from pymodbus.datastore import (  # pylint: disable=import-outside-toplevel
        ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext)
    from pymodbus import FramerType, ModbusDeviceIdentification  # pylint: disable=import-outside-toplevel
    from pymodbus.server import (  # pylint: disable=import-outside-toplevel
        ModbusSerialServer, ModbusTcpServer, ModbusTlsServer)

    bits = [preset_bit(n) for n in range(COUNT)]
    registers = list(range(COUNT))
    device = ModbusDeviceContext(
        co=ModbusSequentialDataBlock(1, list(bits)),
        di=ModbusSequentialDataBlock(1, list(bits)),
        hr=ModbusSequentialDataBlock(1, list(registers)),
        ir=ModbusSequentialDataBlock(1, list(registers)),
    )
    identity = ModbusDeviceIdentification(info_name={
        "VendorName": "pymodbus",
        "ProductCode": "interop",
        "MajorMinorRevision": pymodbus.__version__,
    })
    if args.mode == "serial-server":
        port = null_modem(args.link)
        server = ModbusSerialServer(
            ModbusServerContext(devices={1: device}),
            framer=FramerType.RTU,
            identity=identity,
            port=port,
            baudrate=19200,
            parity="N",
        )
        asyncio.get_running_loop().call_later(0.5, lambda: print("ready", flush=True))
    elif args.mode == "rtu-tcp-server":
        server = ModbusTcpServer(
            ModbusServerContext(devices={1: device}),
            framer=FramerType.RTU,
            identity=identity,
            address=("127.0.0.1", args.port),
        )
    elif args.plain:
        server = ModbusTcpServer(
            ModbusServerContext(devices={1: device}),
            identity=identity,
            address=("127.0.0.1", args.port),
        )
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.ca)
        context.load_cert_chain(args.cert, args.key)
        server = ModbusTlsServer(
            ModbusServerContext(devices={1: device}),
            identity=identity,
            address=("127.0.0.1", args.port),
            sslctx=context,
        )
    await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["client", "server", "serial-server", "rtu-tcp-server"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--link")
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--denied-cert")
    parser.add_argument("--denied-key")
    args = parser.parse_args()
    serial_line = args.mode in ("serial-server", "rtu-tcp-server")
    if not serial_line and not args.plain and not (args.ca and args.cert and args.key):
        parser.error("--ca, --cert and --key are required without --plain")
    if args.mode == "serial-server" and not args.link:
        parser.error("serial-server takes --link PATH")
    if args.mode != "serial-server" and args.port is None:
        parser.error("--port is required")
    logging.basicConfig(level=logging.ERROR)
    if args.mode == "client":
        return asyncio.run(run_client(args))
    asyncio.run(run_server(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
