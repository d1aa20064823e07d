"""Envelopes from central, checked from bytes: everything not signed, current and well-formed
is refused with a reason before any field is trusted."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.release_note import public_keys
from gatewayd.commands import Alert
from gatewayd.envelope import (
    Refusal,
    Refused,
    alert_row,
    lane_message,
    open_central,
    outbox_message,
    seal_central,
)
from sim.central import SimCentral

CENTRAL = SimCentral(bytes(range(32)))
KEYS = public_keys([CENTRAL.public_key])
BODY = {"schema": 1, "type": "head", "site": "site-1", "seq": 3, "issued_at": 1.0}


def sealed(body: dict[str, object] = BODY) -> bytes:
    return seal_central(body, CENTRAL.key)


def refusal(payload: bytes, **kwargs: object) -> Refusal:
    with pytest.raises(Refused) as info:
        open_central(payload, KEYS, **kwargs)  # type: ignore[arg-type]
    return info.value.reason


def test_a_sealed_body_opens_to_exactly_itself() -> None:
    assert open_central(sealed(), KEYS, site="site-1") == BODY


def test_the_body_text_is_signed_as_sent_so_any_json_writer_can_produce_it() -> None:
    text = '{"site": "site-1", "type": "head", "schema": 1, "seq": 3,   "issued_at": 1.0}'
    envelope = {
        "v": 1,
        "kid": json.loads(sealed())["kid"],
        "body": text,
        "sig": base64.urlsafe_b64encode(CENTRAL.key.sign(text.encode())).decode().rstrip("="),
    }
    assert open_central(json.dumps(envelope).encode(), KEYS) == BODY


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (json.dumps(BODY).encode(), Refusal.UNSIGNED),
        (json.dumps({"v": 1, "kid": "x", "body": json.dumps(BODY)}).encode(), Refusal.UNSIGNED),
        (b"{not json", Refusal.MALFORMED),
        (b"\xff\xfe\x00garbage", Refusal.MALFORMED),
        (b"[1, 2, 3]", Refusal.MALFORMED),
        (b"", Refusal.MALFORMED),
    ],
    ids=["bare-body", "no-sig", "invalid-json", "not-utf8", "array", "empty"],
)
def test_unsigned_and_malformed_payloads_are_refused(payload: bytes, reason: Refusal) -> None:
    assert refusal(payload) is reason


def test_a_body_changed_after_signing_is_refused() -> None:
    envelope = json.loads(sealed())
    envelope["body"] = envelope["body"].replace('"seq":3', '"seq":4')
    assert refusal(json.dumps(envelope).encode()) is Refusal.BAD_SIGNATURE


def test_a_signature_by_another_key_under_centrals_key_id_is_refused() -> None:
    envelope = json.loads(sealed())
    other = Ed25519PrivateKey.generate()
    sig = other.sign(envelope["body"].encode())
    envelope["sig"] = base64.urlsafe_b64encode(sig).decode().rstrip("=")
    assert refusal(json.dumps(envelope).encode()) is Refusal.BAD_SIGNATURE


def test_a_key_the_lane_does_not_hold_is_refused() -> None:
    assert refusal(seal_central(BODY, Ed25519PrivateKey.generate())) is Refusal.UNKNOWN_KEY


def test_ten_megabytes_are_refused_before_being_parsed() -> None:
    huge = sealed({**BODY, "padding": "x" * 10_000_000})
    assert len(huge) > 10_000_000
    assert refusal(huge) is Refusal.OVERSIZED
    # the same message under a limit that admits it is genuine: the size alone refused it
    assert open_central(huge, KEYS, max_bytes=20_000_000)["padding"][:3] == "xxx"


def test_another_sites_message_is_refused_when_the_site_is_given() -> None:
    assert refusal(sealed(), site="site-2") is Refusal.WRONG_SITE


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**BODY, "schema": 2}, Refusal.SCHEMA),
        ({k: v for k, v in BODY.items() if k != "schema"}, Refusal.SCHEMA),
        ({k: v for k, v in BODY.items() if k != "type"}, Refusal.MALFORMED),
    ],
    ids=["future-schema", "no-schema", "no-type"],
)
def test_bodies_without_a_known_schema_or_type_are_refused(
    body: dict[str, object], reason: Refusal
) -> None:
    assert refusal(sealed(body)) is reason


def test_an_envelope_of_an_unknown_version_is_refused() -> None:
    envelope = json.loads(sealed())
    envelope["v"] = 2
    assert refusal(json.dumps(envelope).encode()) is Refusal.SCHEMA


def test_lane_messages_carry_the_schema_and_embed_the_outbox_payload_verbatim() -> None:
    payload = json.dumps({"pass_id": "P1", "plate": "沪A12345"}, ensure_ascii=False)
    wire = json.loads(outbox_message("site-1", "lane-01", "pass", 17, payload))
    assert wire == {
        "schema": 1,
        "type": "pass",
        "site": "site-1",
        "lane": "lane-01",
        "outbox_seq": 17,
        "pass": {"pass_id": "P1", "plate": "沪A12345"},
    }
    status = json.loads(lane_message("status", "site-1", "lane-01", state="offline"))
    assert status == {
        "schema": 1,
        "type": "status",
        "site": "site-1",
        "lane": "lane-01",
        "state": "offline",
    }


def test_alert_rows_have_unique_keys() -> None:
    keys = {alert_row(Alert("HOLD", "x", "P1"), "lane-01", 5.0)[0] for _ in range(100)}
    assert len(keys) == 100
    _, payload = alert_row(Alert("HOLD", "x", "P1"), "lane-01", 5.0)
    assert payload["kind"] == "HOLD"
    assert payload["pass_id"] == "P1"
    assert payload["at"] == 5.0
