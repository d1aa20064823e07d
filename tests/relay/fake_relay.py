"""A hand-written Modbus TCP relay that misbehaves on request: the faults a real pymodbus
server never produces (short replies, refused or slow coil writes), on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class FakeRelay:
    """Answers read discrete inputs (all off) and write single coil, recording each write.

    ``short`` answers input reads with no bits at all; ``refuse`` answers those writes (by
    count, the first write is 0) with a slave device failure; ``write_delay_s`` delays every
    write's answer.
    """

    short: bool = False
    refuse: set[int] = field(default_factory=set)
    write_delay_s: float = 0.0
    coils: dict[int, bool] = field(default_factory=dict)
    states: list[dict[int, bool]] = field(default_factory=list)  # coils after each write
    write_times: list[float] = field(default_factory=list)  # monotonic arrival of each write
    port: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                tid, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                pdu = await reader.readexactly(length - 1)
                body = await self._answer(pdu)
                writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                await writer.drain()

    async def _answer(self, pdu: bytes) -> bytes:
        fc = pdu[0]
        if fc == 2:  # read discrete inputs
            count = struct.unpack(">H", pdu[3:5])[0]
            size = 0 if self.short else (count + 7) // 8
            return bytes([2, size]) + bytes(size)
        if fc == 5:  # write single coil
            self.write_times.append(time.monotonic())
            if len(self.write_times) - 1 in self.refuse:
                return bytes([0x85, 4])
            address, value = struct.unpack(">HH", pdu[1:5])
            await asyncio.sleep(self.write_delay_s)
            self.coils[address] = value == 0xFF00
            self.states.append(dict(self.coils))
            return pdu
        return bytes([fc | 0x80, 1])  # illegal function


@contextlib.asynccontextmanager
async def fake_relay(relay: FakeRelay) -> AsyncIterator[FakeRelay]:
    """Serve ``relay`` on a free loopback port (``relay.port``) until the block ends."""
    server = await asyncio.start_server(relay._serve, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    async with server:
        yield relay
