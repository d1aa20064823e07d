"""Release-note QR payload: encode, decode and verify (see docs/protocols/release-note-qr.md).

A payload is ASCII: ``GRN1.<body>.<signature>`` where ``body`` is the base64url (no padding)
of a compact JSON object and ``signature`` the base64url Ed25519 signature by central over the
ASCII bytes ``GRN1.<body>``. The JSON names the key that signed it (``k``), so central can
rotate keys while lanes hold the old and the new public key.

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> sk = Ed25519PrivateKey.from_private_bytes(bytes(32))
>>> keys = public_keys([public_key_b64(sk)])
>>> note = ReleaseNote("RN-1", "沪A12345", ("MSCU1234566",), 1_700_000_000, 1_700_086_400)
>>> payload = encode(note, sk)
>>> payload.isascii() and payload.startswith("GRN1.")
True
>>> decode(payload, keys) == note
True
>>> decode(payload[:-2] + "AA", keys)  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
drivers.release_note.ReleaseNoteError: bad_signature: signature does not verify
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "GRN1."
MAX_PAYLOAD = 1024  # a QR of version 25 at level M holds ~1,800 bytes; ours are ~300

ErrorKind = Literal["not_a_note", "malformed", "unknown_key", "bad_signature"]


class ReleaseNoteError(ValueError):
    """A payload that cannot be accepted; ``kind`` says why in one machine-readable word."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: ErrorKind = kind


@dataclass(frozen=True)
class ReleaseNote:
    """What central vouches for: the note, the plate it is bound to, its boxes and validity."""

    note_id: str
    plate: str
    containers: tuple[str, ...]
    valid_from: int  # seconds since the epoch, UTC
    valid_until: int


def b64url(data: bytes) -> str:
    """Unpadded base64url, as release notes and central's envelopes carry bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not text or any(c not in _B64URL for c in text):
        raise ReleaseNoteError("malformed", "not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ReleaseNoteError("malformed", f"not base64url: {exc}") from None
    # base64 ignores the spare low bits of the last character; refusing all but the canonical
    # text keeps one signed note to exactly one payload
    if b64url(data) != text:
        raise ReleaseNoteError("malformed", "not canonical base64url")
    return data


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def key_id(public_key: Ed25519PublicKey) -> str:
    """The 8-hex-digit id of a public key: the start of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes_raw()
    return hashlib.sha256(raw).hexdigest()[:8]


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    """The base64 (standard) text of a private key's public half, as lane configs hold it."""
    return base64.b64encode(private_key.public_key().public_bytes_raw()).decode("ascii")


def public_keys(texts: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """Parse base64 raw Ed25519 public keys into a ``{key_id: key}`` map.

    Raises ValueError naming the bad entry.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    for index, text in enumerate(texts):
        try:
            raw = base64.b64decode(text, validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"public key #{index} is not a base64 Ed25519 key: {exc}") from None
        keys[key_id(key)] = key
    return keys


def encode(note: ReleaseNote, private_key: Ed25519PrivateKey) -> str:
    """Sign ``note`` with central's key and return the QR payload text."""
    body = {
        "v": 1,
        "k": key_id(private_key.public_key()),
        "n": note.note_id,
        "p": note.plate,
        "c": list(note.containers),
        "f": note.valid_from,
        "u": note.valid_until,
    }
    body_b64 = b64url(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    signed = f"{PREFIX}{body_b64}"
    return f"{signed}.{b64url(private_key.sign(signed.encode('ascii')))}"


def is_release_note(payload: str) -> bool:
    """True when the text claims to be a release note (whether or not it verifies)."""
    return payload.strip().startswith(PREFIX)


def decode(payload: str, keys: Mapping[str, Ed25519PublicKey]) -> ReleaseNote:
    """Verify and parse a payload; raise ReleaseNoteError saying why it is refused.

    The signature is checked before any field is trusted; a payload that is not ours at all
    (another kind of QR code) raises with kind ``not_a_note``.
    """
    text = payload.strip()
    if not text.startswith(PREFIX):
        raise ReleaseNoteError("not_a_note", "no GRN1 prefix")
    if len(text) > MAX_PAYLOAD or not text.isascii():
        raise ReleaseNoteError("malformed", "too long or not ASCII")
    parts = text.split(".")
    if len(parts) != 3:
        raise ReleaseNoteError("malformed", "expected GRN1.<body>.<signature>")
    _, body_b64, sig_b64 = parts
    body_bytes = _b64d(body_b64)
    signature = _b64d(sig_b64)
    try:
        body = json.loads(body_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ReleaseNoteError("malformed", "body is not JSON") from None
    if not isinstance(body, dict):
        raise ReleaseNoteError("malformed", "body is not a JSON object")
    kid = body.get("k")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise ReleaseNoteError("unknown_key", f"signed by key {kid!r}, which this lane lacks")
    try:
        key.verify(signature, f"{PREFIX}{body_b64}".encode("ascii"))
    except InvalidSignature:
        raise ReleaseNoteError("bad_signature", "signature does not verify") from None
    return _parse_body(body)


def parse_unverified(payload: str) -> ReleaseNote:
    """Read a payload's fields without checking its signature, for display only.

    A technician's tool may show what a code claims before keys are configured; nothing may be
    decided on the result (``decode`` is the only way to trust a note). Raises
    ReleaseNoteError for anything ``decode`` would call malformed.
    """
    text = payload.strip()
    if not text.startswith(PREFIX):
        raise ReleaseNoteError("not_a_note", "no GRN1 prefix")
    parts = text.split(".")
    if len(text) > MAX_PAYLOAD or not text.isascii() or len(parts) != 3:
        raise ReleaseNoteError("malformed", "expected GRN1.<body>.<signature>")
    try:
        body = json.loads(_b64d(parts[1]))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ReleaseNoteError("malformed", "body is not JSON") from None
    if not isinstance(body, dict):
        raise ReleaseNoteError("malformed", "body is not a JSON object")
    return _parse_body(body)


def _parse_body(body: dict[str, object]) -> ReleaseNote:
    if body.get("v") != 1:
        raise ReleaseNoteError("malformed", f"unsupported version {body.get('v')!r}")
    note_id, plate = body.get("n"), body.get("p")
    containers, valid_from, valid_until = body.get("c"), body.get("f"), body.get("u")
    if not isinstance(note_id, str) or not note_id or len(note_id) > 64:
        raise ReleaseNoteError("malformed", "note id must be a string of 1-64 characters")
    if not isinstance(plate, str) or not 0 < len(plate) <= 16:
        raise ReleaseNoteError("malformed", "plate must be a string of 1-16 characters")
    if (
        not isinstance(containers, list)
        or len(containers) > 4
        or not all(isinstance(c, str) and 0 < len(c) <= 16 for c in containers)
    ):
        raise ReleaseNoteError("malformed", "containers must be a list of up to 4 strings")
    if not (_is_epoch(valid_from) and _is_epoch(valid_until)):
        raise ReleaseNoteError("malformed", "validity bounds must be non-negative integers")
    if valid_until < valid_from:
        raise ReleaseNoteError("malformed", "validity window ends before it starts")
    return ReleaseNote(note_id, plate, tuple(containers), valid_from, valid_until)


def _is_epoch(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
