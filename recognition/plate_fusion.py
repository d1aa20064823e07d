"""Fusing several readings of one plate (views of a crop, frames of a pass) into one answer.

Plate layouts have fixed lengths, so readings of the same length line up character by
character. Each reading brings, per position, evidence for a few characters (posterior
among its grammatical readings times the model's support for the glyph); what it does not
vouch for counts for "unknown". Per position the readings are combined as independent
witnesses (naive Bayes with a floor, so one reader's blind spot is not a veto), the
characters are chosen under the grammar, and each keeps the fused probability as its
confidence. A plate is as sure as its least sure character.

Pure Python: no model, no image.

>>> a = Evidence("皖A12345", tuple(((c, 0.9),) for c in "皖A12345"))
>>> b = Evidence("皖A12845", tuple(((c, 0.9),) for c in "皖A12845"))
>>> fused = vote([a, a, b])
>>> fused.text, fused.char_confidence[4] < fused.char_confidence[5]
('皖A12345', True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from recognition.edits import edit_distance
from recognition.plate_grammar import TEMPLATES

__all__ = ["Evidence", "FusedPlate", "Vote", "fuse_plates", "vote"]

# A witness never rules a character out completely: the floor keeps one bad frame (glare,
# a passing shadow) from vetoing what the others see.
_FLOOR = 0.05
_UNKNOWN = "?"


@dataclass(frozen=True)
class Evidence:
    """One reading as evidence: its text and, per position, (character, weight) pairs.

    Weights at a position sum to at most 1; the rest is weight for "none of these".
    """

    text: str
    chars: tuple[tuple[tuple[str, float], ...], ...]
    # how much of a witness this reading is: 1 for an independent view, 1/n for each of n
    # frames of one camera's burst (near-identical frames repeat the same mistakes)
    weight: float = 1.0


@dataclass(frozen=True)
class Vote:
    """The fused reading: grammatical text and per-character confidence, or no text."""

    text: str | None
    confidence: float
    char_confidence: tuple[float, ...]


def _position_scores(evidence: Sequence[Evidence], k: int, temper: float) -> dict[str, float]:
    """Fused probability of each candidate character (and "unknown") at position k."""
    cands = {c for e in evidence for c, _ in e.chars[k]}
    logs: dict[str, float] = dict.fromkeys([*cands, _UNKNOWN], 0.0)
    for e in evidence:
        given = dict(e.chars[k])
        rest = max(0.0, 1.0 - sum(given.values()))
        for c in logs:
            w = rest if c == _UNKNOWN else given.get(c, 0.0)
            logs[c] += temper * e.weight * math.log(_FLOOR + w)
    top = max(logs.values())
    exp = {c: math.exp(v - top) for c, v in logs.items()}
    total = sum(exp.values())
    return {c: v / total for c, v in exp.items()}


def vote(evidence: Sequence[Evidence], *, temper: float = 1.0) -> Vote:
    """Fuse readings of one plate character by character under the plate grammar.

    Readings are grouped by length and the length most read is taken (a plate
    read as 7 characters in one frame and 8 in others is most likely 8). ``temper`` scales
    each witness: 1 for independent frames, ``1 / n`` for n views cut from one frame.
    """
    if not evidence:
        return Vote(None, 0.0, ())
    by_len: dict[int, list[Evidence]] = {}
    for e in evidence:
        by_len.setdefault(len(e.text), []).append(e)
    length, group = max(by_len.items(), key=lambda kv: len(kv[1]))
    scores = [_position_scores(group, k, temper) for k in range(length)]

    # best grammatical text: per template, the best allowed character at each position
    best: tuple[float, str, tuple[float, ...]] | None = None
    for t in TEMPLATES:
        if len(t) != length:
            continue
        text, probs = "", list[float]()
        for k, allowed in enumerate(t.positions):
            options = [(p, c) for c, p in scores[k].items() if c in allowed]
            if not options:
                break
            p, c = max(options)
            text += c
            probs.append(p)
        else:
            total = sum(math.log(max(p, 1e-12)) for p in probs)
            if best is None or total > best[0]:
                best = (total, text, tuple(probs))
    if best is None:
        return Vote(None, 0.0, ())
    _, text, chosen = best
    return Vote(text, min(chosen), chosen)


class Reading(Protocol):
    """What fusion needs of a plate reading (``plates.PlateReading`` has it)."""

    @property
    def text(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def chars(self) -> tuple[tuple[tuple[str, float], ...], ...]: ...


R = TypeVar("R", bound=Reading)

FusionStatus = Literal["confident", "doubtful", "none"]


@dataclass(frozen=True)
class FusedPlate(Generic[R]):
    """The plate of one pass, fused from all its readings.

    ``status`` is "confident" only when the fused confidence reaches the threshold and no
    other plate was seen as strongly; "doubtful" and "none" mean a human must look (the
    lane holds). ``text`` is the best grammatical reading even when doubtful, for the
    human's screen, never to be acted on alone.
    """

    text: str | None
    confidence: float
    char_confidence: tuple[float, ...]
    status: FusionStatus
    readings: int  # readings given
    agreeing: int  # readings of exactly this text
    rival: str | None  # another plate read in the same pass, when one was
    best: R | None  # the surest reading of this text: its crop is the evidence


def _clarity(reading: Reading) -> float:
    """How clearly a reading reads as a plate: the mean weight it gives its characters."""
    tops = [max(w for _, w in options) for options in reading.chars if options]
    return sum(tops) / len(tops) if tops else reading.confidence


def fuse_plates(
    readings: Sequence[R],
    *,
    weights: Sequence[float] | None = None,
    min_confidence: float = 0.5,
    max_rival: float = 0.3,
) -> FusedPlate[R]:
    """Fuse the plate readings of one pass (several frames, several cameras).

    ``weights`` says how much of a witness each reading is (default 1 each: independent
    views). The frames of one camera's burst see the truck standing still, so a misread one
    of them makes, the others make too: together they count as one witness (``1 / n``
    each), and the same doubtful reading repeated does not become a sure one.

    Readings are first grouped by plate: texts within two edits (a character misread,
    dropped or added) are taken for the same plate read with errors. The group whose
    characters read most clearly (summed over its readings: the mean weight of each
    reading's characters) is the pass's plate, so that a plate whose province alone is
    unclear still wins over a badge or sign made into a doubtful plate; when a second
    group carries more than ``max_rival`` of its confidence (two vehicles in view, or a
    plate read two incompatible ways), the result is doubtful. The chosen group is voted
    character by character (independent frames; the length most of them read wins).

    >>> from types import SimpleNamespace as R
    >>> def reading(t, w): return R(text=t, confidence=w, chars=tuple(((c, w),) for c in t))
    >>> seen = [reading("皖A12345", 0.9), reading("皖A12345", 0.8), reading("皖A12845", 0.6)]
    >>> f = fuse_plates(seen)
    >>> f.text, f.status, f.agreeing
    ('皖A12345', 'confident', 2)
    >>> fuse_plates([reading("皖A12345", 0.2)]).status
    'doubtful'
    >>> fuse_plates([]).status
    'none'
    """
    if not readings:
        return FusedPlate(None, 0.0, (), "none", 0, 0, None, None)
    if weights is None:
        weights = [1.0] * len(readings)
    if len(weights) != len(readings):
        raise ValueError(f"{len(weights)} weights for {len(readings)} readings")
    groups: list[list[tuple[R, float]]] = []
    for r, w in sorted(zip(readings, weights, strict=True), key=lambda rw: -rw[0].confidence):
        for g in groups:
            if edit_distance(g[0][0].text, r.text) <= 2:
                g.append((r, w))
                break
        else:
            groups.append([(r, w)])
    clarity = [sum(max(_clarity(r), 0.01) * w for r, w in g) for g in groups]
    weight = [sum(max(r.confidence, 0.01) * w for r, w in g) for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (-clarity[i], -weight[i]))
    main = groups[order[0]]
    rival = groups[order[1]] if len(order) > 1 else None
    fused = vote([Evidence(r.text, r.chars, w) for r, w in main])
    if fused.text is None:
        return FusedPlate(None, 0.0, (), "none", len(readings), 0, None, None)
    same = [r for r, _ in main if r.text == fused.text]
    best = max(same, key=lambda r: r.confidence) if same else None
    contested = rival is not None and weight[order[1]] > max_rival * weight[order[0]]
    status: FusionStatus = (
        "confident" if fused.confidence >= min_confidence and not contested else "doubtful"
    )
    return FusedPlate(
        text=fused.text,
        confidence=fused.confidence,
        char_confidence=fused.char_confidence,
        status=status,
        readings=len(readings),
        agreeing=len(same),
        rival=rival[0][0].text if rival is not None else None,
        best=best,
    )
