"""Central link figures, through a real Mosquitto on loopback.

Run: ``python -m bench.central_link`` prints how many ledger deltas a lane applies per second
(one by one straight into the ledger, and through the broker, where the link commits what
arrives together in one transaction), how long a pass takes from its commit to central (and to
the broker's PUBACK), and from a release at one lane to its note being used at the neighbour;
about 25 s.

``python -m bench.central_link --passes 1000 --outages 10 --kills 5 --json`` runs the soak
instead (sim.link_soak: the lane process killed with SIGKILL, the broker stopped and started),
and ends with one JSON line:
``{"passes": 1000, "delivered": n, "missing": m, "duplicates_discarded": d, "max_delivery_s": t}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from drivers.release_note import public_keys
from gatewayd.envelope import open_central
from gatewayd.ledger import Ledger
from gatewayd.link import CentralLink
from gatewayd.sync import Delta, Replica, install, parse_body
from sim.central import SimCentral
from sim.central_server import SimCentralServer
from sim.lane_worker import headless_config, headless_lane, release, site_documents
from sim.link_soak import soak
from sim.mosquitto import Broker

SIGNER = SimCentral(hashlib.sha256(b"bench").digest())


def _ops(i: int) -> list[dict[str, Any]]:
    note = {"note_id": f"B{i:06d}", "plate": f"沪D{i % 100000:05d}", "valid_from": 0,
            "valid_until": 4e9, "lines": [[f"BK{i % 20:02d}", 1, 1.0]]}  # fmt: skip
    return [
        {"op": "note.upsert", "note": note},
        {"op": "book_line.set", "book_id": f"BK{i % 20:02d}", "line_no": 1, "remaining": 1e6 - i},
    ]


def deltas_into_ledger(work: Path, count: int) -> float:
    """Signed deltas checked and applied one by one, a transaction (an fsync) each."""
    central = SimCentralServer(SIGNER, "site-1", "127.0.0.1", 1)
    for i in range(count):
        central.change(_ops(i))
    ledger = Ledger(work / "direct.db")
    replica = Replica(ledger)
    keys = public_keys([SIGNER.public_key])
    started = time.perf_counter()
    for seq in range(1, count + 1):
        body = parse_body(open_central(central.deltas[seq], keys, site="site-1"))
        assert isinstance(body, Delta)
        replica.receive(body)
    elapsed = time.perf_counter() - started
    assert replica.applied == count
    ledger.close()
    return count / elapsed


@contextlib.asynccontextmanager
async def _linked(work: Path, broker: Broker, passes: int) -> Any:
    central = SimCentralServer(SIGNER, "site-1", "127.0.0.1", broker.port)
    central.change(site_documents(passes))
    ledger = Ledger(work / "lane.db")
    install(ledger, central.seq, central.snapshot_ops())
    ledger.close()
    mqtt = {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 1.0}
    lane = headless_lane(headless_config(work / "lane.db", SIGNER.public_key, mqtt))
    central_task = asyncio.create_task(central.run())
    lane_task = asyncio.create_task(lane.run())
    try:
        await lane.ready.wait()
        assert isinstance(lane.link, CentralLink)
        await asyncio.wait_for(lane.link.connected.wait(), 10)
        await asyncio.wait_for(central.connected.wait(), 10)
        yield lane, lane.link, central
    finally:
        for task in (lane_task, central_task):
            task.cancel()
            await asyncio.wait({task}, timeout=20)


async def _until(check: Any, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("not reached in time")
        await asyncio.sleep(0.002)


async def through_broker(work: Path, broker: Broker, deltas: int, passes: int) -> dict[str, Any]:
    """Deltas per second through the broker, and pass latency from commit to central."""
    async with _linked(work, broker, passes) as (lane, link, central):
        await _until(lambda: link.replica is not None and link.replica.applied == central.seq, 10)
        first = central.seq + 1
        started = time.perf_counter()
        for i in range(deltas):
            central.change(_ops(i))
        await _until(lambda: link.replica.applied == central.seq, 120)
        rate = deltas / (time.perf_counter() - started)
        assert link.replica.applied - first + 1 == deltas

        latencies = []
        for i in range(passes):
            record = release(i, "lane-01")
            committed = time.monotonic()
            await lane.commit_pass(record)
            await _until(lambda pid=record.pass_id: pid in central.passes, 10)
            latencies.append((time.monotonic() - committed) * 1000)
            await asyncio.sleep(0.02)  # one truck at a time, as at a lane
        puback = list(link.stats.puback_ms)[-passes:]
    return {
        "deltas_per_s_broker": round(rate),
        "pass_to_central_ms": _summary(latencies),
        "puback_ms": _summary(puback),
    }


async def neighbour(work: Path, broker: Broker, samples: int) -> dict[str, float]:
    """From a release committed at one lane to its note being used in the neighbour's ledger."""
    central = SimCentralServer(SIGNER, "site-1", "127.0.0.1", broker.port)
    central.change(site_documents(samples))
    lanes = []
    for lane_id in ("lane-01", "lane-02"):
        path = work / f"n-{lane_id}.db"
        ledger = Ledger(path)
        install(ledger, central.seq, central.snapshot_ops())
        ledger.close()
        mqtt = {"host": "127.0.0.1", "port": broker.port}
        lanes.append(headless_lane(headless_config(path, SIGNER.public_key, mqtt, lane_id)))
    a, b = lanes
    tasks = [asyncio.create_task(lane.run()) for lane in lanes]
    times = []
    try:
        for lane in lanes:
            await lane.ready.wait()
            assert isinstance(lane.link, CentralLink)
            await asyncio.wait_for(lane.link.connected.wait(), 10)
        await asyncio.sleep(0.5)
        for i in range(samples):
            started = time.monotonic()
            await a.commit_pass(release(i, "lane-01"))
            while True:
                docs = await b.in_ledger(b.ledger.load_note, f"N{i:05d}")
                if docs is not None and docs.status == "used":
                    break
                await asyncio.sleep(0.001)
            times.append((time.monotonic() - started) * 1000)
            await asyncio.sleep(0.02)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=20)
    return _summary(times)


def _summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 2), "p95": round(q[94], 2), "max": round(values[-1], 2)}


async def figures(deltas: int, passes: int) -> dict[str, Any]:
    """The throughput and latency figures."""
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        work = Path(tmp)
        direct = await asyncio.to_thread(deltas_into_ledger, work, deltas)
        with Broker(work / "broker") as broker:
            linked = await through_broker(work, broker, deltas, passes)
            used_next_door = await neighbour(work, broker, 100)
    return {"deltas_per_s_ledger": round(direct), **linked, "neighbour_ms": used_next_door}


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, help="run the soak with this many passes")
    parser.add_argument("--outages", type=int, default=10, help="broker stops in the soak")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the lane in the soak")
    parser.add_argument("--seed", type=int, default=1, help="seed of the soak's moments")
    parser.add_argument("--deltas", type=int, default=2000, help="deltas for the rate figures")
    parser.add_argument("--latency-passes", type=int, default=200, help="passes timed one by one")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    if args.passes is not None:
        result = asyncio.run(soak(args.passes, args.outages, args.kills, seed=args.seed, say=print))
        print(
            f"{result.outages} broker outages, {result.kills} SIGKILLs, "
            f"{result.lane_starts} lane starts in {result.elapsed_s:.1f} s; "
            f"central has {result.delivered} of {result.passes} passes, {result.missing} "
            f"missing, {len(result.unexpected)} unexpected, {result.duplicates_discarded} "
            f"redeliveries discarded; longest commit-to-central {result.max_delivery_s:.2f} s; "
            f"lane ledger equal to central's: {result.ledger_synced}"
        )
        if args.json:
            print(json.dumps(result.line()))
        return
    out = asyncio.run(figures(args.deltas, args.latency_passes))
    print(f"deltas applied, straight into the ledger: {out['deltas_per_s_ledger']:>8,} /s")
    print(f"deltas applied, through the broker:       {out['deltas_per_s_broker']:>8,} /s")
    p, a = out["pass_to_central_ms"], out["puback_ms"]
    print(f"pass commit -> central (ms): p50 {p['p50']}  p95 {p['p95']}  max {p['max']}")
    print(f"publish -> PUBACK (ms):      p50 {a['p50']}  p95 {a['p95']}  max {a['max']}")
    n = out["neighbour_ms"]
    print(f"release -> note used next door (ms): p50 {n['p50']}  p95 {n['p95']}  max {n['max']}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
