"""The link under abuse: a lane process writes passes while the broker is stopped and started at
random moments and the lane is killed with SIGKILL; central must end with every pass exactly once.

The lane is a real process (sim.lane_worker: the daemon's ``Lane`` with its ``CentralLink``),
the broker a real Mosquitto with persistence, central the simulator's (sim.central_server), in
this process. Outages and kills are spread over the run at random pass counts, so each happens
while passes are being written. At the end the lane's ledger must also hold central's documents
(every note used, every book balance equal to central's): the sync ran through the same chaos.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewayd.ledger import SYNC_SEQ, Ledger
from gatewayd.sync import install
from sim.central import SimCentral
from sim.central_server import SimCentralServer, sim_mqtt
from sim.lane_worker import headless_config, pass_id, site_documents
from sim.mosquitto import Broker, stop_process

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SoakResult:
    """What central ended with, and what was done to get there."""

    passes: int
    delivered: int
    missing: int
    duplicates_discarded: int
    max_delivery_s: float
    unexpected: list[str] = field(default_factory=list)
    outages: int = 0
    kills: int = 0
    lane_starts: int = 0
    elapsed_s: float = 0.0
    ledger_synced: bool = False
    double_write_offs: int = 0
    outbox_gaps: int = 0

    def line(self) -> dict[str, Any]:
        """The benchmark's last line."""
        return {
            "passes": self.passes,
            "delivered": self.delivered,
            "missing": self.missing,
            "duplicates_discarded": self.duplicates_discarded,
            "max_delivery_s": round(self.max_delivery_s, 2),
        }


class _Worker:
    def __init__(self, config: Path, passes: int, rate: float, log: Path) -> None:
        self.args = [sys.executable, "-m", "sim.lane_worker", str(config), str(passes), str(rate)]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=out
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)


def _count(db: Path, sql: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


async def soak(
    passes: int = 1000,
    outages: int = 10,
    kills: int = 5,
    *,
    seed: int = 1,
    rate: float = 50.0,
    workdir: Path | None = None,
    say: Callable[[str], None] = lambda text: None,
    settle_s: float = 60.0,
) -> SoakResult:
    """Run the soak; the result says what central received."""
    rng = random.Random(seed)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        broker = stack.enter_context(Broker(workdir / "broker"))
        signer = SimCentral(hashlib.sha256(f"soak-{seed}".encode()).digest())
        central = SimCentralServer(signer, "site-1", "127.0.0.1", broker.port)
        seq = central.change(site_documents(passes))
        ledger_path = workdir / "lane.db"
        ledger = Ledger(ledger_path)
        install(ledger, seq, central.snapshot_ops())
        ledger.close()
        mqtt = sim_mqtt(
            "127.0.0.1",
            broker.port,
            housekeeping_s=2.0,
            connect_timeout_s=2.0,
            status_interval_s=60.0,  # the soak's lane says its status seldom
        ).model_dump(mode="json")
        config_path = workdir / "lane.json"
        config = headless_config(ledger_path, signer.public_key, mqtt)
        config_path.write_text(config.model_dump_json(), encoding="utf-8")
        worker = _Worker(config_path, passes, rate, workdir / "worker.log")
        stack.callback(worker.stop)

        central_task = asyncio.create_task(central.run(), name="central")
        started = time.monotonic()
        try:
            await asyncio.wait_for(central.connected.wait(), 10)
            worker.start()
            events = ["outage"] * outages + ["kill"] * kills
            rng.shuffle(events)
            marks = sorted(rng.sample(range(passes // 20, passes * 19 // 20), len(events)))
            done_outages = done_kills = 0
            count_sql = "SELECT COUNT(*) FROM passes"
            while True:
                written = await asyncio.to_thread(_count, ledger_path, count_sql)
                if events and written >= marks[0]:
                    marks.pop(0)
                    event = events.pop(0)
                    if event == "outage":
                        down = rng.uniform(0.2, 1.0)
                        say(f"at {written} passes: broker down for {down:.1f} s")
                        await asyncio.to_thread(broker.stop)
                        await asyncio.sleep(down)
                        await asyncio.to_thread(broker.start)
                        done_outages += 1
                    else:
                        say(f"at {written} passes: SIGKILL to the lane")
                        await asyncio.to_thread(worker.kill)
                        await asyncio.sleep(rng.uniform(0.0, 0.5))
                        worker.start()
                        done_kills += 1
                    continue
                if not worker.alive():
                    say("the lane process died on its own: restarting it")
                    worker.start()
                if written >= passes and not events:
                    break
                if time.monotonic() - started > 30 + 4 * passes / rate:
                    say("passes are not being written: giving up")
                    break
                await asyncio.sleep(0.02)
            expected = {pass_id(i) for i in range(passes)}
            await central.wait_until(lambda: expected <= central.passes.keys(), settle_s)
            # and the lane caught up with everything central changed meanwhile
            deadline = time.monotonic() + settle_s
            synced = False
            applied_sql = f"SELECT value FROM meta WHERE key='{SYNC_SEQ}'"
            while time.monotonic() < deadline:
                applied = await asyncio.to_thread(_count, ledger_path, applied_sql)
                if applied >= central.seq:
                    lane = await asyncio.to_thread(_lane_documents, ledger_path)
                    synced = _same_documents(lane, central)
                    if synced:
                        break
                await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(worker.stop)  # waits for the process: off the loop
            central_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await central_task
        got = set(central.passes)
        return SoakResult(
            passes=passes,
            delivered=len(got & expected),
            missing=len(expected - got),
            duplicates_discarded=central.duplicates_discarded,
            max_delivery_s=max(central.delivery_s.values(), default=0.0),
            unexpected=sorted(got - expected),
            outages=done_outages,
            kills=done_kills,
            lane_starts=worker.starts,
            elapsed_s=time.monotonic() - started,
            ledger_synced=synced,
            double_write_offs=len(central.double_write_offs),
            outbox_gaps=sum(len(central.outbox_gaps(lane)) for lane in central.outbox_seqs),
        )


# note statuses, book-line balances, pending draws
LaneDocuments = tuple[dict[str, str], dict[tuple[str, int], float], int]


def _lane_documents(path: Path) -> LaneDocuments | None:
    """The lane's note statuses, balances and pending draws (read with a second
    connection; blocking), or None while the ledger cannot be read."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
    try:
        notes = dict(conn.execute("SELECT note_id, status FROM notes").fetchall())
        lines = {
            (b, n): r
            for b, n, r in conn.execute("SELECT book_id, line_no, remaining FROM book_lines")
        }
        pending = conn.execute("SELECT COUNT(*) FROM pending_draws").fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return notes, lines, pending


def _same_documents(lane: LaneDocuments | None, central: SimCentralServer) -> bool:
    """The lane's notes and balances are central's, with nothing pending."""
    if lane is None:
        return False
    notes, lines, pending = lane
    want_notes = {k: v["status"] for k, v in central.notes.items()}
    want_lines = {k: v["remaining"] for k, v in central.book_lines.items()}
    return notes == want_notes and lines == want_lines and pending == 0


def main() -> None:
    """python -m sim.link_soak [PASSES OUTAGES KILLS]: one soak, its result as JSON."""
    args = [int(a) for a in sys.argv[1:4]] or [1000, 10, 5]
    result = asyncio.run(soak(*args, say=lambda text: print(text, flush=True)))
    print(json.dumps(result.line()))


if __name__ == "__main__":
    main()
