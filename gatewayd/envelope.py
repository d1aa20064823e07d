"""Messages between a lane and central: signed envelopes from central, plain JSON from the lane.

Everything central sends is an envelope (docs/mqtt.md)::

    {"v": 1, "kid": "1a2b3c4d", "body": "<JSON text>", "sig": "<base64url>"}

``sig`` is central's Ed25519 signature over the UTF-8 bytes of the ``body`` text exactly as sent
(no re-serialisation, so any JSON writer can produce it); ``kid`` names the key, as release
notes do (drivers.release_note.key_id), so central can rotate keys. The body is a JSON object
with a ``schema`` version, a ``type`` and the ``site`` it is meant for. ``open_central`` checks
all of that before any field is trusted and raises ``Refused`` with a one-word reason.

The lane's own messages (passes, alerts, status, resync requests) are JSON objects with the
same ``schema`` field; the broker's access rules, not signatures, say who may publish them.

Pure: bytes in, dicts or ``Refused`` out; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import reprlib
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drivers.release_note import b64url, key_id
from gatewayd.commands import Alert

ENVELOPE_VERSION = 1
SCHEMA = 1  # version of the bodies' and the lane messages' fields
DEFAULT_MAX_BYTES = 1 << 20


class Refusal(StrEnum):
    """Why a message from the broker was not accepted (the counters are keyed by these)."""

    OVERSIZED = "oversized"  # longer than the configured limit; not even parsed
    MALFORMED = "malformed"  # not JSON, not an object, fields missing or of the wrong type
    UNSIGNED = "unsigned"  # no envelope or no signature
    UNKNOWN_KEY = "unknown_key"  # signed by a key this lane does not hold
    BAD_SIGNATURE = "bad_signature"  # the signature does not verify
    SCHEMA = "schema"  # a schema or envelope version this lane does not speak
    WRONG_SITE = "wrong_site"  # meant for another site
    WRONG_LANE = "wrong_lane"  # meant for another lane, or speaking for one it did not come from
    WRONG_TOPIC = "wrong_topic"  # a message type that does not belong on this topic
    STALE = "stale"  # a ledger sequence already applied (a replay or a redelivery)
    REPLAYED = "replayed"  # a command id already carried out
    EXPIRED = "expired"  # a command issued too long ago (or too far in the future)
    NOT_CURRENT = "not_current"  # a command for a pass that is not the one at the lane


class Refused(ValueError):
    """A message that changes nothing; ``reason`` is machine-readable, the text is for logs."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def _shown(value: object) -> str:
    """A field from the broker as a refusal names it: short, however long or deep it is."""
    return reprlib.repr(value)


def _b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Refused(Refusal.MALFORMED, f"signature is not base64url: {exc}") from None


def _json(text: str | bytes, what: str) -> Any:
    """Parse JSON text from the broker; anything the parser cannot take is ``Refused``."""
    try:
        return json.loads(text)
    except RecursionError:  # nested deeper than the parser's stack allows
        raise Refused(Refusal.MALFORMED, f"{what}: nested too deeply") from None
    except ValueError as exc:  # also not UTF-8, and integers too long to convert
        raise Refused(Refusal.MALFORMED, f"{what}: {exc}") from None


def dumps(obj: object) -> str:
    """Compact JSON text (UTF-8 kept readable)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def seal_central(body: Mapping[str, Any], key: Ed25519PrivateKey) -> bytes:
    """Central's side: sign a body and wrap it in an envelope (the simulator and tests use it).

    >>> sk = Ed25519PrivateKey.from_private_bytes(bytes(32))
    >>> body = {"schema": 1, "type": "head", "site": "S1", "seq": 7}
    >>> open_central(seal_central(body, sk), {key_id(sk.public_key()): sk.public_key()}) == body
    True
    """
    text = dumps(dict(body))
    envelope = {
        "v": ENVELOPE_VERSION,
        "kid": key_id(key.public_key()),
        "body": text,
        "sig": b64url(key.sign(text.encode("utf-8"))),
    }
    return dumps(envelope).encode("utf-8")


def open_central(
    payload: bytes,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    site: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Check an envelope from central and return its body; raise ``Refused`` saying why not.

    The size is checked before anything is parsed, the signature before any body field is
    read. With ``site`` given, a body for another site is refused.
    """
    if len(payload) > max_bytes:
        raise Refused(Refusal.OVERSIZED, f"{len(payload)} bytes, limit {max_bytes}")
    envelope = _json(payload, "not JSON")
    if not isinstance(envelope, dict):
        raise Refused(Refusal.MALFORMED, "not a JSON object")
    sig, kid, text = envelope.get("sig"), envelope.get("kid"), envelope.get("body")
    if not sig or "body" not in envelope:
        raise Refused(Refusal.UNSIGNED, "no signed envelope")
    if envelope.get("v") != ENVELOPE_VERSION:
        raise Refused(Refusal.SCHEMA, f"envelope version {_shown(envelope.get('v'))}")
    if not isinstance(sig, str) or not isinstance(kid, str) or not isinstance(text, str):
        raise Refused(Refusal.MALFORMED, "kid, body and sig must be strings")
    key = keys.get(kid)
    if key is None:
        raise Refused(Refusal.UNKNOWN_KEY, f"signed by key {_shown(kid)}, which this lane lacks")
    try:
        signed = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escaped in the envelope ("\ud800")
        raise Refused(Refusal.MALFORMED, "body is not valid Unicode") from None
    try:
        key.verify(_b64d(sig), signed)
    except InvalidSignature:
        raise Refused(Refusal.BAD_SIGNATURE, "signature does not verify") from None
    body = _json(text, "body is not JSON")
    if not isinstance(body, dict):
        raise Refused(Refusal.MALFORMED, "body is not a JSON object")
    if body.get("schema") != SCHEMA:
        raise Refused(
            Refusal.SCHEMA, f"schema {_shown(body.get('schema'))}, this lane speaks {SCHEMA}"
        )
    if not isinstance(body.get("type"), str):
        raise Refused(Refusal.MALFORMED, "body has no type")
    if site is not None and body.get("site") != site:
        raise Refused(Refusal.WRONG_SITE, f"for site {_shown(body.get('site'))}, this is {site!r}")
    return body


# -- the lane's messages ------------------------------------------------------------------------


def lane_message(kind: str, site: str, lane: str, **fields: Any) -> bytes:
    """A message from the lane: ``{"schema": 1, "type": kind, "site", "lane", ...fields}``."""
    return dumps({"schema": SCHEMA, "type": kind, "site": site, "lane": lane, **fields}).encode()


def alert_row(alert: Alert, lane_id: str, at: float) -> tuple[str, dict[str, Any]]:
    """The outbox key and payload of an alert (kind ``alert`` in the outbox)."""
    key = f"{lane_id}-{uuid.uuid4().hex}"
    payload = {
        "alert_id": key,
        "kind": alert.kind,
        "message": alert.message,
        "pass_id": alert.pass_id,
        "at": at,
    }
    return key, payload


def outbox_message(site: str, lane: str, kind: str, seq: int, payload: str) -> bytes:
    """The wire form of an outbox row: the stored payload under a key named by its kind.

    ``payload`` is the JSON text as the ledger stored it; it is embedded without re-parsing.
    """
    head = dumps({"schema": SCHEMA, "type": kind, "site": site, "lane": lane, "outbox_seq": seq})
    return f'{head[:-1]},"{kind}":{payload}}}'.encode()
