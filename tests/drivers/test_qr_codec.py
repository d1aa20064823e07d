"""QR scanner line codec, de-duplication and payload description, from bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.codec import Rejected
from drivers.qr import Deduplicator, QrScan, ScannerLineDecoder, describe
from drivers.release_note import ReleaseNote, encode, public_key_b64, public_keys

CENTRAL = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FORGER = Ed25519PrivateKey.from_private_bytes(bytes(32))
NOTE = ReleaseNote("RN-2024-00042", "沪A12345", ("MSCU1234566",), 1_700_000_000, 1_700_086_400)
PAYLOAD = encode(NOTE, CENTRAL)
KEYS = public_keys([public_key_b64(CENTRAL)])


def payloads(items: list[QrScan | Rejected]) -> list[str]:
    return [i.payload for i in items if isinstance(i, QrScan)]


@pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
def test_each_line_ending_ends_a_payload(end: bytes) -> None:
    decoder = ScannerLineDecoder()
    out = decoder.feed(PAYLOAD.encode() + end + b"http://example.com/x" + end)
    assert out == [QrScan(PAYLOAD, "scanner"), QrScan("http://example.com/x", "scanner")]


def test_every_split_gives_the_same_scans() -> None:
    stream = b"\r\n" + PAYLOAD.encode() + b"\r\n\xe6\xb2\xaaA12345\n"
    whole = ScannerLineDecoder().feed(stream)
    assert payloads(whole) == [PAYLOAD, "沪A12345"]
    for cut in range(len(stream) + 1):
        decoder = ScannerLineDecoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == whole, cut


def test_an_unterminated_line_waits_for_its_end() -> None:
    decoder = ScannerLineDecoder()
    assert decoder.feed(PAYLOAD.encode()) == []
    assert decoder.feed(b"\r\n") == [QrScan(PAYLOAD, "scanner")]
    decoder.feed(b"GRN1.half")
    assert [r.reason for r in decoder.flush() if isinstance(r, Rejected)] == [
        "unterminated line at end of input"
    ]


def test_a_line_cut_short_before_a_pause_is_never_joined_to_the_next_scan() -> None:
    decoder = ScannerLineDecoder(idle_gap_s=1.0)
    assert decoder.feed(PAYLOAD[:20].encode(), now=0.0) == []  # the scanner reset mid-line
    out = decoder.feed(PAYLOAD.encode() + b"\r", now=90.0)  # the next driver's scan
    assert [r.reason for r in out if isinstance(r, Rejected)] == [
        "line cut short (no end before a pause)"
    ]
    assert out[-1] == QrScan(PAYLOAD, "scanner")
    # a line sent in pieces closer together than the gap is one line
    for i, piece in enumerate((PAYLOAD[:20], PAYLOAD[20:] + "\r")):
        out = decoder.feed(piece.encode(), now=100.0 + 0.5 * i)
    assert out == [QrScan(PAYLOAD, "scanner")]


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\x00\x00",  # line noise when the adapter powers up
        b"\x02" + PAYLOAD.encode() + b"\x03",  # STX/ETX framing the scanner was not set to
        b"\xff\xfe\xfa garbled at the wrong baud rate",
        b"GRN1.abc\x1bdef",  # escape inside a payload
    ],
)
def test_junk_lines_are_rejected_and_the_next_line_is_read(junk: bytes) -> None:
    out = ScannerLineDecoder().feed(junk + b"\r\n" + PAYLOAD.encode() + b"\r\n")
    assert isinstance(out[0], Rejected)
    assert out[1:] == [QrScan(PAYLOAD, "scanner")]


def test_long_lines_are_bounded_and_rejected_whole() -> None:
    decoder = ScannerLineDecoder(max_line=100)
    out = decoder.feed(b"A" * 50)
    out += decoder.feed(b"B" * 5000)
    assert decoder.buffered <= 100
    out += decoder.feed(b"C" * 5000 + b"\r\nshort\r\n")
    assert [r.reason for r in out if isinstance(r, Rejected)] == ["line too long"]
    assert payloads(out) == ["short"]  # nothing of the long line's tail slips through


def test_blank_lines_are_skipped() -> None:
    assert ScannerLineDecoder().feed(b"\r\n\r\n   \r\n") == []


def test_deduplicator_folds_repeats_within_the_window() -> None:
    dedup = Deduplicator(window_s=5.0)
    assert dedup.accept(PAYLOAD, 100.0)
    assert not dedup.accept(PAYLOAD, 101.0)
    assert dedup.accept("other", 101.5)
    # held in view: every sighting extends the window
    assert not any(dedup.accept(PAYLOAD, t) for t in (104.0, 108.0, 112.0))
    assert dedup.accept(PAYLOAD, 117.5)  # gone for more than the window: a new scan
    dedup.reset()
    assert dedup.accept(PAYLOAD, 117.6)


def test_deduplicator_memory_is_bounded() -> None:
    dedup = Deduplicator(window_s=1000.0, max_entries=8)
    for i in range(100):
        assert dedup.accept(f"code-{i}", float(i))
    assert len(dedup._last_seen) == 8
    assert not dedup.accept("code-99", 100.0)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["A", "B", "C"]), st.floats(0, 20, allow_nan=False)),
        max_size=40,
    ),
    window=st.floats(0.5, 10),
)
def test_deduplicator_matches_its_definition(
    events: list[tuple[str, float]], window: float
) -> None:
    """accept(p, t) is True exactly when p was not seen in (t - window, t]... the last time."""
    dedup = Deduplicator(window)
    last: dict[str, float] = {}
    now = 0.0
    for payload, step in events:
        now += step
        expected = payload not in last or now - last[payload] > window
        assert dedup.accept(payload, now) is expected
        last[payload] = now


def test_describe_release_note_with_and_without_keys() -> None:
    shown = describe(PAYLOAD)
    assert shown["kind"] == "release_note"
    assert shown["verified"] is None
    assert shown["note"] == {
        "id": "RN-2024-00042",
        "plate": "沪A12345",
        "containers": ["MSCU1234566"],
        "valid_from": 1_700_000_000,
        "valid_until": 1_700_086_400,
    }
    assert describe(PAYLOAD, KEYS)["verified"] is True


def test_describe_refuses_forged_and_altered_notes() -> None:
    forged = describe(encode(NOTE, FORGER), KEYS)
    assert forged["verified"] is False
    assert "unknown_key" in str(forged["error"])
    body = PAYLOAD.split(".")[1]
    altered = PAYLOAD.replace(body, body[:-2] + ("AA" if body[-2:] != "AA" else "BB"))
    shown = describe(altered, KEYS)
    assert shown["verified"] is False
    assert describe("GRN1.not-a-note", KEYS) == {
        "kind": "release_note",
        "payload": "GRN1.not-a-note",
        "verified": False,
        "note": None,
        "error": "malformed: expected GRN1.<body>.<signature>",
    }


def test_describe_foreign_codes() -> None:
    assert describe("https://example.com", KEYS) == {
        "kind": "foreign",
        "payload": "https://example.com",
    }


def _run_cli(tmp_path: Path, data: bytes, *args: str) -> list[dict[str, object]]:
    capture = tmp_path / "scanner.txt"
    capture.write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-m", "drivers.qr", str(capture), *args],
        capture_output=True,
        check=True,
        text=True,
    )
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_cli_reads_payload_lines(tmp_path: Path) -> None:
    data = b"\r\n".join(
        [
            PAYLOAD.encode(),
            b"MECARD:N:Sean Owen;;",
            b"\x00\x01noise",
            encode(NOTE, FORGER).encode(),
        ]
    )
    key = public_key_b64(CENTRAL)
    *readings, counts = _run_cli(tmp_path, data, "--key", key)
    assert counts == {"accepted": 3, "rejected": 1}
    assert [r["kind"] for r in readings] == ["release_note", "foreign", "release_note"]
    assert [r.get("verified") for r in readings] == [True, None, False]
    *readings, counts = _run_cli(tmp_path, data)
    assert [r.get("verified") for r in readings] == [None, None, None]
    note = readings[0]["note"]
    assert isinstance(note, dict)
    assert note["plate"] == "沪A12345"
