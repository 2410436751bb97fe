"""Reads per second of mbaps.Client beside the Rust TokioClient and
pymodbus's TLS client, against one `mbaps server`, in interleaved rounds
(a benchmark, not a test).

    cargo build --release -p mbaps-cli -p mbaps-netbench
    python bindings/python/bench/reads.py [--seconds 2] [--rounds 3]

Each client reads 10 holding registers, one at a time and with 16 awaited
at once (16 tasks on one connection), for `--seconds` per measurement;
the medians over the rounds are printed. The Rust client is
`mbaps-netbench reads` (its runtime as in `cargo xtask bench`); pymodbus is
measured if it is installed (`cargo xtask ci` installs it in
target/python-venv).
"""

import argparse
import asyncio
import pathlib
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import mbaps

ROOT = pathlib.Path(__file__).resolve().parents[3]


def start_server(mbaps_binary, pki):
    process = subprocess.Popen(
        [mbaps_binary, "server", "--listen", "127.0.0.1:0", "-q", "--exit-after", "3600",
         "--cert", str(pki / "server-chain.pem"), "--key", str(pki / "server.key"),
         "--ca", str(pki / "ca.pem"), "--policy", str(ROOT / "examples" / "policy.toml")],
        stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("listening on "):
            # What it writes later is read, so that it never blocks on a
            # full pipe.
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, line.split()[2]
    raise RuntimeError("mbaps server did not start")


async def rate(read, seconds, in_flight):
    """Reads per second of `read` with `in_flight` tasks."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker():
        nonlocal done
        while time.perf_counter() < deadline:
            await read()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done / (time.perf_counter() - start)


async def mbaps_rates(address, pki, seconds):
    client = await mbaps.Client.connect(
        address, ca=pki / "ca.pem", cert=pki / "client-viewer-chain.pem",
        key=pki / "client-viewer.key")
    try:
        read = lambda: client.read_holding_registers(1, 0, 10)  # noqa: E731
        return await rate(read, seconds, 1), await rate(read, seconds, 16)
    finally:
        await client.close()


def rust_rates(netbench):
    """The Rust TokioClient, a process of its own."""

    def measure(address, pki, seconds):
        def one(in_flight):
            done = subprocess.run(
                [netbench, "reads", address, str(pki), str(in_flight), str(seconds)],
                check=True, capture_output=True, text=True)
            return float(done.stdout)

        return one(1), one(16)

    return measure


async def pymodbus_rates(address, pki, seconds):
    from pymodbus.client import AsyncModbusTlsClient

    host, port = address.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki / "ca.pem")
    context.load_cert_chain(pki / "client-viewer-chain.pem", pki / "client-viewer.key")
    client = AsyncModbusTlsClient(host, port=int(port), sslctx=context, timeout=5, retries=0)
    await client.connect()
    try:
        read = lambda: client.read_holding_registers(0, count=10, device_id=1)  # noqa: E731
        return await rate(read, seconds, 1), await rate(read, seconds, 16)
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbaps", default=str(ROOT / "target" / "release" / "mbaps"))
    parser.add_argument("--netbench", default=str(ROOT / "target" / "release" / "mbaps-netbench"))
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    peers = {
        "mbaps.Client": lambda *given: asyncio.run(mbaps_rates(*given)),
        "Rust TokioClient": rust_rates(args.netbench),
    }
    try:
        import pymodbus  # noqa: F401
        peers["pymodbus AsyncModbusTlsClient"] = lambda *given: asyncio.run(pymodbus_rates(*given))
    except ImportError:
        print("pymodbus is not installed: it is not measured", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        pki = pathlib.Path(folder)
        subprocess.run([args.mbaps, "certs", "--out", str(pki)], check=True, capture_output=True)
        server, address = start_server(args.mbaps, pki)
        try:
            measured = {name: ([], []) for name in peers}
            for _ in range(args.rounds):
                for name, measure in peers.items():
                    one, sixteen = measure(address, pki, args.seconds)
                    measured[name][0].append(one)
                    measured[name][1].append(sixteen)
        finally:
            server.terminate()
    print(f"reads of 10 holding registers per second, medians of {args.rounds} rounds:")
    print(f"  {'client':<32} {'1 at a time':>12} {'16 in flight':>13}")
    medians = {}
    for name, (one, sixteen) in measured.items():
        medians[name] = (statistics.median(one), statistics.median(sixteen))
        print(f"  {name:<32} {medians[name][0]:>12.0f} {medians[name][1]:>13.0f}")
    (m1, m16), (r1, r16) = medians["mbaps.Client"], medians["Rust TokioClient"]
    print(f"  mbaps.Client / Rust TokioClient: {m1 / r1:.2f} one at a time, {m16 / r16:.2f} with 16 in flight")
    if "pymodbus AsyncModbusTlsClient" in medians:
        p1, p16 = medians["pymodbus AsyncModbusTlsClient"]
        print(f"  mbaps.Client / pymodbus: {m1 / p1:.2f} one at a time, {m16 / p16:.2f} with 16 in flight")


if __name__ == "__main__":
    main()
