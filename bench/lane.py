"""Decision latency of one lane: from the reading that completes a pass to the barrier command,
the ledger commit included, over simulated traffic on real transports.

    python -m bench.lane [--vehicles 200] [--seed 1] [--direct]

Prints the figures of ``gatewayd sim --json`` and where the time goes: the ledger commit
(SQLite, WAL, synchronous=FULL: one fsync per pass) and the relay write (Modbus TCP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from typing import Any

from gatewayd import daemon
from gatewayd.commands import CommitPass, OpenBarrier
from gatewayd.ledger import Ledger
from sim.run import simulate
from sim.scenario import generate


def _pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return round(values[0], 2) if values else float("nan")
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 2)


def main() -> None:
    """Run the benchmark and print one table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--direct", action="store_true", help="readings without device protocols")
    args = parser.parse_args()

    spent: dict[str, list[float]] = defaultdict(list)
    execute = daemon.Lane._execute

    async def timed(self: daemon.Lane, command: Any, cause: float | None) -> None:
        started = time.perf_counter()
        await execute(self, command, cause)
        elapsed = (time.perf_counter() - started) * 1000
        if isinstance(command, OpenBarrier):
            spent["relay write (barrier up), ms"].append(elapsed)
        elif isinstance(command, CommitPass):
            # includes what the commit leads to: the barrier command for a release
            spent["commit + barrier command, ms"].append(elapsed)

    commit = Ledger.commit_pass

    def timed_commit(self: Ledger, record: Any) -> Any:
        started = time.perf_counter()
        try:
            return commit(self, record)
        finally:
            spent["ledger commit (on its thread), ms"].append(
                (time.perf_counter() - started) * 1000
            )

    daemon.Lane._execute = timed  # type: ignore[method-assign]
    Ledger.commit_pass = timed_commit  # type: ignore[method-assign]
    report = asyncio.run(
        simulate(generate(args.vehicles, args.seed), fast=True, direct=args.direct)
    )
    summary = report.summary()
    print(f"{'what':38} {'n':>5} {'p50':>8} {'p95':>8} {'max':>8}")
    decision = [r.decision_ms for r in report.results if r.decision_ms is not None]
    rows = {"decision (reading -> barrier), ms": decision, **spent}
    for name, values in rows.items():
        print(
            f"{name:38} {len(values):5d} {_pct(values, 50):8.2f} {_pct(values, 95):8.2f} "
            f"{max(values):8.2f}"
        )
    print(f"wrong {summary['wrong']}, collisions {report.collisions}, {report.elapsed_s:.1f} s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
