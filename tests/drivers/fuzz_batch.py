"""Helpers shared by the codec fuzz tests (a helper module, not a test).

Hypothesis draws a seed (and one input of its own) per example; each example then makes a
batch of inputs from ``random.Random(seed)``, so a run covers 100,000+ inputs per codec in
seconds (hypothesis' own cost per example, ~0.3-0.4 ms here, is paid once per batch instead of
once per input) and a failure is still reported with the seed that reproduces it.

Inputs are built from valid frames or sentences, random bytes and a format's special bytes,
then mutated (``mutate``) and cut as reads from a port would cut them (``splits``,
``chunks``).
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import random
import re
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# GATEWAYD_FUZZ_SCALE=10 runs ten times the examples (for a long soak, not for CI)
SCALE = max(1, int(os.environ.get("GATEWAYD_FUZZ_SCALE", "1")))
BATCH = 100  # inputs made per hypothesis example
EXAMPLES = 1000 * SCALE  # x BATCH = 100,000 inputs per codec
MIN_INPUTS = 100_000

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz_batches(
    check: Callable[[bytes, random.Random], int],
    inputs: Callable[[random.Random], Sequence[bytes]],
    *,
    extra_size: int = 200,
) -> tuple[int, int]:
    """Run ``check(data, rng)`` on every input of the batches: each hypothesis example draws
    a seed for ``inputs(rng)`` and one input of its own (up to ``extra_size`` bytes). Returns
    how many inputs were checked and the sum of what ``check`` returned (what got through)."""
    count = through = 0

    @FUZZ_SETTINGS
    @given(seed=st.integers(0, 2**64), extra=st.binary(max_size=extra_size))
    def run(seed: int, extra: bytes) -> None:
        nonlocal count, through
        rng = random.Random(seed)
        for data in [extra, *inputs(rng)]:
            through += check(data, rng)
            count += 1

    run()
    return count, through


SPECIAL = [b"$", b"*", b",", b".", b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"*00", b"A", b"V"]
SPECIAL += [
    b"0",
    b"9",
    b"-",
    b"N",
    b"S",
    b"E",
    b"W",
    b"$GPRMC,",
    b"$GNGGA,",
    b"GRN1.",
    b"\xe6\xb2\xaa",
]
_SENTENCE = re.compile(rb"\$([^$*\r\n]*)\*[0-9A-Fa-f]{2}")


def nmea_checksum(body: bytes) -> int:
    """XOR of the bytes between '$' and '*'."""
    return functools.reduce(operator.xor, body, 0)


def refix_checksums(data: bytes) -> bytes:
    """Give every ``$...*HH`` run its correct checksum, so mutated fields get past it."""
    return _SENTENCE.sub(lambda m: b"$" + m.group(1) + b"*%02X" % nmea_checksum(m.group(1)), data)


def mutate(
    rng: random.Random, data: bytes, rounds: int, special: Sequence[bytes] = SPECIAL
) -> bytes:
    """Apply ``rounds`` random edits: bit flips, ``special`` bytes, deletions, insertions,
    duplicated spans, truncation."""
    buf = bytearray(data)
    for _ in range(rounds):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = rng.randrange(256)
        elif op == 2:
            del buf[pos : pos + rng.randint(1, 12)]
        elif op == 3:
            buf[pos:pos] = rng.choice(special)
        elif op == 4:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 5 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start : start + rng.randint(1, 40)]
        elif op == 6:
            del buf[pos:]
    return bytes(buf)


def build_stream(
    rng: random.Random,
    junk: bytes,
    make_frame: Callable[[random.Random], bytes],
    special: bytes,
    *,
    pieces: int = 8,
) -> bytes:
    """Valid frames, slices of ``junk`` and lone special bytes (frame starts, terminators),
    then a few mutations."""
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
    singles = [bytes([byte]) for byte in special]
    return mutate(rng, b"".join(parts), rng.choice((0, 0, 1, 1, 2, 3)), singles)


def splits(rng: random.Random, data: bytes) -> list[bytes]:
    """``data`` cut into 1-5 chunks at random places, as reads from a port arrive."""
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 4)))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def chunks(rng: random.Random, stream: bytes) -> list[bytes]:
    """``stream`` cut where a serial read might cut it, down to single bytes."""
    out, at = [], 0
    while at < len(stream):
        size = rng.choice((1, 2, 3, 5, 8, 13, 64, 4096))
        out.append(stream[at : at + size])
        at += size
    return out
