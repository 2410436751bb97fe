"""Modbus/TCP Security (Modbus over TLS, port 802) on the mbaps Rust stack.

Conforming TLS 1.2/1.3 with mutual authentication, the role carried in the
client certificate, and the policy engine that authorizes each request.
"""

from ._errors import (
    Acknowledge,
    ConnectionError,
    Error,
    GatewayPathUnavailable,
    GatewayTargetFailedToRespond,
    IllegalDataAddress,
    IllegalDataValue,
    IllegalFunction,
    MemoryParityError,
    ModbusError,
    PolicyError,
    ServerDeviceBusy,
    ServerDeviceFailure,
    TimeoutError,
    TlsError,
)
from ._native import (
    Client,
    Explanation,
    Policy,
    RegisterMap,
    Request,
    Server,
    SyncClient,
    role_of,
)

__all__ = [
    "Acknowledge",
    "Client",
    "ConnectionError",
    "Error",
    "Explanation",
    "GatewayPathUnavailable",
    "GatewayTargetFailedToRespond",
    "IllegalDataAddress",
    "IllegalDataValue",
    "IllegalFunction",
    "MemoryParityError",
    "ModbusError",
    "Policy",
    "PolicyError",
    "RegisterMap",
    "Request",
    "Server",
    "ServerDeviceBusy",
    "ServerDeviceFailure",
    "SyncClient",
    "TimeoutError",
    "TlsError",
    "role_of",
]
