"""Simulated central: holds the signing key and issues release-note QR payloads."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers import release_note
from drivers.release_note import ReleaseNote


class SimCentral:
    """Central's signing side, for the simulator and tests."""

    def __init__(self, seed: bytes | None = None) -> None:
        self.key = (
            Ed25519PrivateKey.from_private_bytes(seed) if seed else Ed25519PrivateKey.generate()
        )

    @property
    def public_key(self) -> str:
        """The public key as lane configs hold it."""
        return release_note.public_key_b64(self.key)

    def sign(self, note: ReleaseNote) -> str:
        """A genuine QR payload for the note."""
        return release_note.encode(note, self.key)

    def forge(self, note: ReleaseNote) -> str:
        """A payload whose body was altered after signing (validity stretched): it must fail."""
        genuine = self.sign(note)
        prefix, body, signature = genuine.split(".")
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        data["u"] = data["u"] + 86_400 * 30  # stretch the validity by a month
        raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        forged = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        return f"{prefix}.{forged}.{signature}"
