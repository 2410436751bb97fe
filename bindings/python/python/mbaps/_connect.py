"""How :meth:`mbaps.Client.connect` connects: asyncio's own resolution and
TCP connection to the client's protocol, then the handshake, all within
the timeout; whatever fails is an mbaps error that says why."""

import asyncio

from ._errors import Error


async def connect(client, protocol, host, port, timeout):
    loop = asyncio.get_running_loop()
    protocol._start()
    try:
        await asyncio.wait_for(_open(loop, protocol, host, port), timeout)
    except BaseException as error:
        protocol._abort()
        if isinstance(error, Error):
            raise
        # Before OSError: from Python 3.11 the timeout is a TimeoutError,
        # which is an OSError.
        if isinstance(error, asyncio.TimeoutError):
            raise protocol._timed_out() from None
        if isinstance(error, OSError):
            raise protocol._unreachable(error) from None
        raise
    return client


class _Buffered(asyncio.BufferedProtocol):
    """The client's protocol as asyncio's transports recognise a buffered
    one (by its class): they then read into the client's own buffer
    instead of allocating one per read. Its methods are the native
    protocol's own, bound on the instance, so that no Python frame sits
    between the transport and the client."""

    def __init__(self, native):
        for name in ("connection_made", "get_buffer", "buffer_updated", "eof_received",
                     "connection_lost", "pause_writing", "resume_writing"):
            setattr(self, name, getattr(native, name))


# A name with several addresses: the next is tried this long after the
# last one started, not after it failed (RFC 8305's recommended delay), so
# that a silent address does not take the whole timeout.
_NEXT_ADDRESS_AFTER = 0.25


async def _open(loop, protocol, host, port):
    await loop.create_connection(lambda: _Buffered(protocol), host, port,
                                 happy_eyeballs_delay=_NEXT_ADDRESS_AFTER)
    await protocol._handshake()
