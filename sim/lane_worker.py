"""A lane process without devices, writing passes off at a steady pace, linked to central.

Used by the link soak (sim.link_soak) and its benchmark: the real ``Lane`` with its central link
runs (its relay points at a port where nothing listens, so the relay is simply down), and passes
``soak-00000`` ... are committed through the lane's ledger thread exactly as the core's
``CommitPass`` would, each a release of its own note. Killed at any moment, it continues on
restart from the passes its ledger already holds.

python -m sim.lane_worker CONFIG.json PASSES RATE
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from drivers.modbus_io import RelayIO
from gatewayd.commands import PassRecord, WriteOffLine
from gatewayd.config import LaneConfig
from gatewayd.daemon import Lane
from gatewayd.link import CentralLink
from gatewayd.reasons import Outcome
from sim.net import free_port
from sim.run import GEOFENCE, WIRING

BOOKS = 20


def note_id(i: int) -> str:
    """The note released by pass ``i``."""
    return f"N{i:05d}"


def pass_id(i: int) -> str:
    """The id of pass ``i``."""
    return f"soak-{i:05d}"


def site_documents(passes: int) -> list[dict[str, Any]]:
    """Central's documents for a soak: one note per pass, each drawing 1 from one of 20 books."""
    ops: list[dict[str, Any]] = [
        {"op": "book_line.set", "book_id": f"BK{b:02d}", "line_no": 1, "remaining": 100_000.0}
        for b in range(BOOKS)
    ]
    for i in range(passes):
        note = {
            "note_id": note_id(i),
            "plate": f"沪A{i:05d}",
            "valid_from": 0,
            "valid_until": 4_000_000_000,
            "lines": [[f"BK{i % BOOKS:02d}", 1, 1.0]],
        }
        ops.append({"op": "note.upsert", "note": note})
    return ops


def headless_config(
    ledger: Path, public_key: str, mqtt: dict[str, Any], lane_id: str = "lane-01"
) -> LaneConfig:
    """A lane config whose relay is nowhere (the worker drives the ledger, not the barrier)."""
    return LaneConfig.model_validate(
        {
            "lane": {
                "id": lane_id,
                "site": "site-1",
                "direction": "entry",
                "profile": "empty-exit",
            },
            "central": {"public_keys": [public_key]},
            "ledger": {"path": str(ledger), "synchronous": "FULL"},
            "geofence": {"polygon": GEOFENCE},
            "relay": {
                "transport": "tcp",
                "host": "127.0.0.1",
                "port": free_port(),
                **WIRING,
            },
            "devices": {"plate": {"kind": "sim"}, "qr": {"kind": "sim"}},
            "mqtt": mqtt,
        }
    )


def headless_lane(config: LaneConfig) -> Lane:
    """The real lane and its central link, with no reading devices."""
    return Lane(config, RelayIO(config.relay), [], link=CentralLink(config))


def release(i: int, lane_id: str, *, qty: float = 1.0) -> PassRecord:
    """The release of pass ``i`` (of note ``note_id(i)``, drawing ``qty`` from line 1 of
    book BK<i mod BOOKS>) as the core would ask the ledger to commit it."""
    now = time.time()
    return PassRecord(
        pass_id=pass_id(i),
        lane_id=lane_id,
        opened_at=now,
        decided_at=now,
        outcome=Outcome.RELEASE,
        reasons=(),
        note_id=note_id(i),
        plate=f"沪A{i:05d}",
        containers=(),
        write_off=(WriteOffLine(f"BK{i % BOOKS:02d}", 1, qty),),
    )


async def produce(lane: Lane, passes: int, rate: float) -> None:
    """Commit the passes the ledger does not hold yet, ``rate`` a second."""
    records = await lane.in_ledger(lane.ledger.passes)
    done = {r["pass_id"] for r in records}
    lane_id = lane.config.lane.id
    for i in range(passes):
        if pass_id(i) in done:
            continue
        await lane.commit_pass(release(i, lane_id))
        await asyncio.sleep(1 / rate)


async def main(config_path: str, passes: int, rate: float) -> None:
    """Run the lane, produce the passes, then keep the lane running until SIGTERM."""
    text = await asyncio.to_thread(Path(config_path).read_text, encoding="utf-8")
    config = LaneConfig.model_validate_json(text)
    lane = headless_lane(config)
    task = asyncio.create_task(lane.run(), name="lane")
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    await lane.ready.wait()
    print("ready", flush=True)
    producer = asyncio.create_task(produce(lane, passes, rate), name="producer")
    with contextlib.suppress(asyncio.CancelledError):
        await task
    producer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await producer


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="worker %(levelname)s %(name)s: %(message)s")
    for name in ("drivers.supervisor", "pymodbus"):  # the relay is nowhere, and stays so
        logging.getLogger(name).setLevel(logging.ERROR)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
