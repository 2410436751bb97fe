"""Type stubs of the extension module (re-exported by ``mbaps``)."""

from os import PathLike
from types import TracebackType
from typing import Awaitable, Dict, List, Optional, Sequence, Type, Union

_Path = Union[str, "PathLike[str]"]

class Client:
    """An async Modbus/TCP Security client; many calls may be awaited at once.

    Each call returns an awaitable (an asyncio future) and starts at once:
    await it, or ``asyncio.gather`` several; wrap it in a coroutine to give
    it to ``asyncio.create_task``. Up to 16 calls are in flight together;
    more wait their turn, each within its timeout (a call cancelled before
    its turn is never sent). The client runs on the event loop it was
    connected on: a call from outside that loop raises ``RuntimeError``. A
    client dropped without ``close()`` closes once its calls are over.
    """

    @staticmethod
    def connect(
        address: str,
        *,
        ca: Optional[_Path] = None,
        cert: Optional[_Path] = None,
        key: Optional[_Path] = None,
        server_name: Optional[str] = None,
        tls: Optional[str] = None,
        timeout: float = 3.0,
        plain: bool = False,
    ) -> Awaitable["Client"]: ...
    def read_coils(self, unit: int, address: int, count: int) -> Awaitable[List[bool]]: ...
    def read_discrete_inputs(self, unit: int, address: int, count: int) -> Awaitable[List[bool]]: ...
    def read_holding_registers(self, unit: int, address: int, count: int) -> Awaitable[List[int]]: ...
    def read_input_registers(self, unit: int, address: int, count: int) -> Awaitable[List[int]]: ...
    def write_single_coil(self, unit: int, address: int, value: bool) -> Awaitable[None]: ...
    def write_single_register(self, unit: int, address: int, value: int) -> Awaitable[None]: ...
    def write_multiple_coils(self, unit: int, address: int, values: Sequence[bool]) -> Awaitable[None]: ...
    def write_multiple_registers(self, unit: int, address: int, values: Sequence[int]) -> Awaitable[None]: ...
    def read_write_multiple_registers(
        self, unit: int, read_address: int, read_count: int, write_address: int, values: List[int]
    ) -> Awaitable[List[int]]: ...
    def mask_write_register(self, unit: int, address: int, and_mask: int, or_mask: int) -> Awaitable[None]: ...
    def read_device_identification(
        self, unit: int, code: int = 1, object_id: int = 0
    ) -> Awaitable[Dict[int, bytes]]: ...
    def request(self, unit: int, pdu: bytes) -> Awaitable[bytes]: ...
    def close(self) -> Awaitable[None]: ...
    def __aenter__(self) -> Awaitable["Client"]: ...
    def __aexit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> Awaitable[None]: ...

class SyncClient:
    """The blocking client: the same calls as :class:`Client`."""

    @staticmethod
    def connect(
        address: str,
        *,
        ca: Optional[_Path] = None,
        cert: Optional[_Path] = None,
        key: Optional[_Path] = None,
        server_name: Optional[str] = None,
        tls: Optional[str] = None,
        timeout: float = 3.0,
        plain: bool = False,
    ) -> "SyncClient": ...
    def read_coils(self, unit: int, address: int, count: int) -> List[bool]: ...
    def read_discrete_inputs(self, unit: int, address: int, count: int) -> List[bool]: ...
    def read_holding_registers(self, unit: int, address: int, count: int) -> List[int]: ...
    def read_input_registers(self, unit: int, address: int, count: int) -> List[int]: ...
    def write_single_coil(self, unit: int, address: int, value: bool) -> None: ...
    def write_single_register(self, unit: int, address: int, value: int) -> None: ...
    def write_multiple_coils(self, unit: int, address: int, values: Sequence[bool]) -> None: ...
    def write_multiple_registers(self, unit: int, address: int, values: Sequence[int]) -> None: ...
    def read_write_multiple_registers(
        self, unit: int, read_address: int, read_count: int, write_address: int, values: List[int]
    ) -> List[int]: ...
    def mask_write_register(self, unit: int, address: int, and_mask: int, or_mask: int) -> None: ...
    def read_device_identification(
        self, unit: int, code: int = 1, object_id: int = 0
    ) -> Dict[int, bytes]: ...
    def request(self, unit: int, pdu: bytes) -> bytes: ...
    def close(self) -> None: ...
    def __enter__(self) -> "SyncClient": ...
    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None: ...

class Explanation:
    """A decision and its reasons."""

    allowed: bool
    rule: Optional[str]
    missing: Optional[str]

class Policy:
    """An authorization policy."""

    @staticmethod
    def load(path: _Path) -> "Policy": ...
    @staticmethod
    def parse(text: str) -> "Policy": ...
    def roles(self) -> List[str]: ...
    def explain(self, role: Optional[str], pdu: bytes, unit: int = 1) -> Explanation: ...

def role_of(certificate: bytes) -> Optional[str]: ...

class RegisterMap:
    """The simulator's register map, answered in Rust (register n holds n)."""

    def __init__(self) -> None: ...

class Request:
    """An authorized request, as a handler sees it."""

    role: Optional[str]
    unit: int
    function: int
    address: Optional[int]
    count: Optional[int]
    values: Optional[Union[List[int], List[bool]]]
    write_address: Optional[int]
    peer: str
    certificate: Optional[bytes]

class Server:
    """A Modbus/TCP Security server; ``await serve()`` until ``close()``."""

    def __init__(
        self,
        listen: str,
        *,
        policy: Union[_Path, Policy],
        handler: object,
        ca: Optional[_Path] = None,
        cert: Optional[_Path] = None,
        key: Optional[_Path] = None,
        crl: Sequence[_Path] = ...,
        plain: bool = False,
        plain_role: Optional[str] = None,
    ) -> None: ...
    def serve(self) -> Awaitable[None]: ...
    def close(self) -> None: ...
    @property
    def address(self) -> Optional[str]: ...
