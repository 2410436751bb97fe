"""What the tests share: the `mbaps` binary, a PKI it made, and an
`mbaps server` on a free port of 127.0.0.1, stopped at the end."""

import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
POLICY = ROOT / "examples" / "policy.toml"


def mbaps_binary() -> str:
    """`MBAPS_BIN` (cargo xtask ci sets it), else the workspace's debug build."""
    binary = os.environ.get("MBAPS_BIN", str(ROOT / "target" / "debug" / "mbaps"))
    if not pathlib.Path(binary).exists():
        pytest.fail(f"{binary} is missing: cargo build -p mbaps-cli (cargo xtask ci does)")
    return binary


def make_pki(folder: pathlib.Path) -> pathlib.Path:
    subprocess.run([mbaps_binary(), "certs", "--out", str(folder)], check=True, capture_output=True)
    return folder


class Server:
    """`mbaps server ARGS`, its address read from its first line."""

    def __init__(self, args, log: pathlib.Path):
        self.log = log
        self.process = subprocess.Popen(
            [mbaps_binary(), "server", "--listen", "127.0.0.1:0", "--exit-after", "120", *args],
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            text = log.read_text() if log.exists() else ""
            for line in text.splitlines():
                if line.startswith("listening on "):
                    self.address = line.split()[2]
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mbaps server did not start: {text}")
            time.sleep(0.02)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> pathlib.Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def server(pki, tmp_path_factory):
    args = [
        "--cert", str(pki / "server-chain.pem"),
        "--key", str(pki / "server.key"),
        "--ca", str(pki / "ca.pem"),
        "--policy", str(POLICY),
    ]
    running = Server(args, tmp_path_factory.mktemp("server") / "server.log")
    yield running
    running.stop()


def credentials(pki: pathlib.Path, role: str) -> dict:
    """The keyword arguments of `connect` for the client with `role`."""
    return {
        "ca": pki / "ca.pem",
        "cert": pki / f"client-{role}-chain.pem",
        "key": pki / f"client-{role}.key",
        "server_name": "localhost",
    }
