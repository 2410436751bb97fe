"""The exceptions of mbaps, all under :class:`Error`."""

import builtins
from typing import Dict, Optional, Type


class Error(Exception):
    """Every error mbaps raises (but ``ValueError`` for a bad argument)."""


class ModbusError(Error):
    """The server answered with a Modbus exception; ``code`` is its code.

    ``ModbusError(code)`` makes the subclass for a known code, so that a
    handler may raise either ``ModbusError(2)`` or ``IllegalDataAddress()``.
    """

    code: int = 0
    _by_code: Dict[int, Type["ModbusError"]] = {}

    def __new__(cls, *args: object, **kwargs: object) -> "ModbusError":
        if cls is ModbusError and args and isinstance(args[0], int):
            cls = ModbusError._by_code.get(args[0], ModbusError)
        return super().__new__(cls)

    def __init__(self, code: Optional[int] = None, message: Optional[str] = None) -> None:
        if isinstance(code, str) and message is None:
            # A subclass given its message only: IllegalFunction("why").
            code, message = None, code
        if code is None:
            code = type(self).code
        if not isinstance(code, int) or not 1 <= code <= 255:
            raise ValueError(f"a Modbus exception code is 1 to 255, not {code!r}")
        self.code = code
        super().__init__(message or f"the server answered exception 0x{code:02X}")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # The classes of this module only: a subclass of an application's
        # does not change what every client raises.
        if cls.__module__ == __name__:
            ModbusError._by_code[cls.code] = cls

    def __reduce__(self):
        # Pickled with its code, whatever its class.
        return (type(self) if type(self)._by_code.get(self.code) is type(self) else ModbusError,
                (self.code, str(self)))


class IllegalFunction(ModbusError):
    """0x01: the function is not served, or the role may not use it (R-31)."""

    code = 0x01


class IllegalDataAddress(ModbusError):
    """0x02: an address the server does not have."""

    code = 0x02


class IllegalDataValue(ModbusError):
    """0x03: a value or quantity out of range."""

    code = 0x03


class ServerDeviceFailure(ModbusError):
    """0x04: the server failed while answering."""

    code = 0x04


class Acknowledge(ModbusError):
    """0x05: accepted, a long operation under way."""

    code = 0x05


class ServerDeviceBusy(ModbusError):
    """0x06: busy with a long operation; try again later."""

    code = 0x06


class MemoryParityError(ModbusError):
    """0x08: a file record's memory failed its parity check."""

    code = 0x08


class GatewayPathUnavailable(ModbusError):
    """0x0A: the gateway has no path to the unit."""

    code = 0x0A


class GatewayTargetFailedToRespond(ModbusError):
    """0x0B: the device behind the gateway did not answer."""

    code = 0x0B


class ConnectionError(Error, builtins.ConnectionError):
    """The connection could not be made, or failed, or closed."""


class TlsError(ConnectionError):
    """The TLS session failed: a certificate refused (and why), an alert."""


class TimeoutError(Error, builtins.TimeoutError):
    """No answer within the timeout."""


class PolicyError(Error, ValueError):
    """A policy with mistakes; ``line`` and ``column`` place the first."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
