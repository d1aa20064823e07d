"""A resynchronising frame scanner shared by the byte codecs.

A device line carries frames, and between or inside them whatever the line picked up: noise, a
half frame from before a reconnect, a frame with a flipped bit. The scanner splits the stream
into frames and rejected stretches. Every byte fed in ends up in exactly one of: an accepted
frame, one ``Rejected.raw``, or the pending buffer (the start of a frame still arriving). A
reading therefore always comes from one contiguous, well-formed frame of the input.

The format supplies its start bytes and a ``check`` function that looks at the buffer from a
start byte on and answers one of:

- ``None``: the bytes so far could still be a frame; wait for more;
- a string: not a frame (the reason); the scanner drops that start byte and looks for the next
  start byte, so a good frame that begins inside a bad candidate is still found;
- ``(length, item)``: a complete, valid frame of ``length`` bytes decoded into ``item``.

Consecutive discarded bytes are reported as one ``Rejected`` (with the first reason seen),
emitted before the next good frame, when the discarded stretch reaches ``max_junk`` bytes, or by
``flush()``.

>>> def check(buf):
...     if len(buf) < 3:
...         return None
...     return (3, bytes(buf[:3])) if buf[2:3] == b"!" else "no bang"
>>> s = FrameScanner(b"#", check)
>>> s.feed(b"xx#a!#b")
[Rejected(reason='junk before frame start', raw=b'xx'), b'#a!']
>>> s.feed(b"?#c!")
[Rejected(reason='no bang', raw=b'#b?'), b'#c!']
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Generic, TypeVar

from drivers.codec import Rejected

T = TypeVar("T")

CheckResult = tuple[int, T] | str | None

JUNK = "junk before frame start"


class FrameScanner(Generic[T]):
    """Splits a byte stream into decoded frames and rejected stretches (bounded buffers)."""

    def __init__(
        self,
        starts: bytes,
        check: Callable[[bytearray], CheckResult[T]],
        *,
        max_junk: int = 512,
    ) -> None:
        if not starts:
            raise ValueError("at least one start byte is needed")
        self._start = re.compile(b"[" + b"".join(re.escape(bytes([b])) for b in starts) + b"]")
        self._check = check
        self._max_junk = max_junk
        self._buf = bytearray()
        self._junk = bytearray()
        self._junk_reason = ""

    @property
    def pending(self) -> bytes:
        """Bytes held back: discarded junk not yet reported, then a frame still arriving."""
        return bytes(self._junk) + bytes(self._buf)

    def feed(self, chunk: bytes) -> list[T | Rejected]:
        """Add bytes from the line; return the frames and rejects they complete, in order."""
        self._buf += chunk
        out: list[T | Rejected] = []
        self._scan(out)
        return out

    def resync(self) -> list[T | Rejected]:
        """The line went idle with a partial frame pending: it will not complete, so drop its
        start byte and scan the rest again (a frame may start inside it)."""
        out: list[T | Rejected] = []
        if self._buf:
            self._discard(1, "incomplete frame (line went idle)", out)
            self._scan(out)
        return out

    def flush(self) -> list[T | Rejected]:
        """End of input: everything still held is one rejected stretch."""
        out: list[T | Rejected] = []
        if self._buf:
            self._discard(len(self._buf), "incomplete frame at end of input", out)
        self._flush_junk(out)
        return out

    def _scan(self, out: list[T | Rejected]) -> None:
        buf = self._buf
        while buf:
            found = self._start.search(buf)
            if found is None:
                self._discard(len(buf), JUNK, out)
                return
            if found.start():
                self._discard(found.start(), JUNK, out)
            result = self._check(buf)
            if result is None:
                return
            if isinstance(result, str):
                self._discard(1, result, out)
                continue
            length, item = result
            self._flush_junk(out)
            del buf[:length]
            out.append(item)

    def _discard(self, count: int, reason: str, out: list[T | Rejected]) -> None:
        if not self._junk or self._junk_reason == JUNK:
            # a precise reason (bad checksum, ...) says more than "junk"
            self._junk_reason = reason
        self._junk += self._buf[:count]
        del self._buf[:count]
        if len(self._junk) >= self._max_junk:
            self._flush_junk(out)

    def _flush_junk(self, out: list[T | Rejected]) -> None:
        if self._junk:
            out.append(Rejected(self._junk_reason, bytes(self._junk)))
            self._junk.clear()
            self._junk_reason = ""


class LineBuffer:
    """The bytes of one line still arriving, never more than ``max_line``: a line that grows
    longer is given up whole, and the rest of it is skipped up to its end.

    >>> line = LineBuffer(4)
    >>> line.add(b"abc"), line.add(b"de"), line.add(b"f"), line.end()
    (None, b'abcde', None, (b'', True))
    >>> line.add(b"ok"), line.end()
    (None, (b'ok', False))
    """

    def __init__(self, max_line: int, *, keep: int = 96) -> None:
        self.max_line = max_line
        self._keep = keep
        self._buf = bytearray()
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._buf)

    def add(self, piece: bytes) -> bytes | None:
        """Append ``piece``. When it makes the line too long, the line is dropped and its first
        bytes (up to ``keep``) are returned for the reject; otherwise None."""
        if self.overflowed or not piece:
            return None
        if len(self._buf) + len(piece) > self.max_line:
            head = bytes((self._buf + piece)[: self._keep])
            self._buf.clear()
            self.overflowed = True
            return head
        self._buf += piece
        return None

    def end(self) -> tuple[bytes, bool]:
        """The line is over: its bytes and whether it overflowed; the next line starts empty."""
        line, overflowed = bytes(self._buf), self.overflowed
        self._buf.clear()
        self.overflowed = False
        return line, overflowed
