"""A simulated relay module: a real pymodbus TCP server on loopback wired to a simulated barrier
and loop detectors.

The lane's Modbus driver talks to it exactly as to a relay in the field. Coil writes move the
barrier (it travels for ``travel_s`` between its limit switches); the loop inputs are set by the
simulated traffic. Lowering the barrier onto an occupied safety loop is counted as a collision:
the simulator's tests hold the lane to zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Literal

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from drivers.modbus_io import RelaySettings
from sim.net import free_port

log = logging.getLogger(__name__)

Position = Literal["open", "closed", "moving"]
_READ_DISCRETE = 2
_WRITE_COILS = (5, 15)


@dataclass
class BarrierModel:
    """A barrier arm between two limit switches."""

    travel_s: float
    position: Position = "closed"
    target: Position = "closed"
    lifts: int = 0
    lowerings: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def command(self, up: bool) -> None:
        """Start moving towards open (up) or closed; a move in progress reverses."""
        target: Position = "open" if up else "closed"
        if target == self.target:
            return
        self.target = target
        if up:
            self.lifts += 1
        else:
            self.lowerings += 1
        if self._task is not None:
            self._task.cancel()
        self._move("moving")
        self._task = asyncio.get_running_loop().create_task(self._travel(target))

    def halt(self) -> None:
        """Both coils off: the arm stops where it is (between its limit switches if moving)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.target = self.position

    def _move(self, position: Position) -> None:
        self.position = position
        self.changed.set()
        self.changed = asyncio.Event()  # waiters hold the old one, which stays set

    async def _travel(self, target: Position) -> None:
        await asyncio.sleep(self.travel_s)
        self._move(target)

    def stop(self) -> None:
        """Cancel a move in progress (simulator shutdown)."""
        if self._task is not None:
            self._task.cancel()


class SimRelay:
    """The relay, its barrier and its loops, served over Modbus TCP on 127.0.0.1."""

    def __init__(
        self,
        settings: RelaySettings,
        *,
        travel_s: float = 2.0,
        port: int = 0,
        serial_port: str | None = None,
    ) -> None:
        self.settings = settings
        self.serial_port = serial_port  # serve Modbus RTU on this tty instead of TCP
        self.requests: list[tuple[int, int]] = []  # (function code, address) in wire order
        self.barrier = BarrierModel(travel_s)
        self.loops = {"arrival": False, "safety": False, "exit": False}
        self.coils: dict[int, bool] = {}
        self._barrier_coils = (False, False)  # (up, down) as last applied
        self.collisions = 0
        self.light = "off"
        self.port = port
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._size = 1 + max(
            *settings.coils.model_dump().values(), *settings.inputs.model_dump().values()
        )

    # -- the world sets loops and watches the barrier --------------------------------------------

    def set_loop(self, loop: str, occupied: bool) -> None:
        """A vehicle entered or left a loop."""
        self.loops[loop] = occupied
        barrier = self.barrier
        if (
            loop == "safety"
            and occupied
            and barrier.target == "closed"
            and barrier.position != "open"
        ):
            self._collision("vehicle entered the safety loop under a closed/closing barrier")

    def _collision(self, why: str) -> None:
        self.collisions += 1
        log.error("collision: %s", why)

    async def wait_position(self, position: Position) -> None:
        """Wait until the barrier reaches a position (wrap in a timeout)."""
        while self.barrier.position != position:
            await self.barrier.changed.wait()

    # -- Modbus ---------------------------------------------------------------------------------

    def _inputs(self) -> list[bool]:
        i = self.settings.inputs
        bits = [False] * (16 * ((self._size + 15) // 16))
        bits[i.arrival] = self.loops["arrival"]
        bits[i.safety] = self.loops["safety"]
        bits[i.exit] = self.loops["exit"]
        bits[i.barrier_open] = self.barrier.position == "open"
        bits[i.barrier_closed] = self.barrier.position == "closed"
        return bits

    async def _action(  # noqa: PLR0917 - the signature pymodbus calls
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> None:
        if values is not None or function_code == _READ_DISCRETE:
            self.requests.append((function_code, address))
            del self.requests[:-1000]
        if function_code == _READ_DISCRETE:
            packed = SimUtils.bitsToRegisters(self._inputs())
            registers[: len(packed)] = packed
        elif function_code in _WRITE_COILS and values is not None:
            for offset, value in enumerate(values):
                self.coils[address + offset] = bool(value)
            self._apply_coils()

    def _apply_coils(self) -> None:
        c = self.settings.coils
        up, down = self.coils.get(c.barrier_up, False), self.coils.get(c.barrier_down, False)
        changed, self._barrier_coils = (up, down) != self._barrier_coils, (up, down)
        if not changed:
            pass  # a write to another coil (or the same value again) moves nothing
        elif up and not down:
            self.barrier.command(True)
        elif down and not up:
            if self.loops["safety"]:
                self._collision("barrier lowered onto an occupied safety loop")
            self.barrier.command(False)
        elif not up and not down:
            self.barrier.halt()
        green, red = self.coils.get(c.light_green, False), self.coils.get(c.light_red, False)
        self.light = "green" if green else "red" if red else "off"

    async def start(self) -> int:
        """Serve on 127.0.0.1 (a free port unless one was given), or RTU on ``serial_port``;
        returns the TCP port (0 for RTU)."""
        words = (self._size + 15) // 16 * 16
        bits = [SimData(0, count=words, values=False, datatype=DataType.BITS)]
        regs = [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]
        device = SimDevice(id=0, simdata=(bits, list(bits), regs, list(regs)), action=self._action)
        if self.serial_port is not None:
            self._server = ModbusSerialServer(
                device,
                port=self.serial_port,
                framer=FramerType.RTU,
                baudrate=self.settings.baudrate,
            )
            await self._server.serve_forever(background=True)
            return 0
        if self.port == 0:
            self.port = free_port()
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)
        return self.port

    async def stop(self) -> None:
        """Stop serving (the relay 'loses power'); the barrier state is kept."""
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def close(self) -> None:
        """Stop serving and stop the barrier."""
        await self.stop()
        self.barrier.stop()
