"""The async and blocking clients against `mbaps server`."""

import asyncio
import socket
import threading

import pytest

import mbaps
from conftest import credentials, make_pki


def run(coroutine):
    return asyncio.run(coroutine)


def test_an_allowed_read_returns_the_registers(server, pki):
    async def main():
        async with await mbaps.Client.connect(server.address, **credentials(pki, "viewer")) as client:
            return await client.read_holding_registers(1, 100, 3)

    assert run(main()) == [100, 101, 102]


def test_a_denied_write_raises_illegal_function_with_the_reason(server, pki):
    async def main():
        async with await mbaps.Client.connect(server.address, **credentials(pki, "viewer")) as client:
            await client.write_single_register(1, 100, 7)

    with pytest.raises(mbaps.IllegalFunction) as raised:
        run(main())
    assert raised.value.code == 1
    assert isinstance(raised.value, mbaps.ModbusError)
    assert isinstance(raised.value, mbaps.Error)
    assert "R-31" in str(raised.value)


def test_an_operator_writes_and_reads_back_every_kind(server, pki):
    async def main():
        async with await mbaps.Client.connect(server.address, **credentials(pki, "operator")) as client:
            await client.write_single_register(1, 200, 4242)
            await client.write_multiple_registers(1, 201, [1, 2, 3])
            await client.write_single_coil(1, 10, True)
            await client.write_multiple_coils(1, 11, [True, False, True])
            await client.mask_write_register(1, 200, 0xFF00, 0x0012)
            registers = await client.read_holding_registers(1, 200, 4)
            coils = await client.read_coils(1, 10, 4)
            both = await client.read_write_multiple_registers(1, 200, 2, 210, [9, 9])
            identity = await client.read_device_identification(1)
            raw = await client.request(1, bytes([0x03, 0x00, 0xC8, 0x00, 0x01]))
            return registers, coils, both, identity, raw

    registers, coils, both, identity, raw = run(main())
    assert registers == [(4242 & 0xFF00) | 0x0012, 1, 2, 3]
    assert coils == [True, True, False, True]
    assert both == registers[:2]
    assert set(identity) >= {0, 1, 2} and all(isinstance(v, bytes) for v in identity.values())
    assert raw == bytes([0x03, 0x02]) + registers[0].to_bytes(2, "big")


def test_a_client_without_a_role_is_denied(server, pki):
    async def main():
        async with await mbaps.Client.connect(server.address, **credentials(pki, "no-role")) as client:
            await client.read_holding_registers(1, 0, 1)

    with pytest.raises(mbaps.IllegalFunction):
        run(main())


def test_a_certificate_of_another_ca_is_refused_and_says_why(server, pki, tmp_path):
    other = make_pki(tmp_path / "other")

    async def connect(**given):
        # Under TLS 1.3 the server's verdict on our certificate comes
        # after our side of the handshake: the first call meets it.
        client = await mbaps.Client.connect(server.address, **given)
        await client.read_holding_registers(1, 0, 1)

    # Our certificate, from another CA: the server refuses it.
    ours = dict(credentials(other, "viewer"), ca=pki / "ca.pem")
    with pytest.raises(mbaps.TlsError) as raised:
        run(connect(**ours))
    assert isinstance(raised.value, ConnectionError)
    assert "the server refused our certificate" in str(raised.value), str(raised.value)
    # The server's, checked against another CA: we refuse it.
    with pytest.raises(mbaps.TlsError) as raised:
        run(connect(**credentials(other, "viewer")))
    assert "not signed by the CA" in str(raised.value), str(raised.value)


def test_a_server_that_never_answers_times_out():
    # Accepts the connection, reads, never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    address = "127.0.0.1:%d" % listener.getsockname()[1]

    async def main():
        client = await mbaps.Client.connect(address, plain=True, timeout=0.3)
        await client.read_holding_registers(1, 0, 1)

    with pytest.raises(mbaps.TimeoutError) as raised:
        run(main())
    assert isinstance(raised.value, TimeoutError)
    listener.close()


def test_nothing_listening_is_a_connection_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    async def main():
        await mbaps.Client.connect("127.0.0.1:%d" % port, plain=True)

    with pytest.raises(mbaps.ConnectionError) as raised:
        run(main())
    assert "nothing listens there" in str(raised.value)


def test_a_hundred_calls_in_flight_on_one_client(server, pki):
    async def main():
        async with await mbaps.Client.connect(server.address, **credentials(pki, "viewer")) as client:
            return await asyncio.gather(*(client.read_holding_registers(1, n, 1) for n in range(100)))

    assert run(main()) == [[n] for n in range(100)]


def test_the_blocking_client_makes_the_same_calls(server, pki):
    with mbaps.SyncClient.connect(server.address, **credentials(pki, "viewer")) as client:
        assert client.read_holding_registers(1, 100, 2) == [100, 101]
        assert len(client.read_input_registers(1, 0, 1)) == 1
        with pytest.raises(mbaps.IllegalFunction):
            client.write_single_register(1, 100, 7)


def test_arguments_out_of_range_name_themselves():
    async def connect(**given):
        await mbaps.Client.connect("127.0.0.1:802", **given)

    with pytest.raises(ValueError, match="timeout is 0"):
        run(connect(plain=True, timeout=0))
    with pytest.raises(ValueError, match="required for Modbus/TCP Security"):
        run(connect())
    with pytest.raises(ValueError, match='tls is "1.1"'):
        mbaps.SyncClient.connect("127.0.0.1:802", ca="a", cert="b", key="c", tls="1.1")


def test_a_unit_out_of_range_is_a_value_error(server, pki):
    with mbaps.SyncClient.connect(server.address, **credentials(pki, "viewer")) as client:
        with pytest.raises(ValueError, match="unit is 256: it must be 0 to 255"):
            client.read_holding_registers(256, 0, 1)
        with pytest.raises(ValueError, match=r"values\[1\] is 70000"):
            client.write_multiple_registers(1, 0, [1, 70000])
        with pytest.raises(ValueError, match="count is 0: it must be 1 to 125"):
            client.read_holding_registers(1, 0, 0)
        with pytest.raises(ValueError, match="count is 2001: it must be 1 to 2000"):
            client.read_coils(1, 0, 2001)
        with pytest.raises(ValueError, match="values has 124 values: it must have 1 to 123"):
            client.write_multiple_registers(1, 0, [0] * 124)
