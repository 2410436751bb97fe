"""The async and blocking clients against `mbaps server`."""

import asyncio
import socket
import threading
import time

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


class Device:
    """A plain Modbus/TCP device on a thread, scripted: `answer(request)`
    gives the bytes of the response ADU, or None to close the connection;
    it may sleep first."""

    def __init__(self, answer):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        connection, _ = self.listener.accept()
        with connection:
            while True:
                header = connection.recv(7, socket.MSG_WAITALL)
                if len(header) < 7:
                    return
                length = int.from_bytes(header[4:6], "big")
                pdu = connection.recv(length - 1, socket.MSG_WAITALL)
                response = self.answer(header, pdu)
                if response is None:
                    return
                connection.sendall(response)

    def close(self):
        self.listener.close()


def adu(header, pdu):
    """The response ADU to the request `header`, with `pdu`."""
    return header[:4] + (len(pdu) + 1).to_bytes(2, "big") + header[6:7] + pdu


def registers(address, count):
    """The PDU of a read answered with each register's own address."""
    values = b"".join((address + n).to_bytes(2, "big") for n in range(count))
    return bytes([0x03, len(values)]) + values


def test_a_connection_lost_fails_the_calls_in_flight_at_once():
    device = Device(lambda header, pdu: None)

    async def main():
        client = await mbaps.Client.connect(device.address, plain=True, timeout=5)
        started = time.monotonic()
        with pytest.raises(mbaps.ConnectionError):
            await asyncio.gather(*(client.read_holding_registers(1, n, 1) for n in range(3)))
        # Not the request timeout: the end of the connection.
        assert time.monotonic() - started < 2
        with pytest.raises(mbaps.ConnectionError):
            await client.read_holding_registers(1, 0, 1)

    run(main())
    device.close()


def test_a_call_given_up_on_leaves_the_next_in_step():
    def answer(header, pdu):
        address, count = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
        if address == 1:
            time.sleep(0.3)
        return adu(header, registers(address, count))

    device = Device(answer)

    async def main():
        client = await mbaps.Client.connect(device.address, plain=True)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.read_holding_registers(1, 1, 2), 0.05)
        # The late answer to the first is not taken for the second's.
        assert await client.read_holding_registers(1, 7, 2) == [7, 8]
        await client.close()

    run(main())
    device.close()


def test_an_answer_that_does_not_fit_the_request_is_an_error():
    # Two registers for a read of three.
    device = Device(lambda header, pdu: adu(header, registers(0, 2)))

    async def main():
        client = await mbaps.Client.connect(device.address, plain=True)
        try:
            await client.read_holding_registers(1, 0, 3)
        finally:
            await client.close()

    with pytest.raises(mbaps.Error) as raised:
        run(main())
    assert not isinstance(raised.value, mbaps.ModbusError)
    assert "unexpected response" in str(raised.value)
    device.close()


def test_calls_after_close_fail(server, pki):
    async def main():
        client = await mbaps.Client.connect(server.address, **credentials(pki, "viewer"))
        await client.close()
        await client.close()
        await client.read_holding_registers(1, 0, 1)

    with pytest.raises(mbaps.ConnectionError, match="closed"):
        run(main())


def test_a_client_is_called_from_its_own_loop_only(server, pki):
    async def main():
        client = await mbaps.Client.connect(server.address, **credentials(pki, "viewer"))
        raised = []

        def elsewhere():
            try:
                client.read_holding_registers(1, 0, 1)
            except RuntimeError as error:
                raised.append(error)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        # Still fine on its own loop.
        values = await client.read_holding_registers(1, 100, 1)
        await client.close()
        return raised, values

    raised, values = run(main())
    assert values == [100]
    assert len(raised) == 1 and "event loop it was connected on" in str(raised[0])


def test_a_tls_server_that_never_handshakes_times_out_the_connect(pki):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = "127.0.0.1:%d" % listener.getsockname()[1]

    async def main():
        await mbaps.Client.connect(address, timeout=0.3, **credentials(pki, "viewer"))

    started = time.monotonic()
    with pytest.raises(mbaps.TimeoutError):
        run(main())
    assert time.monotonic() - started < 2
    listener.close()


def test_an_address_without_a_port_is_a_value_error():
    with pytest.raises(ValueError, match="has no port: give HOST:PORT"):
        mbaps.Client.connect("localhost", plain=True)


def identification(code, more, next_object, objects):
    """A 0x2B/0x0E response PDU."""
    body = b"".join(bytes([key, len(value)]) + value for key, value in objects.items())
    return bytes([0x2B, 0x0E, code, 0x81, 0xFF if more else 0x00, next_object, len(objects)]) + body


def test_device_identification_follows_more_follows_and_stops_on_a_loop():
    asked = []

    def answer(header, pdu):
        code, first = pdu[2], pdu[3]
        asked.append(first)
        if first == 0:
            return adu(header, identification(code, True, 2, {0: b"mbaps", 1: b"MB"}))
        if first == 2:
            return adu(header, identification(code, False, 0, {2: b"1.0"}))
        # A device that points back: followed no further.
        return adu(header, identification(code, True, 5, {first: b"again"}))

    device = Device(answer)

    async def main():
        async with await mbaps.Client.connect(device.address, plain=True) as client:
            whole = await client.read_device_identification(1)
            looping = await client.read_device_identification(1, 3, 5)
            return whole, looping

    whole, looping = run(main())
    assert whole == {0: b"mbaps", 1: b"MB", 2: b"1.0"}
    assert looping == {5: b"again"}
    assert asked == [0, 2, 5]
    device.close()


def test_calls_given_up_on_before_they_are_sent_are_never_sent():
    writes = []

    def answer(header, pdu):
        if pdu[0] == 0x03:
            return adu(header, registers(0, 1))
        writes.append(pdu)
        return adu(header, pdu)

    device = Device(answer)

    async def main():
        async with await mbaps.Client.connect(device.address, plain=True) as client:
            calls = [client.write_single_register(1, n, 1) for n in range(100)]
            for call in calls:
                call.cancel()
            # Those in flight are answered (and dropped); the rest wait no
            # more, and the next call is not behind them.
            await asyncio.sleep(0.2)
            return await asyncio.wait_for(client.read_holding_registers(1, 0, 1), 1)

    assert run(main()) == [0]
    assert len(writes) == 16
    device.close()


def test_device_identification_keeps_the_calls_deadline():
    def answer(header, pdu):
        time.sleep(0.1)
        # Always more, always forward: only the deadline ends it.
        first = pdu[3]
        return adu(header, identification(pdu[2], True, first + 1, {first: b"x"}))

    device = Device(answer)

    async def main():
        client = await mbaps.Client.connect(device.address, plain=True, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(mbaps.TimeoutError):
            await client.read_device_identification(1, 3, 0)
        return time.monotonic() - started

    assert run(main()) < 1.0
    device.close()


def test_a_client_called_under_another_loop_refuses_before_sending():
    writes = []

    def answer(header, pdu):
        writes.append(pdu)
        return adu(header, pdu)

    device = Device(answer)

    async def connect():
        return await mbaps.Client.connect(device.address, plain=True)

    client = run(connect())

    async def elsewhere():
        client.write_single_register(1, 0, 7)

    with pytest.raises(RuntimeError, match="event loop it was connected on"):
        run(elsewhere())
    assert writes == []
    device.close()


def test_a_client_left_open_when_its_loop_ends_is_collected(server, pki):
    import gc
    import os
    import warnings

    def descriptors():
        return len(os.listdir("/proc/self/fd"))

    async def connect():
        return await mbaps.Client.connect(server.address, **credentials(pki, "viewer"))

    gc.collect()
    before = descriptors()
    with warnings.catch_warnings():
        # The transport's finalizer says it was not closed: it was not.
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(5):
            client = run(connect())
            del client
        gc.collect()
    # None left open (others, of earlier tests, may have been collected too).
    assert descriptors() <= before


def test_a_client_nobody_holds_answers_the_call_it_is_making(server, pki):
    async def main():
        return await (await mbaps.Client.connect(server.address, **credentials(pki, "viewer"))).read_holding_registers(1, 100, 2)

    assert run(main()) == [100, 101]


def test_a_name_with_a_silent_first_address_reaches_the_next(monkeypatch):
    device = Device(lambda header, pdu: adu(header, registers(0, 1)))
    port = int(device.address.rsplit(":", 1)[1])
    real = socket.getaddrinfo

    def two_addresses(host, *args, **kwargs):
        if host == "modbus.test":
            # First an address nothing answers (TEST-NET-1), then the device.
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)

    async def main():
        async with await mbaps.Client.connect(f"modbus.test:{port}", plain=True, timeout=2) as client:
            return await client.read_holding_registers(1, 0, 1)

    assert run(main()) == [0]
    device.close()
