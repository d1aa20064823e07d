"""Messages no parser or database would take are refused as malformed, with a short reason,
rather than raising something the link does not expect."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from drivers.release_note import key_id, public_keys
from gatewayd.envelope import Refusal, Refused, open_central
from gatewayd.link import CentralLink
from gatewayd.sync import LINE_NO_MAX, Command, Delta, parse_body
from sim.lane_worker import headless_config
from tests.central.helpers import SIGNER, SITE, mqtt_settings

KEYS = public_keys([SIGNER.public_key])
KID = key_id(SIGNER.key.public_key())


def signed_text(text: str) -> bytes:
    """An envelope whose body is exactly ``text``, signed by central."""
    sig = base64.urlsafe_b64encode(SIGNER.key.sign(text.encode())).decode().rstrip("=")
    return json.dumps({"v": 1, "kid": KID, "body": text, "sig": sig}).encode()


def refused(payload: bytes) -> Refused:
    with pytest.raises(Refused) as info:
        open_central(payload, KEYS, site="site-1")
    return info.value


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000,
        b'{"v": 1, "kid": "' + KID.encode() + b'", "body": "\\ud800", "sig": "AAAA"}',
        b'{"v": ' + b"1" * 5000 + b"}",
        signed_text("[" * 100_000),
        signed_text('{"schema": ' + "1" * 5000 + "}"),
    ],
    ids=["nested-envelope", "lone-surrogate", "long-integer", "nested-body", "long-int-body"],
)
def test_payloads_the_json_parser_cannot_take_are_refused_as_malformed(payload: bytes) -> None:
    refusal = refused(payload)
    assert refusal.reason is Refusal.MALFORMED
    assert len(str(refusal)) < 300


def test_a_refusal_names_a_huge_field_briefly() -> None:
    payload = json.dumps({"v": 1, "kid": "k" * 500_000, "body": "{}", "sig": "AAAA"}).encode()
    refusal = refused(payload)
    assert refusal.reason is Refusal.UNKNOWN_KEY
    assert len(str(refusal)) < 300


# -- integers SQLite cannot hold -----------------------------------------------------------------


def delta(op: dict[str, object], seq: int = 1) -> dict[str, object]:
    return {"schema": 1, "type": "delta", "site": "site-1", "seq": seq, "issued_at": 0, "ops": [op]}


NOTE = {"note_id": "N1", "plate": "沪A12345", "valid_from": 0, "valid_until": 4e9}


@pytest.mark.parametrize(
    "body",
    [
        delta({"op": "book_line.set", "book_id": "BK1", "line_no": 2**70, "remaining": 1}),
        delta({"op": "book_line.set", "book_id": "BK1", "line_no": -1, "remaining": 1}),
        delta({"op": "note.upsert", "note": {**NOTE, "lines": [["BK1", 2**31, 1.0]]}}),
        delta({"op": "pass.confirm", "pass_id": "P1"}, seq=2**63),
        {"schema": 1, "type": "head", "site": "site-1", "seq": 2**70, "issued_at": 0},
    ],
    ids=["book-line", "negative-line", "note-line", "delta-seq", "head-seq"],
)
def test_integers_beyond_what_the_ledger_stores_are_malformed(body: dict[str, object]) -> None:
    with pytest.raises(Refused) as info:
        parse_body(body)
    assert info.value.reason is Refusal.MALFORMED


def test_the_largest_line_number_is_taken() -> None:
    op = {"op": "book_line.set", "book_id": "BK1", "line_no": LINE_NO_MAX, "remaining": 1}
    parsed = parse_body(delta(op))
    assert isinstance(parsed, Delta)
    assert parsed.ops[0].line_no == LINE_NO_MAX  # type: ignore[union-attr]


def test_a_neighbours_pass_drawing_from_line_two_to_the_seventieth_is_malformed(
    tmp_path: Path,
) -> None:
    config = headless_config(
        tmp_path / "lane.db", SIGNER.public_key, mqtt_settings(1883), "lane-01"
    )
    record = {
        "pass_id": "X1",
        "lane": "lane-02",
        "decision": "release",
        "note_id": "N00003",
        "write_off": [{"book": "BK00", "line": 2**70, "quantity": 1.0}],
    }
    message = {"schema": 1, "type": "pass", "site": SITE, "lane": "lane-02", "pass": record}
    checked = CentralLink(config)._check("pass", json.dumps(message).encode(), "lane-02")
    assert isinstance(checked, Refused)
    assert checked.reason is Refusal.MALFORMED


COMMAND = {"schema": 1, "type": "command", "site": "site-1", "lane": "lane-01", "command_id": "c1"}


@pytest.mark.parametrize("at", [float("nan"), float("inf"), float("-inf")])
def test_a_command_issued_at_no_real_time_is_malformed(at: float) -> None:
    # NaN would slip past the age check (every comparison with it is false)
    with pytest.raises(Refused) as info:
        parse_body({**COMMAND, "issued_at": at, "action": "status"})
    assert info.value.reason is Refusal.MALFORMED
    assert isinstance(parse_body({**COMMAND, "issued_at": 0.0, "action": "status"}), Command)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_remaining_quantity_that_is_no_number_is_malformed(value: float) -> None:
    op = {"op": "book_line.set", "book_id": "BK1", "line_no": 1, "remaining": value}
    with pytest.raises(Refused) as info:
        parse_body(delta(op))
    assert info.value.reason is Refusal.MALFORMED


@pytest.mark.parametrize(
    "lines",
    [[["BK1", 1, 5.0], ["BK1", 1, 3.0]], [["BK1", 1, -5.0]], [["BK1", 1, 0.0]]],
    ids=["line-twice", "negative", "zero"],
)
def test_a_note_drawing_a_line_twice_or_no_positive_quantity_is_malformed(
    lines: list[list[object]],
) -> None:
    with pytest.raises(Refused) as info:
        parse_body(delta({"op": "note.upsert", "note": {**NOTE, "lines": lines}}))
    assert info.value.reason is Refusal.MALFORMED
    parse_body(delta({"op": "note.upsert", "note": {**NOTE, "lines": [["BK1", 1, 5.0]]}}))
