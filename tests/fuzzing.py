"""Shared pieces for fuzzing byte codecs with hypothesis.

The ``fuzz`` settings profile runs 100,000 examples with nothing that slows a passing run:
no example database, no deadline, generation (and shrinking, only on failure) as the phases.
Hypothesis' own cost per example (~0.3-0.4 ms here) dominates, so a fuzz test should draw
little (raw bytes and a seed) and build structured inputs from the seed itself.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, settings

# the suite runs 100,000; a developer iterating on a codec may run fewer
FUZZ_EXAMPLES = int(os.environ.get("GATEWAYD_FUZZ_EXAMPLES", "100000"))

settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    phases=(Phase.generate, Phase.shrink),
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
)
FUZZ = settings.get_profile("fuzz")


def build_stream(
    rng: random.Random,
    junk: bytes,
    make_frame: Callable[[random.Random], bytes],
    special: bytes,
    *,
    pieces: int = 8,
) -> bytes:
    """Valid frames, slices of ``junk`` and lone special bytes (frame starts, terminators),
    then a few mutations: bit flips, deletions, insertions, duplications, truncation."""
    parts: list[bytes] = []
    for _ in range(rng.randint(1, pieces)):
        roll = rng.random()
        if roll < 0.6:
            parts.append(make_frame(rng))
        elif roll < 0.85:
            start = rng.randrange(len(junk) + 1)
            parts.append(junk[start : start + rng.randint(0, 24)])
        else:
            parts.append(bytes([rng.choice(special)]))
    stream = bytearray(b"".join(parts))
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        mutate(rng, stream, special)
    return bytes(stream)


def mutate(rng: random.Random, stream: bytearray, special: bytes) -> None:
    """One random change to ``stream`` in place."""
    if not stream:
        stream.append(rng.randrange(256))
        return
    at = rng.randrange(len(stream))
    kind = rng.randrange(7)
    if kind == 0:
        stream[at] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del stream[at : at + rng.randint(1, 3)]
    elif kind == 2:
        stream[at:at] = bytes([rng.randrange(256)])
    elif kind == 3:
        stream[at:at] = bytes([rng.choice(special)])
    elif kind == 4:
        end = min(len(stream), at + rng.randint(1, 20))
        stream[at:at] = stream[at:end]
    elif kind == 5:
        stream[at] = rng.randrange(256)
    else:
        del stream[at:]


def chunks(rng: random.Random, stream: bytes) -> list[bytes]:
    """``stream`` cut where a serial read might cut it."""
    out, at = [], 0
    while at < len(stream):
        size = rng.choice((1, 2, 3, 5, 8, 13, 64, 4096))
        out.append(stream[at : at + size])
        at += size
    return out
