"""Shapes shared by the device codecs: a codec turns bytes into readings or rejects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rejected:
    """A frame a codec refused: garbled, bad checksum, truncated, or junk between frames."""

    reason: str
    raw: bytes = b""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (raw bytes as hex)."""
        return {"rejected": self.reason, "raw": self.raw.hex()}
