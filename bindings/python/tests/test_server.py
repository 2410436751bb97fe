"""`mbaps.Server` with handlers written in Python, reached by `mbaps`
(the CLI) and by pymodbus's TLS client (an implementation we did not
write). Authorization happens before the handler: a denied request never
reaches Python."""

import asyncio
import ssl
import subprocess
import threading
import time

import pytest

import mbaps
from conftest import POLICY, mbaps_binary


class Recording:
    """A plain handler: registers from a dict, every call recorded."""

    def __init__(self):
        self.seen = []
        self.registers = {}

    def handle(self, request):
        self.seen.append(request)
        if request.function == 3:
            return [self.registers.get(request.address + n, 1000 + request.address + n) for n in range(request.count)]
        if request.function == 6:
            self.registers[request.address] = request.values[0]
            return None
        if request.function == 4:
            raise mbaps.IllegalDataAddress()
        if request.function == 1:
            raise RuntimeError("a bug in the handler")
        raise mbaps.ModbusError(1)


class AsyncHandler:
    """An `async def handle`: it awaits before it answers; it counts how
    many of its calls run at once."""

    def __init__(self):
        self.roles = []
        self.running = 0
        self.most = 0

    async def handle(self, request):
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        self.roles.append(request.role)
        return list(range(request.count))


class Writes:
    """A plain handler that takes every kind of write and the 0x17."""

    def __init__(self):
        self.seen = []

    def handle(self, request):
        self.seen.append((request.function, request.address, request.values, request.write_address))
        if request.function == 0x17:
            return [7] * request.count
        return None


class Running:
    """`server.serve()` on an asyncio loop of its own thread."""

    def __init__(self, server):
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while server.address is None:
            assert time.monotonic() < deadline, "the server did not bind"
            time.sleep(0.01)
        self.address = server.address

    def _run(self):
        async def serve():
            await self.server.serve()

        self.loop.run_until_complete(serve())

    def stop(self):
        self.server.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "serve() did not end on close()"


def python_server(pki, handler, **extra):
    server = mbaps.Server(
        "127.0.0.1:0",
        ca=pki / "ca.pem",
        cert=pki / "server-chain.pem",
        key=pki / "server.key",
        policy=extra.pop("policy", POLICY),
        handler=handler,
        **extra,
    )
    return Running(server)


def cli(pki, address, role, *args):
    return subprocess.run(
        [mbaps_binary(), *args, "--host", address, "--ca", str(pki / "ca.pem"),
         "--cert", str(pki / f"client-{role}-chain.pem"), "--key", str(pki / f"client-{role}.key")],
        capture_output=True, text=True, timeout=30,
    )


def test_the_handler_answers_mbaps_read_and_write_and_sees_the_role(pki):
    handler = Recording()
    running = python_server(pki, handler)
    try:
        wrote = cli(pki, running.address, "operator", "write", "holding", "100", "4242")
        assert wrote.returncode == 0, wrote.stderr
        read = cli(pki, running.address, "viewer", "read", "holding", "100", "2")
        assert read.returncode == 0, read.stderr
        assert "    100     4242" in read.stdout and "    101     1101" in read.stdout, read.stdout
        # The viewer's write is denied in Rust: it never reaches Python.
        denied = cli(pki, running.address, "viewer", "write", "holding", "100", "7")
        assert denied.returncode != 0 and "0x01" in denied.stderr
    finally:
        running.stop()
    assert [(r.function, r.role) for r in handler.seen] == [(6, "operator"), (3, "viewer")]
    write = handler.seen[0]
    assert write.address == 100 and write.values == [4242] and write.unit == 1
    assert write.peer.startswith("127.0.0.1:")
    assert mbaps.role_of(write.certificate) == "operator"


def test_handler_errors_become_exceptions(pki, caplog):

    async def main():
        async with await mbaps.Client.connect(
            running.address, ca=pki / "ca.pem", cert=pki / "client-viewer-chain.pem",
            key=pki / "client-viewer.key",
        ) as client:
            with pytest.raises(mbaps.IllegalDataAddress):
                await client.read_input_registers(1, 0, 1)
            # Any other exception: 0x04, logged.
            with pytest.raises(mbaps.ServerDeviceFailure):
                await client.read_coils(1, 0, 1)
            # A function the Python handler does not answer (allowed by
            # the policy: the viewer may read FIFOs).
            with pytest.raises(mbaps.IllegalFunction):
                await client.request(1, bytes([0x18, 0x00, 0x00]))

    handler = Recording()
    running = python_server(pki, handler)
    try:
        asyncio.run(main())
    finally:
        running.stop()
    assert [r.function for r in handler.seen] == [4, 1], "0x18 never reached Python"
    assert any("a bug in the handler" in record.getMessage() for record in caplog.records)


def test_an_async_handler_answers_many_at_once(pki):
    handler = AsyncHandler()
    running = python_server(pki, handler)

    async def main():
        async with await mbaps.Client.connect(
            running.address, ca=pki / "ca.pem", cert=pki / "client-viewer-chain.pem",
            key=pki / "client-viewer.key",
        ) as client:
            return await asyncio.gather(*(client.read_holding_registers(1, 0, 3) for _ in range(16)))

    try:
        started = time.monotonic()
        answers = asyncio.run(main())
        elapsed = time.monotonic() - started
    finally:
        running.stop()
    assert answers == [[0, 1, 2]] * 16
    assert handler.roles == ["viewer"] * 16
    assert handler.most > 1, "the handler's calls ran one after another"
    assert elapsed < 16 * 0.05


def test_every_write_is_answered_as_the_protocol_says(pki):
    handler = Writes()
    running = python_server(pki, handler)

    async def main():
        async with await mbaps.Client.connect(
            running.address, ca=pki / "ca.pem", cert=pki / "client-operator-chain.pem",
            key=pki / "client-operator.key",
        ) as client:
            await client.write_single_coil(1, 3, True)
            await client.write_single_register(1, 4, 44)
            await client.write_multiple_coils(1, 5, [True, False])
            await client.write_multiple_registers(1, 6, [1, 2, 3])
            await client.mask_write_register(1, 7, 0x00F0, 0x0003)
            return await client.read_write_multiple_registers(1, 8, 2, 9, [5, 6])

    try:
        read = asyncio.run(main())
    finally:
        running.stop()
    assert read == [7, 7]
    assert handler.seen == [
        (0x05, 3, [True], None),
        (0x06, 4, [44], None),
        (0x0F, 5, [True, False], None),
        (0x10, 6, [1, 2, 3], None),
        (0x16, 7, [0x00F0, 0x0003], None),
        (0x17, 8, [5, 6], 9),
    ]


def test_close_before_serve_is_kept_and_a_closed_server_does_not_serve_again(pki):
    server = mbaps.Server("127.0.0.1:0", policy=POLICY, handler=mbaps.RegisterMap(), plain=True)
    server.close()

    async def serve():
        await server.serve()

    with pytest.raises(mbaps.Error, match="closed"):
        asyncio.run(serve())


class Forward:
    """A plain handler that blocks on a SyncClient to another server (a
    gateway written in Python)."""

    def __init__(self, address, pki):
        self.client = mbaps.SyncClient.connect(
            address, ca=pki / "ca.pem", cert=pki / "client-viewer-chain.pem",
            key=pki / "client-viewer.key")

    def handle(self, request):
        return self.client.read_holding_registers(request.unit, request.address, request.count)


def test_a_plain_handler_may_block_on_a_sync_client(pki, server):
    handler = Forward(server.address, pki)
    running = python_server(pki, handler)
    try:
        read = cli(pki, running.address, "viewer", "read", "holding", "100", "2")
        assert read.returncode == 0, read.stderr
        assert "    100      100" in read.stdout and "    101      101" in read.stdout, read.stdout
    finally:
        running.stop()
        handler.client.close()


def test_the_simulator_and_a_policy_object(pki):
    policy = mbaps.Policy.load(POLICY)
    running = python_server(pki, mbaps.RegisterMap(), policy=policy)
    try:
        read = cli(pki, running.address, "viewer", "read", "holding", "100", "1")
        assert read.returncode == 0 and "    100      100" in read.stdout, read.stdout + read.stderr
    finally:
        running.stop()


def test_pymodbus_tls_client_reaches_the_python_handler(pki):
    from pymodbus.client import AsyncModbusTlsClient

    handler = Recording()
    running = python_server(pki, handler)
    host, port = running.address.rsplit(":", 1)

    async def main():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(pki / "ca.pem")
        context.load_cert_chain(pki / "client-operator-chain.pem", pki / "client-operator.key")
        client = AsyncModbusTlsClient(host, port=int(port), sslctx=context, timeout=5, retries=0)
        assert await client.connect()
        try:
            wrote = await client.write_register(7, 77, device_id=1)
            read = await client.read_holding_registers(7, count=2, device_id=1)
            return wrote, read
        finally:
            client.close()

    try:
        wrote, read = asyncio.run(main())
    finally:
        running.stop()
    assert not wrote.isError() and not read.isError()
    assert read.registers == [77, 1008]
    assert [r.role for r in handler.seen] == ["operator", "operator"]


def test_bad_arguments_are_value_errors(pki):
    with pytest.raises(ValueError, match="handler is mbaps.RegisterMap"):
        mbaps.Server("127.0.0.1:0", policy=POLICY, handler=object(), plain=True)
    with pytest.raises(ValueError, match="plain_role is for plain=True"):
        mbaps.Server("127.0.0.1:0", policy=POLICY, handler=mbaps.RegisterMap(),
                     ca=pki / "ca.pem", cert=pki / "server-chain.pem", key=pki / "server.key",
                     plain_role="viewer")
    with pytest.raises(mbaps.PolicyError):
        mbaps.Server("127.0.0.1:0", policy="/nonexistent.toml", handler=mbaps.RegisterMap(), plain=True)
