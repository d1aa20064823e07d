"""A lane reading plates and containers from rendered frames, over several traffic seeds.

    python -m bench.ocr_lane [--vehicles 40] [--seeds 3 4 5 6]

Runs ``gatewayd sim --fast --ocr`` once per seed and counts, beside the simulator's own
"wrong": trucks the scenario releases that the lane held or turned away (the cost of OCR
doubt: each goes to a human), and trucks the lane released that the scenario does not (the
one figure that must stay 0). Also which reasons the doubtful passes carried. One seed says
little: the renders of one run can be kind or hard.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
from typing import Any

from gatewayd.reasons import Outcome
from sim.run import Report, simulate
from sim.scenario import generate


def tally(report: Report) -> dict[str, Any]:
    """What one run amounts to: the simulator's own summary, and what OCR doubt cost."""
    results = report.results
    summary = report.summary()
    should_release = [r for r in results if r.vehicle.expect is Outcome.RELEASE]
    held = [r for r in should_release if r.outcome is not Outcome.RELEASE]
    reasons = collections.Counter(code for r in held for code in set(r.codes))
    return {
        "vehicles": summary["vehicles"],
        "should_release": len(should_release),
        "released": summary["release"],
        "releases_held": len(held),
        "wrong_releases": summary["wrong_releases"],
        "wrong": summary["wrong"],
        "held_for": dict(reasons.most_common()),
    }


def main() -> None:
    """Run every seed and print one line per seed, the totals, and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6])
    args = parser.parse_args()

    runs = {}
    for seed in args.seeds:
        report = asyncio.run(
            simulate(generate(args.vehicles, seed), seed=seed, fast=True, ocr=True)
        )
        runs[seed] = t = tally(report)
        print(
            f"seed {seed}: {t['released']} released of {t['vehicles']}; "
            f"{t['releases_held']} of {t['should_release']} releases held; "
            f"{t['wrong_releases']} wrong releases; wrong {t['wrong']}; "
            f"held for {t['held_for'] or '-'}"
        )
    held = sum(t["releases_held"] for t in runs.values())
    should = sum(t["should_release"] for t in runs.values())
    wrong_releases = sum(t["wrong_releases"] for t in runs.values())
    print(
        f"all seeds: {held} of {should} releases held ({100 * held / max(should, 1):.1f} %), "
        f"{wrong_releases} wrong releases"
    )
    print(json.dumps({"runs": runs, "releases_held": held, "should_release": should}))


if __name__ == "__main__":
    main()
