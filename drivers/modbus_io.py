"""Barrier, lights and loop detectors on a Modbus relay module (pymodbus; TCP or RTU).

One task owns the connection (pymodbus does not support concurrent requests on a serial bus).
It polls the discrete inputs every ``poll_ms`` and reports each change, and between polls it
serves output commands first: a barrier command waits at most for one poll already on the
wire, never behind a queue of polls. A command given while the relay is unreachable fails at
once instead of being queued, and one the relay has not carried out within a few request
timeouts fails and is dropped: a barrier must never move minutes after it was asked to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from drivers.settings import Section, invalid
from drivers.supervisor import DriverError, raise_if_stopping

log = logging.getLogger(__name__)

Address = int
Signal = Literal["arrival", "safety", "exit", "barrier_open", "barrier_closed"]
SIGNALS: tuple[Signal, ...] = ("arrival", "safety", "exit", "barrier_open", "barrier_closed")
ACK_WAIT_TIMEOUTS = 4  # a command's caller waits at most this many request timeouts


class RelayCoils(Section):
    """Output coil addresses."""

    barrier_up: Address = Field(ge=0, le=65535, description="Coil that lifts the barrier.")
    barrier_down: Address = Field(ge=0, le=65535, description="Coil that lowers the barrier.")
    light_green: Address = Field(ge=0, le=65535, description="Coil of the green light.")
    light_red: Address = Field(ge=0, le=65535, description="Coil of the red light.")


class RelayInputs(Section):
    """Discrete input addresses."""

    arrival: Address = Field(ge=0, le=65535, description="Arrival loop detector.")
    safety: Address = Field(ge=0, le=65535, description="Safety loop under the barrier.")
    exit: Address = Field(ge=0, le=65535, description="Exit loop detector.")
    barrier_open: Address = Field(ge=0, le=65535, description="Limit switch: fully open.")
    barrier_closed: Address = Field(ge=0, le=65535, description="Limit switch: fully closed.")


class RelaySettings(Section):
    """How to reach the relay module and what is wired to which address."""

    transport: Literal["tcp", "rtu"] = Field(description="Modbus TCP, or RTU over serial.")
    host: str | None = Field(None, description="Relay address (tcp).")
    port: int = Field(502, ge=1, le=65535, description="Relay TCP port (tcp).")
    serial_port: str | None = Field(None, description="Serial device (rtu), e.g. /dev/ttyUSB0.")
    baudrate: int = Field(9600, ge=1200, le=921600, description="Serial speed (rtu).")
    device_id: int = Field(1, ge=0, le=247, description="Modbus unit id of the relay.")
    poll_ms: int = Field(
        20, ge=1, le=100, description="Input polling period; keeps a reaction under 100 ms."
    )
    timeout_s: float = Field(0.5, gt=0, le=10, description="Per-request timeout.")
    coils: RelayCoils = Field(description="Output coils.")
    inputs: RelayInputs = Field(description="Discrete inputs.")

    @model_validator(mode="after")
    def _consistent(self) -> RelaySettings:
        if self.transport == "tcp" and not self.host:
            raise invalid("RelaySettings", ("host",), "transport 'tcp' needs host", None)
        if self.transport == "rtu" and not self.serial_port:
            raise invalid("RelaySettings", ("serial_port",), "transport 'rtu' needs it", None)
        for name, section in (("coils", self.coils), ("inputs", self.inputs)):
            addresses = list(section.model_dump().values())
            if len(set(addresses)) != len(addresses):
                raise invalid("RelaySettings", (name,), "two signals share one address", addresses)
        return self


@dataclass(frozen=True)
class SignalChanged:
    """An input changed (or was read for the first time after connecting)."""

    signal: Signal
    value: bool


@dataclass
class _Write:
    writes: tuple[tuple[Address, bool], ...]  # in wire order: every "off" before the "on"
    done: asyncio.Future[None]


def _switch(coils: tuple[Address, ...], on: Address | None) -> tuple[tuple[Address, bool], ...]:
    """Writes that leave only ``on`` (or none) of ``coils`` energised, the others switched off
    first: two opposing coils are never on together, even for one request."""
    writes = tuple((coil, False) for coil in coils if coil != on)
    return writes if on is None else (*writes, (on, True))


class RelayIO:
    """The relay as the lane sees it: input changes stream out, output commands go in.

    Give ``open_device`` to a ``drivers.supervisor.Supervisor``; it yields a connection whose
    ``readings()`` runs the owner loop and yields ``SignalChanged``.
    """

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self._queue: asyncio.Queue[_Write] = asyncio.Queue(maxsize=16)
        self._wake = asyncio.Event()
        self._connected = False
        self.polls = 0

    @property
    def connected(self) -> bool:
        """True while the owner loop has a working connection."""
        return self._connected

    async def set_barrier(self, up: bool) -> None:
        """Command the barrier up or down; returns once the relay acknowledged the writes.

        The opposing coil is switched off before the wanted one is switched on; if a write
        fails, both coils are switched off (as far as the relay still answers) and
        ``DriverError`` is raised.
        """
        c = self.settings.coils
        await self._write(
            _switch((c.barrier_up, c.barrier_down), c.barrier_up if up else c.barrier_down)
        )

    async def stop_barrier(self) -> None:
        """Switch both barrier coils off, so that the arm stops where it is."""
        c = self.settings.coils
        await self._write(_switch((c.barrier_up, c.barrier_down), None))

    async def set_light(self, color: Literal["red", "green", "off"]) -> None:
        """Set the traffic light: the other colour goes off before this one comes on."""
        c = self.settings.coils
        on = {"green": c.light_green, "red": c.light_red}.get(color)
        await self._write(_switch((c.light_green, c.light_red), on))

    async def _write(self, writes: tuple[tuple[Address, bool], ...]) -> None:
        if not self._connected:
            raise DriverError("relay unreachable")
        item = _Write(writes, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            raise DriverError("relay command queue full") from None
        self._wake.set()
        # a command is one poll on the wire plus its own writes away; much later than that the
        # owner is stuck, and a barrier that moves long after it was asked to is worse than
        # an error now (a command given up on is cancelled, and never goes out)
        limit = self.settings.timeout_s * ACK_WAIT_TIMEOUTS
        try:
            async with asyncio.timeout(limit):
                await item.done
        except TimeoutError:
            raise DriverError(f"relay did not acknowledge within {limit:g} s") from None

    @contextlib.asynccontextmanager
    async def open_device(self) -> AsyncIterator[_RelayConnection]:
        """Connect to the relay; the supervisor calls this again after any failure."""
        s = self.settings
        client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if s.transport == "tcp":
            assert s.host is not None  # checked by the settings model
            client = AsyncModbusTcpClient(
                s.host, port=s.port, timeout=s.timeout_s, retries=0, reconnect_delay=0
            )
        else:
            assert s.serial_port is not None
            client = AsyncModbusSerialClient(
                s.serial_port,
                framer=FramerType.RTU,
                baudrate=s.baudrate,
                timeout=s.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        try:
            if not await client.connect():
                raise DriverError(f"cannot connect to relay at {_where(s)}")
            yield _RelayConnection(self, client)
        finally:
            self._connected = False
            self._fail_pending(DriverError("relay connection lost"))
            client.close()

    def _fail_pending(self, exc: Exception) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.done.done():
                item.done.set_exception(exc)


class _RelayConnection:
    def __init__(self, io: RelayIO, client: AsyncModbusTcpClient | AsyncModbusSerialClient):
        self.io = io
        self.client = client
        inputs = io.settings.inputs
        self.addresses = {name: getattr(inputs, name) for name in SIGNALS}
        self.first = min(self.addresses.values())
        self.count = max(self.addresses.values()) - self.first + 1

    async def readings(self) -> AsyncIterator[SignalChanged]:
        io, settings = self.io, self.io.settings
        period = settings.poll_ms / 1000
        known: dict[Signal, bool] = {}
        io._connected = True
        next_poll = time.monotonic()
        while True:
            await self._serve_commands()
            for change in await self._poll(known):
                yield change
            io.polls += 1
            next_poll = max(next_poll + period, time.monotonic())
            wait = next_poll - time.monotonic()
            if wait > 0 and io._queue.empty():
                io._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can turn a cancellation
                # that meets the timeout into a TimeoutError, and the lane would never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await io._wake.wait()

    async def _serve_commands(self) -> None:
        q = self.io._queue
        while not q.empty():
            item = q.get_nowait()
            try:
                await self._carry_out(item)
            except BaseException as exc:
                # whatever stops this task mid-command (even a cancellation), the caller hears of it
                if not item.done.done():
                    interrupted = DriverError("relay command interrupted")
                    item.done.set_exception(exc if isinstance(exc, DriverError) else interrupted)
                raise
            if not item.done.done():
                item.done.set_result(None)
            raise_if_stopping()

    async def _carry_out(self, item: _Write) -> None:
        try:
            for address, value in item.writes:
                if item.done.done():
                    # the caller gave up (before this command went out, or part-way: the "off"
                    # writes go first, so stopping is safe)
                    return
                await self._write_coil(address, value)
        except (ModbusException, DriverError) as exc:
            error = exc if isinstance(exc, DriverError) else DriverError(str(exc))
            # part of the command may be on the relay: leave none of its coils energised
            for address, _ in item.writes:
                with contextlib.suppress(ModbusException, DriverError):
                    await self._write_coil(address, False)
            raise error from None

    async def _write_coil(self, address: Address, value: bool) -> None:
        rr = await self.client.write_coil(address, value, device_id=self.io.settings.device_id)
        if rr.isError():
            raise DriverError(f"relay refused write to coil {address}: {rr}")

    async def _poll(self, known: dict[Signal, bool]) -> list[SignalChanged]:
        try:
            rr = await self.client.read_discrete_inputs(
                self.first, count=self.count, device_id=self.io.settings.device_id
            )
        except ModbusException as exc:
            raise DriverError(f"relay poll failed: {exc}") from None
        raise_if_stopping()
        if rr.isError():
            raise DriverError(f"relay refused input read: {rr}")
        if len(rr.bits) < self.count:  # a reply whose byte count is short of what we asked
            raise DriverError(f"relay sent {len(rr.bits)} input bits, asked for {self.count}")
        changes = []
        for name, address in self.addresses.items():
            value = bool(rr.bits[address - self.first])
            if known.get(name) != value:
                known[name] = value
                changes.append(SignalChanged(name, value))
        return changes


def _where(s: RelaySettings) -> str:
    return f"{s.host}:{s.port}" if s.transport == "tcp" else f"{s.serial_port}"
