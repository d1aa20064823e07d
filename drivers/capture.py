"""Decoding a capture file from the command line (``python -m drivers.<codec> FILE``).

A technician records a device line to a file (or pipes it in) and reads back what the codec
makes of it: the same codec as on the live line, fed the whole capture at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from drivers.codec import Rejected


class _Decoded(Protocol):
    def as_dict(self) -> dict[str, object]: ...


def read_capture(file: str | Path) -> bytes | None:
    """The bytes of a capture file ('-': standard input); None, with the reason on standard
    error, when it cannot be read (missing, a folder, no permission)."""
    try:
        return sys.stdin.buffer.read() if str(file) == "-" else Path(file).read_bytes()
    except OSError as exc:
        print(f"cannot read {file}: {exc.strerror or exc}", file=sys.stderr)
        return None


def print_capture(file: Path, decode: Callable[[bytes], Iterable[_Decoded]]) -> int:
    """Decode ``file`` ('-': standard input) and print one JSON reading per line, rejected
    stretches to standard error, then ``{"accepted": n, "rejected": m}``; the exit status
    (2 when the file cannot be read)."""
    data = read_capture(file)
    if data is None:
        return 2
    accepted = rejected = 0
    for item in decode(data):
        if isinstance(item, Rejected):
            rejected += 1
            print(json.dumps(item.as_dict()), file=sys.stderr)
        else:
            accepted += 1
            print(json.dumps(item.as_dict()))
    print(json.dumps({"accepted": accepted, "rejected": rejected}))
    return 0
