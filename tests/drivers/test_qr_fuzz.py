"""Fuzzing the QR scanner codec and the payload checks behind it: no exception escapes, every
scan is a whole, printable line that really is in the input, and no altered or forged note
ever verifies."""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.codec import Rejected
from drivers.qr import QrScan, ScannerLineDecoder, describe
from drivers.release_note import ReleaseNote, decode, encode, public_key_b64, public_keys
from tests.drivers.fuzz_batch import BATCH, MIN_INPUTS, fuzz_batches, mutate, splits

CENTRAL = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FORGER = Ed25519PrivateKey.from_private_bytes(bytes(32))
KEYS = public_keys([public_key_b64(CENTRAL)])
NOTES = [
    ReleaseNote("RN-1", "沪A12345", ("MSCU1234566",), 1_700_000_000, 1_700_086_400),
    ReleaseNote("RN-2024-000777", "粤B8K2Q9", (), 1_700_000_000, 1_700_000_000),
    ReleaseNote("X" * 64, "京A00001", ("TGHU7654320", "MSCU1234566"), 0, 2**40),
]
MAX_LINE = 600
LINES = [encode(n, CENTRAL).encode() for n in NOTES] + [
    encode(NOTES[0], FORGER).encode(),
    b"MEBKM:URL:http\\://en.wikipedia.org/wiki/Main_Page;;",
    b"http://google.com/gwt/n?u=bluenile.com",
    "沪A12345 放行".encode(),
    b"GRN1.e30.AA",
]
ENDS = [b"\r", b"\n", b"\r\n"]


def _inputs(rng: random.Random) -> list[bytes]:
    out = []
    for _ in range(BATCH):
        if rng.random() < 0.15:
            out.append(rng.randbytes(rng.randint(0, 400)))
            continue
        lines = [rng.choice(LINES) + rng.choice(ENDS) for _ in range(rng.randint(1, 3))]
        out.append(mutate(rng, b"".join(lines), rng.randint(0, 5)))
    return out


def _is_whole_line(line: bytes, data: bytes) -> bool:
    """``line`` occurs in ``data`` between line ends (or the start of the input)."""
    start = data.find(line)
    while start != -1:
        end = start + len(line)
        if (start == 0 or data[start - 1] in b"\r\n") and end < len(data) and data[end] in b"\r\n":
            return True
        start = data.find(line, start + 1)
    return False


def _run_one(data: bytes, rng: random.Random) -> int:
    """Decode ``data`` in random chunks and check every scan; returns notes that verified."""
    decoder = ScannerLineDecoder(max_line=MAX_LINE)
    out: list[QrScan | Rejected] = []
    for chunk in splits(rng, data):
        out += decoder.feed(chunk)
        assert decoder.buffered <= MAX_LINE
    out += decoder.flush()
    verified = 0
    for item in out:
        if isinstance(item, Rejected):
            continue
        assert isinstance(item, QrScan)
        raw = item.payload.encode("utf-8")
        assert len(raw) <= MAX_LINE
        assert item.payload.replace("\t", "").isprintable()
        assert _is_whole_line(raw, data), item
        shown = describe(item.payload, KEYS)
        if shown.get("verified") is True:
            # a payload that verifies carries exactly a note central signed
            assert decode(item.payload, KEYS) in NOTES
            verified += 1
    return verified


def test_fuzz_qr_scanner_random_and_mutated_inputs() -> None:
    count, verified = fuzz_batches(_run_one, _inputs, extra_size=300)
    assert count >= MIN_INPUTS
    assert verified > 1000  # intact notes do get through: the verify branch was exercised
