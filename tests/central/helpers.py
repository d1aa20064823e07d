"""Shared pieces of the central-link tests: a running lane, a running central, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gatewayd.commands import PassRecord
from gatewayd.daemon import Lane
from gatewayd.ledger import Ledger
from gatewayd.link import CentralLink
from gatewayd.sync import install
from sim.central import SimCentral
from sim.central_server import SimCentralServer
from sim.lane_worker import headless_config, headless_lane, site_documents
from sim.lane_worker import release as worker_release

SIGNER = SimCentral(bytes(range(32)))
SITE = "site-1"


def mqtt_settings(port: int, **overrides: Any) -> dict[str, Any]:
    """A quick-reconnecting [mqtt] section for loopback tests."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.5,
        "resync_timeout_s": 1.0,
        "housekeeping_s": 0.2,
        "keepalive_s": 5,
        "connect_timeout_s": 2.0,
        **overrides,
    }


def new_central(port: int, **kwargs: Any) -> SimCentralServer:
    """Central for site-1 holding the soak documents for 50 passes (notes N00000...)."""
    central = SimCentralServer(SIGNER, SITE, "127.0.0.1", port, **kwargs)
    central.change(site_documents(50))
    return central


def seeded_ledger(path: Path, central: SimCentralServer) -> Path:
    """A lane ledger holding central's documents at central's sequence."""
    ledger = Ledger(path)
    install(ledger, central.seq, central.snapshot_ops())
    ledger.close()
    return path


def make_lane(
    tmp: Path, port: int, central: SimCentralServer | None, lane_id: str = "lane-01", **mqtt: Any
) -> Lane:
    """A lane with no devices and a link to the broker on ``port``."""
    path = tmp / f"{lane_id}.db"
    if central is not None and not path.exists():
        seeded_ledger(path, central)
    config = headless_config(path, SIGNER.public_key, mqtt_settings(port, **mqtt), lane_id)
    return headless_lane(config)


def link_of(lane: Lane) -> CentralLink:
    """The lane's central link."""
    assert isinstance(lane.link, CentralLink)
    return lane.link


def release(pass_id: str, note_id: str, lane_id: str = "lane-01", qty: float = 1.0) -> PassRecord:
    """A release of note N<n> drawing ``qty`` from its book line (as in sim.lane_worker)."""
    return replace(worker_release(int(note_id[1:]), lane_id, qty=qty), pass_id=pass_id)


@contextlib.asynccontextmanager
async def running(lane: Lane) -> AsyncIterator[Lane]:
    """The lane running until the block ends."""
    task = asyncio.create_task(lane.run(), name="lane")
    try:
        await asyncio.wait_for(lane.ready.wait(), 10)
        yield lane
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=20)
        assert done, "the lane did not stop within 20 s of being cancelled:\n" + _stacks()


@contextlib.asynccontextmanager
async def serving(central: SimCentralServer, *, connected: bool = True) -> AsyncIterator[None]:
    """Central running until the block ends (connected first, unless told otherwise)."""
    task = asyncio.create_task(central.run(), name="central")
    try:
        if connected:
            await asyncio.wait_for(central.connected.wait(), 10)
        yield
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=20)
        assert done, "central did not stop within 20 s of being cancelled"


def _stacks() -> str:
    out = io.StringIO()
    for t in asyncio.all_tasks():
        t.print_stack(file=out)
    return out.getvalue()


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], within_s: float = 10.0, what: str = ""
) -> float:
    """Wait until ``check()`` is true; fail after ``within_s``. Returns the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > within_s:
            raise AssertionError(f"not within {within_s} s: {what or check}")
        await asyncio.sleep(0.01)


async def ledger_state(lane: Lane) -> dict[str, Any]:
    """Everything in the lane's ledger a message could change."""

    def dump() -> dict[str, Any]:
        led = lane.ledger
        tables = ("outbox", "commands", "overrides", "site_passes", "pending_draws", "meta")
        out: dict[str, Any] = {"documents": led.documents()}
        for table in tables:
            out[table] = led.conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        return out

    return await lane.in_ledger(dump)
