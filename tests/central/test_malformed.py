"""Messages no parser or database would take are refused as malformed, with a short reason,
rather than raising something the link does not expect."""

from __future__ import annotations

import base64
import json

import pytest

from drivers.release_note import key_id, public_keys
from gatewayd.envelope import Refusal, Refused, open_central
from sim.central import SimCentral

CENTRAL = SimCentral(bytes(range(32)))
KEYS = public_keys([CENTRAL.public_key])
KID = key_id(CENTRAL.key.public_key())


def signed_text(text: str) -> bytes:
    """An envelope whose body is exactly ``text``, signed by central."""
    sig = base64.urlsafe_b64encode(CENTRAL.key.sign(text.encode())).decode().rstrip("=")
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
