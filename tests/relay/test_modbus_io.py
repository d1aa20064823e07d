"""The Modbus relay driver against a real pymodbus server standing in for the relay module."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus_io import RelayIO, RelaySettings, SignalChanged
from drivers.supervisor import Backoff, DriverError, Health, Supervisor
from sim.relay import SimRelay

WIRING = {
    "coils": {"barrier_up": 0, "barrier_down": 1, "light_green": 2, "light_red": 3},
    "inputs": {"arrival": 8, "safety": 9, "exit": 10, "barrier_open": 11, "barrier_closed": 12},
}


def settings(port: int, **extra: object) -> RelaySettings:
    return RelaySettings.model_validate(
        {
            "transport": "tcp",
            "host": "127.0.0.1",
            "port": port,
            "poll_ms": 5,
            "timeout_s": 0.5,
            **WIRING,
            **extra,
        }
    )


class Harness:
    """A driver under supervision, with what it reported."""

    def __init__(self, io: RelayIO) -> None:
        self.io = io
        self.changes: asyncio.Queue[SignalChanged] = asyncio.Queue()
        self.states: list[str] = []
        self.health = Health("relay")
        self.up = asyncio.Event()
        self.down = asyncio.Event()

    def on_state(self, health: Health) -> None:
        self.states.append(health.state)
        (self.up if health.state == "up" else self.down).set()

    async def next_change(self) -> SignalChanged:
        return await asyncio.wait_for(self.changes.get(), 5)

    async def current(self) -> dict[str, bool]:
        seen: dict[str, bool] = {}
        while len(seen) < 5:
            change = await self.next_change()
            seen[change.signal] = change.value
        return seen


@contextlib.asynccontextmanager
async def supervised(io: RelayIO) -> AsyncIterator[Harness]:
    h = Harness(io)
    sup = Supervisor(
        h.health,
        io.open_device,
        h.changes.put_nowait,
        on_state=h.on_state,
        backoff=Backoff(initial=0.05, maximum=0.2),
    )
    task = asyncio.create_task(sup.run())
    try:
        yield h
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def relay_and_driver(
    travel_s: float = 0.05, **extra: object
) -> AsyncIterator[tuple[SimRelay, Harness]]:
    """A simulated relay serving, and the driver connected to it with every input known."""
    relay = SimRelay(settings(502), travel_s=travel_s)
    port = await relay.start()
    try:
        async with supervised(RelayIO(settings(port, **extra))) as h:
            await h.current()
            yield relay, h
    finally:
        await relay.close()


async def test_loop_inputs_are_reported_on_connect_and_on_every_change() -> None:
    relay = SimRelay(settings(502), travel_s=0.05)
    port = await relay.start()
    relay.set_loop("exit", True)
    try:
        async with supervised(RelayIO(settings(port))) as h:
            assert await h.current() == {
                "arrival": False,
                "safety": False,
                "exit": True,
                "barrier_open": False,
                "barrier_closed": True,
            }
            relay.set_loop("arrival", True)
            assert await h.next_change() == SignalChanged("arrival", True)
            relay.set_loop("exit", False)
            assert await h.next_change() == SignalChanged("exit", False)
    finally:
        await relay.close()


async def test_barrier_and_light_commands_reach_the_relay() -> None:
    async with relay_and_driver() as (relay, h):
        await h.io.set_barrier(True)
        await h.io.set_light("green")
        assert relay.coils[0] is True
        assert relay.coils[1] is False
        assert relay.light == "green"
        # the barrier's limit switches come back through the inputs
        changes = {(await h.next_change()) for _ in range(2)}
        assert changes == {
            SignalChanged("barrier_closed", False),
            SignalChanged("barrier_open", True),
        }
        await h.io.set_barrier(False)
        assert relay.barrier.target == "closed"


async def test_a_stop_leaves_the_arm_where_it_is_with_both_coils_off() -> None:
    async with relay_and_driver(travel_s=0.3) as (relay, h):
        relay.barrier.position = relay.barrier.target = "open"
        await h.io.set_barrier(False)
        assert relay.barrier.position == "moving"
        await h.io.stop_barrier()
        assert (relay.coils[0], relay.coils[1]) == (False, False)
        await asyncio.sleep(0.5)  # longer than the whole travel
        assert relay.barrier.position == "moving"  # between its limit switches
        await h.io.set_barrier(False)  # lowered again, it goes all the way down
        await asyncio.wait_for(relay.wait_position("closed"), 2)


async def test_a_barrier_command_goes_out_before_the_next_poll() -> None:
    # slow polling makes a command that waited for its turn obvious on the wire
    async with relay_and_driver(poll_ms=100) as (relay, h):
        for _ in range(5):
            relay.requests.clear()
            await h.io.set_barrier(True)
            wire = [fc for fc, _ in relay.requests]
            # at most the one poll already in flight precedes the write
            assert wire[: wire.index(5)].count(2) <= 1, wire
            await h.io.set_barrier(False)


async def test_unreachable_relay_refuses_commands_and_recovers_by_itself() -> None:
    relay = SimRelay(settings(502), travel_s=0.05)
    port = await relay.start()
    await relay.stop()  # the relay loses power before the lane starts
    async with supervised(RelayIO(settings(port))) as h:
        await asyncio.wait_for(h.down.wait(), 5)
        with pytest.raises(DriverError, match="unreachable"):
            await h.io.set_barrier(True)
        assert relay.coils == {}
        await relay.start()  # power back, same address
        await asyncio.wait_for(h.up.wait(), 5)
        await h.current()
        await h.io.set_light("red")
        assert relay.light == "red"
        # and again while running
        h.down.clear()
        await relay.stop()
        await asyncio.wait_for(h.down.wait(), 5)
        h.up.clear()
        await relay.start()
        await asyncio.wait_for(h.up.wait(), 5)
        assert h.states == ["down", "up", "down", "up"]
    await relay.close()


async def test_the_driver_stops_when_a_cancellation_is_swallowed_by_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On 3.11 pymodbus's wait_for returns the answer when it lands with the cancellation, and
    # the cancellation is gone: the poll loop must still notice it is being stopped.
    original = AsyncModbusTcpClient.read_discrete_inputs
    armed, swallowed = asyncio.Event(), asyncio.Event()

    async def swallowing(self: AsyncModbusTcpClient, *args: Any, **kwargs: Any) -> Any:
        if not armed.is_set() or swallowed.is_set():
            return await original(self, *args, **kwargs)
        swallowed.set()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # the lane is stopped while this poll is in flight
        try:
            return await original(self, *args, **kwargs)
        except asyncio.CancelledError:
            return await original(self, *args, **kwargs)  # and the answer comes back instead

    monkeypatch.setattr(AsyncModbusTcpClient, "read_discrete_inputs", swallowing)
    relay = SimRelay(settings(502), travel_s=0.05)
    port = await relay.start()
    try:
        h = Harness(RelayIO(settings(port)))
        sup = Supervisor(h.health, h.io.open_device, h.changes.put_nowait, on_state=h.on_state)
        task = asyncio.create_task(sup.run())
        await h.current()
        armed.set()
        await asyncio.wait_for(swallowed.wait(), 2)
        done, _ = await asyncio.wait({task}, timeout=2)
        assert task in done, "the relay driver went on polling after it was stopped"
        assert task.cancelled()
    finally:
        await relay.close()


@pytest.fixture
def pty_pair(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat not installed (Debian package socat; `make test` installs it)")
    a, b = tmp_path / "relay", tmp_path / "lane"
    proc = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if a.exists() and b.exists():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    yield str(a), str(b)
    proc.terminate()
    proc.wait(timeout=5)


async def test_rtu_over_a_serial_line(pty_pair: tuple[str, str]) -> None:
    relay_end, lane_end = pty_pair
    rtu = RelaySettings.model_validate(
        {"transport": "rtu", "serial_port": lane_end, "baudrate": 115200, "poll_ms": 10, **WIRING}
    )
    relay = SimRelay(rtu, travel_s=0.05, serial_port=relay_end)
    await relay.start()
    try:
        async with supervised(RelayIO(rtu)) as h:
            await h.current()
            relay.set_loop("arrival", True)
            assert await h.next_change() == SignalChanged("arrival", True)
            await h.io.set_barrier(True)
            assert relay.barrier.target == "open"
    finally:
        await relay.close()
