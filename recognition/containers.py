"""Reading ISO 6346 container numbers from gate-camera frames.

A gate camera sees a container's doors, roof or side at 1920x1080. The number is painted
either on one line (``MSKU 386603 6``, owner and serial often far apart, the check digit in
a box) or in a column, one character under the other, and the detector returns it in
pieces: owner, serial and check digit apart, a column whole or a character at a time. So a
frame is read in three steps:

1. *Find text* once, on the whole frame scaled to 736 pixels, with the detector's
   thresholds lowered so small, boxed check digits are not lost; *read it* largest first,
   in small batches, and stop once a verified number leaves only smaller print unread
   (ISO 6346 marks are at least 100 mm high, larger than the weights beside them).
2. *Assemble*: pieces that sit where the next part of a number would (right of it on the
   same line, below it on the next line, below it in a column) are chained, and each chain
   is parsed against the ISO 6346 layout. A character of the wrong kind for its position
   is replaced by its one usual look-alike (O/0, I/1, B/8, S/5, Z/2, G/6, A/4; in the
   serial also C, D or Q for 0 and L for 1), so the check digit tests one reading, never
   several in turn until one fits; of the readings different pieces give, the verified
   ones come first. A number whose check digit was not read is never verified.
3. *Look closer* where a number is incomplete: the boxed check digit (after the serial,
   or inside a column that read it as an unknown glyph) and any other unreadable
   character are read again from their own cell, with and without the box strokes; a
   serial with no owner code, or a size-type code with no number beside it, has its
   surroundings detected again at a scale the detector reads best, and re-assembled.

All functions here are synchronous and take tens to hundreds of milliseconds: async callers
run them in an executor.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Literal

import numpy as np

from recognition import iso6346
from recognition.edits import edit_distance
from recognition.engine import Image, OcrEngine

__all__ = [
    "Candidate",
    "ContainerReader",
    "ContainerReading",
    "FusedContainer",
    "ParsedCode",
    "Piece",
    "assemble",
    "find_size_type",
    "fuse_containers",
    "normalise_text",
    "parse_code",
    "parse_size_type",
]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels
Orientation = Literal["horizontal", "vertical"]

# Look-alikes a recogniser confuses between letters and digits. A character of the wrong
# kind for its position is replaced by its one look-alike; nothing else is ever changed.
# One each, so that a corrected reading is no likelier to pass its check digit by chance
# than one read as it stands: offering O, Q and D for a 0 made three readings of each 0,
# and OOLU numbers read as 00LU with one serial digit wrong came out verified, as other
# numbers, two times in three (one reading of their nine fitted; a test counts them).
_LETTER_FOR_DIGIT = {
    "0": "O",
    "1": "I",
    "2": "Z",
    "4": "A",
    "5": "S",
    "6": "G",
    "8": "B",
}
_DIGIT_FOR_LETTER = {
    "O": "0",
    "Q": "0",
    "D": "0",
    "C": "0",  # a stencilled 0, its ring broken by the stencil's bridges
    "I": "1",
    "L": "1",
    "Z": "2",
    "A": "4",
    "S": "5",
    "G": "6",
    "B": "8",
}
# More replaced characters than this and the reading is guesswork, not a correction.
MAX_CORRECTIONS = 2

# a serial number, perhaps with the end of its owner code and a stray character after it
_SERIALISH = re.compile(r"[A-Z]{0,4}[0-9]{6,7}[^A-Z0-9]?")
_OWNERISH = re.compile(r"[A-Z]{3}[UJZ]")
# A letter between an owner code and its serial that no digit looks like: a stray, not
# a misread digit (those are corrected by the check digit instead, and dropping one would
# shift the serial)
_NO_DIGIT_LIKE = "".join(sorted(set(string.ascii_uppercase) - set(_DIGIT_FOR_LETTER)))
_INNER_STRAY = re.compile(rf"(?<=[A-Z]{{3}}[UJZ])([{_NO_DIGIT_LIKE}])(?=[0-9])")
_SIZE_TYPE = re.compile(r"[1-9LMNP][0-9CDEFLMNP][A-Z][0-9]")
_NOISE = set(" .,:;-_·'\"`/\\|()[]{}<>")


def normalise_text(text: str) -> str:
    """Bring a recognised string to capital letters and digits.

    Full-width and enclosed forms are folded (NFKC: ``Ｘ`` -> ``X``, ``④`` -> ``4``),
    spaces, punctuation and the strokes of a check-digit box are dropped, and any other
    character (a CJK misreading of a boxed digit, say) becomes ``?`` so it can never
    stand for a letter or digit.

    >>> normalise_text('ＴＥＭＵ ５６６０５３ [2]')
    'TEMU5660532'
    >>> normalise_text('X1NU157721④'), normalise_text('503702回')
    ('X1NU1577214', '503702?')
    """
    out = []
    for ch in unicodedata.normalize("NFKC", text).upper():
        if ch.isspace() or ch in _NOISE:
            continue
        out.append(ch if ("A" <= ch <= "Z" or "0" <= ch <= "9") else "?")
    return "".join(out)


@dataclass(frozen=True)
class ParsedCode:
    """A string parsed against the ISO 6346 layout."""

    number: str  # 11 characters, or 10 when no check digit was read
    verified: bool  # the check digit was read and agrees
    corrections: int  # characters replaced by a look-alike


def _as_kind(ch: str, kind: str) -> str:
    """The character ``ch`` stands for at a position of this kind ('' if none)."""
    if kind == "L":
        if "A" <= ch <= "Z":
            return ch
        return _LETTER_FOR_DIGIT.get(ch, "")
    if kind == "C":
        # never corrected: a digit here is far likelier a window slipped by one place
        # than a Z (chassis) or J misread, and U is all but universal
        return ch if ch in iso6346.CATEGORIES else ""
    if "0" <= ch <= "9":
        return ch
    return _DIGIT_FOR_LETTER.get(ch, "")


_LAYOUT = "LLLC" + "D" * 7


def parse_code(text: str, fixed: frozenset[int] = frozenset()) -> ParsedCode | None:
    """Parse exactly 10 or 11 normalised characters as a container number.

    A character of the wrong kind for its position is replaced by its look-alike (0 by
    O in the owner code, O by 0 in the serial, ...), at most ``MAX_CORRECTIONS`` of them;
    with 11 characters the number is verified when its check digit agrees. Characters
    at the positions in ``fixed`` must already be of the right kind.

    >>> parse_code('X1NU1577214')
    ParsedCode(number='XINU1577214', verified=True, corrections=1)
    >>> parse_code('BEAU265693')
    ParsedCode(number='BEAU265693', verified=False, corrections=0)
    >>> parse_code('MSKU3866037').verified
    False
    >>> parse_code('MAXGROSS30') is None
    True
    """
    if len(text) not in (10, 11):
        return None
    chars = []
    corrections = 0
    for i, (ch, kind) in enumerate(zip(text, _LAYOUT, strict=False)):
        got = _as_kind(ch, kind)
        if not got or (got != ch and i in fixed):
            return None
        corrections += got != ch
        chars.append(got)
    if corrections > MAX_CORRECTIONS:
        return None
    number = "".join(chars)
    verified = len(number) == 11 and iso6346.is_valid(number)
    return ParsedCode(number, verified=verified, corrections=corrections)


def parse_size_type(text: str) -> str | None:
    """Parse a normalised string as an ISO 6346 size-type code (``22G1``, ``45R1``, ...).

    >>> parse_size_type('22G1'), parse_size_type('2261'), parse_size_type('L5G1')
    ('22G1', '22G1', 'L5G1')
    >>> parse_size_type('2210') is None
    True
    """
    if len(text) != 4:
        return None
    # G read as 6 is the one confusion seen in this place; a third digit is no size type
    fixed = text[:2] + ("G" if text[2] == "6" else text[2]) + text[3]
    fixed = fixed[:3] + _DIGIT_FOR_LETTER.get(fixed[3], fixed[3])
    return fixed if _SIZE_TYPE.fullmatch(fixed) else None


@dataclass(frozen=True)
class Piece:
    """One text box as read: normalised text, recogniser score, box in frame pixels."""

    text: str
    score: float
    box: Box
    alt: str = ""  # a second reading of a lone character, inside the frame around it

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def vertical(self) -> bool:
        """A column of characters, one under the other."""
        return len(self.text) >= 2 and self.height >= 1.5 * self.width

    @property
    def single(self) -> bool:
        return len(self.text) == 1

    @property
    def size(self) -> float:
        """Character size across the reading direction (height of a line, width of a
        column, the larger side of a lone character)."""
        if self.single:
            return float(max(self.width, self.height))
        return float(self.width if self.vertical else self.height)


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


Link = Literal["line", "wrap", "column"]


def _follows(a: Piece, b: Piece) -> Link | None:
    """How ``b`` continues the text of ``a``: right of it on the same ``line``, at the
    start of the next line (``wrap``), or below it in the same ``column``; or not at all."""
    if a is b:
        return None
    ratio = b.size / max(a.size, 1.0)
    if not 0.45 <= ratio <= 2.2:
        return None
    s = max(a.size, b.size)
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    if not a.vertical and not b.vertical:
        if _overlap(ay0, ay1, by0, by1) >= 0.5 * min(a.height, b.height):
            gap = bx0 - ax1  # boxes overlap a little: the detector pads them
            if -0.6 * s <= gap <= 2.6 * s and bx1 > ax1:
                return "line"
        # a two-line number continues under the start of its first line
        if (
            not a.single
            and not b.single
            and -0.6 * s <= by0 - ay1 <= 0.9 * s
            and abs(bx0 - ax0) <= 1.5 * s
        ):
            return "wrap"
    if (
        (a.vertical or a.single)
        and (b.vertical or b.single)
        and _overlap(ax0, ax1, bx0, bx1) >= 0.4 * min(a.width, b.width)
        and -0.6 * s <= by0 - ay1 <= 2.6 * s
        and by1 > ay1
    ):
        return "column"
    return None


@dataclass(frozen=True)
class Candidate:
    """A container number assembled from one chain of pieces."""

    code: ParsedCode
    pieces: tuple[Piece, ...]
    score: float  # mean recogniser score of the pieces used
    skipped: int = 0  # characters of the first piece left before the number

    @property
    def box(self) -> Box:
        return _union(p.box for p in self.pieces)

    @property
    def orientation(self) -> Orientation:
        if any(p.vertical for p in self.pieces):
            return "vertical"
        if len(self.pieces) > 1 and all(p.single for p in self.pieces):
            return "vertical" if _is_column(self.pieces) else "horizontal"
        return "horizontal"

    def rank(self) -> tuple[int, int, int, float]:
        """Higher is better: verified, complete, fewest corrections, best score."""
        c = self.code
        return (int(c.verified), len(c.number), -c.corrections - self.skipped, self.score)


def _is_column(pieces: Sequence[Piece]) -> bool:
    xs = [p.box[0] for p in pieces]
    ys = [p.box[1] for p in pieces]
    return (max(ys) - min(ys)) > (max(xs) - min(xs))


def _union(boxes: Iterable[Box]) -> Box:
    bs = list(boxes)
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def _variants(text: str, first: bool, last: bool) -> set[str]:
    """A piece's text with one stray character dropped where it meets the next piece
    (a hinge read as ``L`` after ``MSKU``, say), or where its owner code meets its serial
    (the gap in a stencilled ``U`` read as ``UJ``). The first piece's start and the last
    piece's end are free anyway: a code may start or end anywhere inside them."""
    out = {text}
    for m in _INNER_STRAY.finditer(text):
        out.add(text[: m.start(1)] + text[m.end(1) :])
    if not last and len(text) > 1:
        out.add(text[:-1])
    if not first and len(text) > 1:
        out |= {t[1:] for t in set(out) if len(t) > 1}
    return out


def _chains(pieces: Sequence[Piece], max_chars: int = 16) -> Iterator[tuple[Piece, ...]]:
    """Sequences of pieces that read on from one another. A chain keeps one direction
    (lines or a column) and wraps at most once, right after the owner code."""
    links: dict[int, list[tuple[Piece, Link]]] = {}
    for a in pieces:
        links[id(a)] = [(b, k) for b in pieces if (k := _follows(a, b)) is not None]
    least = {id(p): _least_chars(p) for p in pieces}

    def walk(
        chain: tuple[Piece, ...], chars: int, kinds: frozenset[Link]
    ) -> Iterator[tuple[Piece, ...]]:
        yield chain
        if chars >= 11:
            return
        for b, kind in links[id(chain[-1])]:
            if b in chain or chars + least[id(b)] > max_chars:
                continue
            if kind == "wrap" and ("wrap" in kinds or chars > 5):
                continue
            if (kind == "column") != ("column" in kinds) and kinds:
                continue
            yield from walk((*chain, b), chars + least[id(b)], kinds | {kind})

    for p in pieces:
        if p.text and not _is_size_type_piece(p):
            yield from walk((p,), least[id(p)], frozenset())


def _least_chars(p: Piece) -> int:
    """The characters a piece gives a number at least, a stray inside it dropped: a piece
    that holds a whole number and a stray may still need its boxed check digit."""
    return len(p.text) - len(_INNER_STRAY.findall(p.text))


def _fragment(p: Piece) -> bool:
    """An owner code on its own, or a few characters stacked in a column."""
    if _OWNERISH.fullmatch(p.text):
        return True
    return p.vertical and sum(ch != "?" for ch in p.text) >= 2


def _is_size_type_piece(p: Piece) -> bool:
    # a size-type code has a letter in third place; no part of a number does
    return len(p.text) == 4 and p.text[2].isalpha() and parse_size_type(p.text) is not None


def assemble(pieces: Sequence[Piece]) -> list[Candidate]:
    """Every container number the pieces can be chained into, best first, one per number.

    >>> pieces = [Piece('HALU', 1.0, (840, 304, 1054, 418)),
    ...           Piece('2089', 1.0, (845, 395, 1070, 509)),
    ...           Piece('976', 1.0, (1058, 396, 1282, 528)),
    ...           Piece('22G1', 1.0, (844, 477, 1003, 567))]
    >>> [c.code.number for c in assemble(pieces) if c.code.verified]
    ['HALU2089976']
    """
    best: dict[str, Candidate] = {}
    for chain in _chains(pieces):
        n = len(chain)
        texts = [
            _variants(p.text, first=i == 0, last=i == n - 1) | ({p.alt} if p.alt else set())
            for i, p in enumerate(chain)
        ]
        score = float(np.mean([p.score for p in chain]))
        for combo in product(*texts):
            if any(not t for t in combo):
                continue
            joined = "".join(combo)
            total = len(joined)
            # Where two pieces meet, a character of the wrong kind is more likely a stray
            # (a hinge, a box stroke) than a misread one: it may be dropped (see
            # _variants) but not replaced. A lone character is never a stray.
            edges = set()
            at = 0
            for i, t in enumerate(combo):
                if len(t) > 1:
                    if i > 0:
                        edges.add(at)
                    if i < n - 1:
                        edges.add(at + len(t) - 1)
                at += len(t)
            for length in (11, 10):
                if n == 1:
                    starts = range(total - length + 1)
                else:
                    # the code uses every piece: it starts in the first and ends in the last
                    head, tail = len(combo[0]), len(combo[-1])
                    starts = range(max(0, total - tail + 1 - length), min(head, total - length + 1))
                for start in starts:
                    fixed = frozenset(e - start for e in edges if start <= e < start + length)
                    code = parse_code(joined[start : start + length], fixed)
                    # characters left before the owner code are doubtful too: a number
                    # stands alone, so text before it suggests a window slipped
                    if code is None or code.corrections + start > MAX_CORRECTIONS:
                        continue
                    cand = Candidate(code, chain, score, skipped=start)
                    key = code.number
                    if key not in best or cand.rank() > best[key].rank():
                        best[key] = cand
    return sorted(best.values(), key=lambda c: c.rank(), reverse=True)


def find_size_type(pieces: Sequence[Piece], near: Candidate) -> str | None:
    """The size-type code painted next to a number (below a line, beside a column)."""
    used = {id(p) for p in near.pieces}
    x0, y0, x1, y1 = near.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    found: list[tuple[float, str]] = []
    others = [p for p in pieces if id(p) not in used]
    texts: list[tuple[str, Box]] = [(p.text, p.box) for p in others]
    texts += [
        (a.text + b.text, _union((a.box, b.box)))
        for a in others
        for b in others
        if len(a.text) + len(b.text) == 4 and _follows(a, b) is not None
    ]
    for text, box in texts:
        st = parse_size_type(text)
        if st is None:
            continue
        bx0, by0, bx1, by1 = box
        if _near_number(box, near):  # within a few characters of the number's box
            found.append((abs((bx0 + bx1) / 2 - cx) + abs((by0 + by1) / 2 - cy), st))
    return min(found)[1] if found else None


@dataclass(frozen=True)
class ContainerReading:
    """One container number read from one frame."""

    number: str  # 11 characters; 10 (owner, category, serial) when no check digit was read
    verified: bool  # the check digit was read and agrees with the rest
    confidence: float  # 0..1
    size_type: str | None  # ISO 6346 size-type code painted beside it, when read
    box: Box  # where the number is in the frame, pixels
    orientation: Orientation
    corrections: int = 0  # characters replaced by a look-alike to fit the layout
    crop: Image | None = field(default=None, compare=False, repr=False)  # evidence, BGR

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (without the crop)."""
        return {
            "number": self.number,
            "verified": self.verified,
            "confidence": round(self.confidence, 3),
            "size_type": self.size_type,
            "box": list(self.box),
        }


def _confidence(c: Candidate) -> float:
    conf = c.score
    if not c.code.verified:
        conf *= 0.5
    conf *= 0.93 ** (c.code.corrections + c.skipped)
    return float(min(1.0, max(0.0, conf)))


@dataclass(frozen=True)
class _Region:
    """Part of the frame to look at again, closer."""

    box: Box
    char_size: float  # expected character size there, frame pixels


class ContainerReader:
    """Reads container numbers from frames with one shared OCR engine.

    ``read`` is synchronous and thread-safe (the engine's sessions are); on the 2-core
    target it takes a few hundred milliseconds per 1920x1080 frame, so async callers run
    it in an executor.

    ``coarse_side``: the longer side the whole frame is scaled to for the first detection.
    ``fine_char_px``: character heights the detector is given when looking closer.
    ``batch``: boxes read per step before checking whether a number is complete.
    ``max_regions``: closer looks per frame, to bound the time a hard frame takes.
    """

    def __init__(
        self,
        engine: OcrEngine,
        *,
        coarse_side: int = 736,
        fine_char_px: tuple[float, float] = (32.0, 96.0),
        batch: int = 6,
        max_regions: int = 3,
    ) -> None:
        self._engine = engine
        self._coarse_side = coarse_side
        self._fine_char_px = fine_char_px
        self._batch = batch
        self._max_regions = max_regions

    def read(self, frame: Image) -> list[ContainerReading]:
        """Every container number visible in one BGR frame, verified ones first.

        Grey or BGRA frames are accepted too; a frame too small to hold a readable
        number gives no readings.
        """
        frame = _as_bgr(frame)
        if frame.shape[0] < 16 or frame.shape[1] < 16:
            return []
        fh = frame.shape[0]
        found = self._detect(frame, self._coarse_side)
        # Larger text first: an ISO 6346 number is painted at least 100 mm high, larger
        # than the weights and capacities beside it, so it is usually read in the first
        # batch or two and the small print need never be read at all.
        found = [d for d in found if _thickness(d) <= 0.25 * fh]
        found.sort(key=_thickness, reverse=True)
        pieces: list[Piece] = []
        pending = list(found)
        looked: list[Box] = []
        while True:
            batch, pending = pending[: self._batch], pending[self._batch :]
            pieces += self._recognise(batch)
            pieces, cands = self._complete(frame, pieces, looked)
            if self._settled(cands, pending):
                break
        # the size-type code beside a verified number, if it is still unread
        for c in cands:
            if c.code.verified and find_size_type(pieces, c) is None:
                near = [d for d in pending if _near_number(d[1].box, c)]
                if near:
                    pieces += self._recognise(near)
                    pending = [d for d in pending if not any(d is n for n in near)]
        # parts of numbers with the rest unread: look closer, one region at a time
        done: list[Box] = []
        for _ in range(self._max_regions):
            regions = [r for r in self._regions(pieces, cands) if not _inside_any(r.box, done)]
            if not regions:
                break
            region = regions[0]
            done.append(region.box)
            fine = self._look_closer(frame, region)
            # the closer reading replaces what it found again; the rest stays
            redone = [f.box for f in fine]
            pieces = [p for p in pieces if not _overlaps_any(p.box, redone)] + fine
            pieces, cands = self._complete(frame, pieces, looked)
        return self._readings(frame, cands, pieces)

    def _complete(
        self, frame: Image, pieces: list[Piece], looked: list[Box]
    ) -> tuple[list[Piece], list[Candidate]]:
        """Assemble numbers; where one lacks its check digit, read the digit where it
        is painted (once per place) and assemble again. Unreadable characters inside a
        long piece are read again one by one first."""
        for i, p in enumerate(pieces):
            if len(p.text) >= 6 and "?" in p.text[:-1] and not _inside_any(p.box, looked):
                looked.append(p.box)
                pieces[i] = self._reread(frame, p)
        cands = assemble(pieces)
        changed = False
        for c in cands:
            if len(c.code.number) != 10 or _inside_any(c.box, looked):
                continue
            if any(o.code.verified and (_same_place(c, o) or _same_number(c, o)) for o in cands):
                continue
            looked.append(c.box)
            old, new = self._check_digit(frame, c)
            if new is not None:
                pieces = [p for p in pieces if p is not old] + [new]
                changed = True
        if changed:
            cands = assemble(pieces)
        return pieces, cands

    @staticmethod
    def _settled(cands: Sequence[Candidate], pending: Sequence[_Found]) -> bool:
        verified = [c for c in cands if c.code.verified]
        if not verified or not pending:
            return not pending
        # done once what is left is clearly smaller than the numbers read
        smallest = min(max(p.size for p in c.pieces) for c in verified)
        return all(_thickness(d) < 0.75 * smallest for d in pending)

    def _detect(
        self, image: Image, max_side: int, offset: tuple[int, int] = (0, 0), scale: float = 1.0
    ) -> list[_Found]:
        dets = self._engine.find_text(
            image, max_side=max_side, thresh=0.2, box_thresh=0.3, unclip_ratio=1.6
        )
        ox, oy = offset
        out = []
        for d in dets:
            x0, y0 = d.box.min(axis=0) / scale
            x1, y1 = d.box.max(axis=0) / scale
            box = (int(x0) + ox, int(y0) + oy, int(x1) + ox, int(y1) + oy)
            crop = OcrEngine.crop_box(image, d.box)
            out.append((crop, Piece("", d.score, box)))
        return out

    def _recognise(self, found: Sequence[_Found]) -> list[Piece]:
        reads = self._engine.read_crops([crop for crop, _ in found])
        pieces = []
        framed = []
        for (crop, shape), (text, score) in zip(found, reads, strict=True):
            norm = normalise_text(text)
            if not norm or score < 0.3:
                continue
            pieces.append(Piece(norm, score, shape.box))
            h, w = crop.shape[:2]
            if len(norm) == 1 and 0.6 <= w / max(h, 1) <= 1.6:
                # a check digit is painted in a box whose strokes the recogniser may
                # take for part of it: read the inside of the box as well
                framed.append((len(pieces) - 1, _inner(crop)))
        if framed:
            inner = self._engine.read_crops([c for _, c in framed])
            for (i, _), (text, score) in zip(framed, inner, strict=True):
                norm = normalise_text(text)
                if len(norm) == 1 and norm != pieces[i].text and score >= 0.3:
                    p = pieces[i]
                    pieces[i] = Piece(p.text, p.score, p.box, alt=norm)
        return pieces

    def _check_digit(self, frame: Image, c: Candidate) -> tuple[Piece | None, Piece | None]:
        """Read the missing check digit of a number where it is painted: in place of the
        unreadable characters its last piece ends with (a boxed digit taken for a CJK
        glyph), else just after the text read (the detector's box often holds the boxed
        digit the recogniser left out). Returns the piece to replace and its replacement
        with the digit appended, or (None, None)."""
        last = c.pieces[-1]
        vertical = c.orientation == "vertical"
        n = len(last.text)
        junk = n - len(last.text.rstrip("?"))
        x0, y0, x1, y1 = last.box
        base = last.text[: n - junk]
        if not base:
            return None, None
        if vertical:
            pitch = last.height / n if n > 1 else float(last.height)
            back, ahead = (junk + 0.8, 0.6) if junk else (1.6, 2.4)
            cell = (
                int(x0 - 0.3 * last.width),
                int(y1 - back * pitch),
                int(x1 + 0.3 * last.width),
                int(y1 + ahead * pitch),
            )
        else:
            # characters and the gaps between groups: about one more pitch than letters
            pitch = last.width / (n if junk else n + 1)
            back, ahead = (junk + 0.8, 0.6) if junk else (1.6, 3.0)
            cell = (
                int(x1 - back * pitch),
                int(y0 - 0.25 * last.height),
                int(x1 + ahead * pitch),
                int(y1 + 0.25 * last.height),
            )
        char = min(pitch, last.size)
        reads = self._read_cell(frame, cell, char, vertical, band=last.box, before=base[-1])
        if not reads:
            return None, None
        alt = base + reads[1][0] if len(reads) > 1 else ""
        score = min(last.score, reads[0][1])
        return last, Piece(base + reads[0][0], score, last.box, alt=alt)

    def _reread(self, frame: Image, p: Piece) -> Piece:
        """The piece with its unreadable characters (not the last) read one at a time,
        from where they sit along it; the second-best readings become its ``alt``."""
        n = len(p.text)
        vertical = p.height > p.width
        pitch = (p.height if vertical else p.width) / n
        x0, y0, x1, y1 = p.box
        best, second = list(p.text), list(p.text)
        for i, ch in enumerate(p.text[:-1]):
            if ch != "?":
                continue
            if vertical:
                cell = (x0, int(y0 + (i - 0.3) * pitch), x1, int(y0 + (i + 1.3) * pitch))
            else:
                cell = (int(x0 + (i - 0.3) * pitch), y0, int(x0 + (i + 1.3) * pitch), y1)
            reads = self._read_cell(frame, cell, pitch, vertical)
            if reads:
                best[i] = reads[0][0]
                second[i] = reads[-1][0]
        text, alt = "".join(best), "".join(second)
        return Piece(text, p.score, p.box, alt=alt if alt != text else p.alt)

    def _read_cell(
        self,
        frame: Image,
        region: Box,
        char: float,
        vertical: bool,
        *,
        band: Box | None = None,
        before: str = "",
    ) -> list[tuple[str, float]]:
        """Up to two readings (most confident first) of the last character painted in a
        small region, along a line (or down a column) that lies within ``band``; a read
        of two characters whose first is ``before`` (the one preceding it) counts as the
        second."""
        clipped = _clip(frame, region, 6)
        if clipped is None:
            return []
        x0, y0, x1, y1 = clipped
        crop, scale = self._scaled(frame[y0:y1, x0:x1], char)
        # the detector misses a character touching the crop's edge: give it a margin
        pad = max(8, int(0.5 * char * scale))
        import cv2

        crop = np.asarray(
            cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE), dtype=np.uint8
        )
        shift = int(pad / scale)
        found = self._detect(
            crop, max(crop.shape[:2]), offset=(x0 - shift, y0 - shift), scale=scale
        )
        if band is not None:
            bx0, by0, bx1, by1 = band

            def in_band(d: _Found) -> bool:
                x0, y0, x1, y1 = d[1].box
                return bx0 <= (x0 + x1) / 2 <= bx1 if vertical else by0 <= (y0 + y1) / 2 <= by1

            found = [d for d in found if in_band(d)]
        # the character furthest along the reading direction: the check digit
        found.sort(key=lambda d: d[1].box[3] if vertical else d[1].box[2], reverse=True)
        crops = [d[0] for d in found[:2]] or [crop]
        ranked: dict[str, float] = {}
        reads = self._engine.read_crops(crops + [_inner(c) for c in crops])
        tails = []
        for i, (text, score) in enumerate(reads):
            norm = normalise_text(text)
            if len(norm) == 2 and before and norm[0] == before:
                norm = norm[1]
            if len(norm) == 1 and norm != "?" and score >= 0.3:
                ranked[norm] = max(ranked.get(norm, 0.0), score)
            elif len(norm) >= 2 and i < len(crops):
                # the digit was detected together with what precedes it: read its end alone
                # (a crop reads left to right, a column's crop having been turned)
                w = crops[i].shape[1]
                tail = np.ascontiguousarray(crops[i][:, int(w * (1 - 1.4 / len(norm))) :])
                tails += [tail, _inner(tail)]
        for text, score in self._engine.read_crops(tails):
            norm = normalise_text(text)
            if len(norm) == 1 and norm != "?" and score >= 0.3:
                ranked[norm] = max(ranked.get(norm, 0.0), score)
        return sorted(ranked.items(), key=lambda kv: kv[1], reverse=True)[:2]

    def _scaled(self, crop: Image, char: float) -> tuple[Image, float]:
        """The crop scaled so its characters are a size the detector finds well, within
        a pixel budget (a closer look should not cost more than the first detection)."""
        size = max(char, 1.0)
        lo, hi = self._fine_char_px
        scale = lo / size if size < lo else hi / size if size > hi else 1.0
        area = crop.shape[0] * crop.shape[1] * scale * scale
        if area > _LOOK_PIXELS:
            scale *= (_LOOK_PIXELS / area) ** 0.5
        if scale != 1.0:
            import cv2

            crop = np.asarray(
                cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA),
                dtype=np.uint8,
            )
        return np.ascontiguousarray(crop), scale

    def _look_closer(self, frame: Image, region: _Region) -> list[Piece]:
        clipped = _clip(frame, region.box, 8)
        if clipped is None:
            return []
        x0, y0, x1, y1 = clipped
        crop, scale = self._scaled(frame[y0:y1, x0:x1], region.char_size)
        found = self._detect(crop, max(crop.shape[:2]), offset=(x0, y0), scale=scale)
        return self._recognise(found)

    def _regions(self, pieces: Sequence[Piece], cands: Sequence[Candidate]) -> list[_Region]:
        """Where a number was left incomplete and is worth a closer look: a number read
        whole whose check digit disagrees, a serial number with no owner code, a size-type
        code with no number near it."""
        out: list[_Region] = []
        covered = [c.box for c in cands if c.code.verified]
        known = [c.code.number for c in cands if c.code.verified]
        for c in cands:
            if c.code.verified or _inside_any(c.box, covered):
                continue
            if any(n[:10] == c.code.number[:10] for n in known):
                continue  # the same number, verified elsewhere in the frame (roof and doors)
            s = max(p.size for p in c.pieces)
            if len(c.code.number) == 11:
                out.append(_Region(_grow(c.box, c.orientation, s, margin=True), s))
            covered.append(c.box)
        for p in sorted(pieces, key=lambda p: p.size, reverse=True):
            if _inside_any(p.box, covered):
                continue
            orient: Orientation = "vertical" if p.vertical else "horizontal"
            digits = "".join(ch for ch in p.text if ch.isdigit())
            if any(digits[:6] in n for n in known):
                continue
            if _SERIALISH.fullmatch(p.text):
                out.append(_Region(_grow(p.box, orient, p.size), p.size))
            elif _is_size_type_piece(p) and not any(_near_number(p.box, c) for c in cands):
                out.append(_Region(_grow(p.box, orient, p.size, wide=True), p.size))
            elif not known and _fragment(p):
                # with no number read yet, an owner code alone or a piece of a column
                out.append(_Region(_grow(p.box, orient, p.size, both=True), p.size))
            else:
                continue
            covered.append(out[-1].box)
        return out

    def _readings(
        self, frame: Image, cands: Sequence[Candidate], pool: Sequence[Piece]
    ) -> list[ContainerReading]:
        chosen: list[Candidate] = []
        for c in sorted(cands, key=lambda c: c.rank(), reverse=True):
            if any(_same_place(c, o) or _same_number(c, o) for o in chosen):
                continue
            chosen.append(c)
        out = []
        fh, fw = frame.shape[:2]
        for c in chosen:
            x0, y0, x1, y1 = c.box
            m = int(0.5 * max(p.size for p in c.pieces))
            crop = frame[max(0, y0 - m) : min(fh, y1 + m), max(0, x0 - m) : min(fw, x1 + m)].copy()
            out.append(
                ContainerReading(
                    number=c.code.number,
                    verified=c.code.verified,
                    confidence=_confidence(c),
                    size_type=find_size_type(pool, c),
                    box=c.box,
                    orientation=c.orientation,
                    corrections=c.code.corrections,
                    crop=crop,
                )
            )
        return out


_Found = tuple[Image, Piece]  # a detected, not yet read, box: its crop and its place

# Most pixels the detector is given for one closer look (the first pass has 736x416).
_LOOK_PIXELS = 260_000


def _as_bgr(frame: Image) -> Image:
    img = np.asarray(frame)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a BGR, BGRA or grey image, got shape {img.shape}")
    return np.ascontiguousarray(img)


def _thickness(found: _Found) -> int:
    """Character size of a box not yet read: the short side of a line or a column."""
    return min(found[1].width, found[1].height)


def _same_number(a: Candidate, b: Candidate) -> bool:
    return a.code.number[:10] == b.code.number[:10]


def _same_place(a: Candidate, b: Candidate) -> bool:
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    inter = _overlap(ax0, ax1, bx0, bx1) * _overlap(ay0, ay1, by0, by1)
    small = min((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0))
    return small > 0 and inter >= 0.5 * small


def _overlaps_any(box: Box, boxes: Sequence[Box]) -> bool:
    """Whether the box shares at least a third of its area, or of another's, with one."""
    x0, y0, x1, y1 = box
    area = max(1, (x1 - x0) * (y1 - y0))
    for b in boxes:
        inter = _overlap(x0, x1, b[0], b[2]) * _overlap(y0, y1, b[1], b[3])
        if inter >= 0.34 * min(area, max(1, (b[2] - b[0]) * (b[3] - b[1]))):
            return True
    return False


def _inside_any(box: Box, boxes: Sequence[Box]) -> bool:
    x0, y0, x1, y1 = box
    area = max(1, (x1 - x0) * (y1 - y0))
    for b in boxes:
        inter = _overlap(x0, x1, b[0], b[2]) * _overlap(y0, y1, b[1], b[3])
        if inter >= 0.6 * area:
            return True
    return False


def _near_number(box: Box, c: Candidate) -> bool:
    x0, y0, x1, y1 = c.box
    s = max(p.size for p in c.pieces)
    dx = max(box[0] - x1, x0 - box[2], 0)
    dy = max(box[1] - y1, y0 - box[3], 0)
    return dx <= 6 * s and dy <= 3 * s


def _grow(
    box: Box,
    orientation: Orientation,
    s: float,
    *,
    wide: bool = False,
    margin: bool = False,
    both: bool = False,
) -> Box:
    """The region around part of a number where the rest of it would be painted.

    ``wide`` is for a size-type code, painted under a line number or beside a column;
    ``margin`` just pads a whole number; ``both`` reaches either way along it, for a
    piece that may be the start, the middle or the end."""
    x0, y0, x1, y1 = box
    if margin:
        return (int(x0 - 0.8 * s), int(y0 - 0.8 * s), int(x1 + 0.8 * s), int(y1 + 0.8 * s))
    if both:
        if orientation == "vertical":
            return (int(x0 - 0.8 * s), int(y0 - 10 * s), int(x1 + 0.8 * s), int(y1 + 10 * s))
        return (int(x0 - 6 * s), int(y0 - 1.5 * s), int(x1 + 8 * s), int(y1 + 1.8 * s))
    if orientation == "vertical":
        if wide:  # the column may start level with it or well above it
            return (int(x0 - 6 * s), int(y0 - 14 * s), int(x1 + 6 * s), int(y1 + 10 * s))
        return (int(x0 - 0.8 * s), int(y0 - 8 * s), int(x1 + 0.8 * s), int(y1 + 2.5 * s))
    if wide:
        return (int(x0 - 6 * s), int(y0 - 3 * s), int(x1 + 6 * s), int(y1 + 0.5 * s))
    return (int(x0 - 6 * s), int(y0 - 1.5 * s), int(x1 + 2.6 * s), int(y1 + 0.5 * s))


def _clip(frame: Image, box: Box, min_side: int) -> Box | None:
    """``box`` cut to the frame; None when less than ``min_side`` pixels of it are left
    across or down."""
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(fw, box[2]), min(fh, box[3])
    if x1 - x0 < min_side or y1 - y0 < min_side:
        return None
    return (x0, y0, x1, y1)


def _inner(crop: Image) -> Image:
    """The inside of a boxed character, without the box's strokes."""
    h, w = crop.shape[:2]
    my, mx = int(0.16 * h), int(0.16 * w)
    return np.ascontiguousarray(crop[my : h - my, mx : w - mx])


@dataclass(frozen=True)
class FusedContainer:
    """One container of a truck pass, agreed from the readings of several views."""

    number: str
    verified: bool  # at least one view read the check digit and it agrees
    confidence: float  # 0..1
    size_type: str | None
    views: int  # readings that support this number
    needs_review: bool  # too weak or contradicted: hold the truck for a human
    reasons: tuple[str, ...]  # why it needs review (empty when it does not)
    alternatives: tuple[str, ...]  # other numbers read at the same place, for the officer
    evidence: ContainerReading  # the best single reading, with its crop

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (without the crop)."""
        return {
            "number": self.number,
            "verified": self.verified,
            "confidence": round(self.confidence, 3),
            "size_type": self.size_type,
            "views": self.views,
            "needs_review": self.needs_review,
            "reasons": list(self.reasons),
            "alternatives": list(self.alternatives),
        }


def _distance(a: str, b: str) -> int:
    """Edits between two numbers' first ten characters (see ``edit_distance``)."""
    return edit_distance(a[:10], b[:10])


def fuse_containers(
    readings: Iterable[ContainerReading],
    *,
    weights: Sequence[float] | None = None,
    min_confidence: float = 0.6,
    max_containers: int = 2,
) -> list[FusedContainer]:
    """Agree one answer per container from the readings of all views of one pass.

    ``weights`` says how much of a witness each reading is (default 1 each: independent
    views). The frames of one camera's burst see the box from one place a moment apart, so
    a misreading there repeats in every frame: give each of a burst's ``n`` frames ``1/n``
    (``ContainerCameraSource`` does), and a reading repeated stays as doubtful as it was.

    A number verified by two or more witnesses is taken as a container of its own, even
    when it differs little from another (a shipper's boxes often have consecutive
    serials). Any other reading within two edits of such a number (first ten characters;
    a character read wrong, dropped or added, so a window slipped by one place too) is
    taken as a misreading of it, and counts for or against it; readings near no such
    number are grouped among themselves the same way.

    Confidence grows with agreeing views and shrinks with verified rivals and with views
    that read the number otherwise, unless their own check digit disproves what they read
    (a misreading is no evidence for another number) or they read its serial and only its
    owner code otherwise. A container
    ``needs_review`` (hold the truck for a human) when no view verified its check digit,
    or its confidence is below ``min_confidence``; beyond ``max_containers`` confident
    containers the weakest are marked too (a truck carries at most two boxes). When
    ``max_containers`` containers are each verified by two witnesses and confident, numbers
    no view verified are left out: they can only be misreadings. Confident containers come
    first.
    """
    readings = list(readings)
    if weights is None:
        weights = [1.0] * len(readings)
    if len(weights) != len(readings):
        raise ValueError("one weight per reading")
    rs = [_Witness(r, w) for r, w in zip(readings, weights, strict=True) if len(r.number) >= 10]
    count: dict[str, float] = {}
    for x in rs:
        if x.r.verified:
            count[x.r.number] = count.get(x.r.number, 0.0) + x.w
    two = 2.0 - 1e-9  # n shares of 1/n add up to a shade under 1
    seeds = sorted((n for n, k in count.items() if k >= two), key=lambda n: -count[n])
    groups: list[list[_Witness]] = [[] for _ in seeds]
    loose: list[_Witness] = []
    for x in sorted(rs, key=lambda x: (x.r.verified, x.r.confidence), reverse=True):
        near = [i for i, n in enumerate(seeds) if _distance(x.r.number, n) <= 2]
        exact = [i for i in near if seeds[i][:10] == x.r.number[:10]]
        if exact or near:
            groups[(exact or near)[0]].append(x)
        else:
            loose.append(x)
    for x in loose:
        for g in groups[len(seeds) :]:
            if any(_distance(x.r.number, o.r.number) <= 2 for o in g):
                g.append(x)
                break
        else:
            groups.append([x])
    fused = [_fuse_group(g, min_confidence) for g in groups if g]
    # Once as many boxes as a truck carries are each verified by two witnesses and
    # confident, a number that no view verified is a misreading of one of them: no box is
    # left for it to be.
    sure = [f for f in fused if not f.needs_review and count.get(f.number, 0.0) >= two]
    if len(sure) >= max_containers:
        fused = [f for f in fused if f.verified]
    fused.sort(key=lambda f: (not f.needs_review, f.confidence, f.views), reverse=True)
    return [
        _with_review(f, "more numbers than a truck carries boxes")
        if i >= max_containers and not f.needs_review
        else f
        for i, f in enumerate(fused)
    ]


@dataclass(frozen=True)
class _Witness:
    """A reading and how much of a witness it is (1: an independent view)."""

    r: ContainerReading
    w: float


def _with_review(f: FusedContainer, reason: str) -> FusedContainer:
    return replace(f, needs_review=True, reasons=(*f.reasons, reason))


def _fuse_group(group: Sequence[_Witness], min_confidence: float) -> FusedContainer:
    # support per full number: verified readings vote with their confidence; an
    # unverified reading supports the verified numbers sharing its first ten characters
    verified: dict[str, float] = {}
    for x in group:
        if x.r.verified:
            verified[x.r.number] = verified.get(x.r.number, 0.0) + x.w * x.r.confidence
    for x in group:
        if not x.r.verified:
            for n in verified:
                if n[:10] == x.r.number[:10]:
                    verified[n] += 0.5 * x.w * x.r.confidence
    reasons: list[str] = []
    if verified:
        ranked = sorted(verified.items(), key=lambda kv: kv[1], reverse=True)
        number, support = ranked[0]
        rival = ranked[1][1] if len(ranked) > 1 else 0.0
        alternatives = tuple(n for n, _ in ranked[1:])
        backing = [x for x in group if x.r.number[:10] == number[:10]]
        # Views of another serial count against it: one owner's boxes often have
        # consecutive serials. Not one of this serial under other owner letters (OCLU for
        # OOLU): two boxes on one truck with one serial under owner codes a letter apart
        # would be a freak; it is this box, its owner code misread. Nor one whose own check
        # digit was read and disproves it: a misreading is no evidence for another number.
        against = sum(
            x.w
            for x in group
            if x.r.number[4:10] != number[4:10] and (x.r.verified or len(x.r.number) < 11)
        )
        # independent agreeing views make a number likelier (a burst's frames together are
        # one view); verified rivals make it doubtful
        conf = 1.0
        for x in backing:
            conf *= (1.0 - x.r.confidence * (0.9 if x.r.verified else 0.4)) ** x.w
        conf = 1.0 - conf
        if rival:
            # a verified rival is a misreading or a doubt: only a clear majority holds
            conf *= max(0.0, support - rival) / support
        elif against:
            conf *= 1.0 - 0.15 * against
    else:
        best = max(group, key=lambda x: x.r.confidence)
        number = best.r.number
        alternatives = tuple(sorted({x.r.number for x in group} - {number}))
        backing = [x for x in group if x.r.number[:10] == number[:10]]
        conf = 0.5 * max(x.r.confidence for x in backing)
        reasons.append("check digit not read in any view")
    conf = float(min(1.0, max(0.0, conf)))
    if conf < min_confidence and not reasons:
        why = f"confidence {conf:.2f} below {min_confidence:.2f}"
        if alternatives:
            why += f"; views also read {', '.join(alternatives)}"
        reasons.append(why)
    size_types = [x.r.size_type for x in backing if x.r.size_type]
    size_type = max(set(size_types), key=size_types.count) if size_types else None
    evidence = max(
        (x.r for x in backing), key=lambda r: (r.verified and r.number == number, r.confidence)
    )
    return FusedContainer(
        number=number,
        verified=bool(verified),
        confidence=conf,
        size_type=size_type,
        views=len(backing),
        needs_review=bool(reasons),
        reasons=tuple(reasons),
        alternatives=alternatives,
        evidence=evidence,
    )
