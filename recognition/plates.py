"""Reading Chinese licence plates: a plate crop, or every plate in a camera frame.

The recogniser's per-step character probabilities are decoded under the plate grammar
(``plate_grammar.TEMPLATES``) with a CTC prefix beam search, so every reading is a plate
number GA 36 allows, and the province character is never silently dropped. Each reading
carries a confidence built from two questions per character: did the model prefer this
character over every other glyph it knows where the character stands (support), and how
much of the probability of all grammatical readings agrees on it (posterior)? A plate is
only as sure as its least sure character. Low confidence means doubt: the lane turns it
into a hold for a human, never a guess.

Plates are read with PP-OCRv4's recogniser (``OcrEngine.plate_recognizer``): on the real
plate crops it reads the small province character (about 10x15 pixels on a 94x24 crop)
where the PP-OCRv6 model rapidocr ships reads a blob, 203 of 204 crops exact against 191.
The two models' mistakes differ, so a plate the plate model reads in doubt is read by the
general model as well, and the surer reading kept: on 400 rendered plates of all 31
provinces that read 374 sure and right, the general model alone 355. The plate model leans
to 皖 (Anhui), the province of most of the real photos at hand, and reads another
province's glyph as 皖 now and then, once in 400 renders surely (``recognition.models``).

When the province is all that keeps a reading in doubt, the plate is read once more from
a view that ends after the issuing letter, and the two views decide the province together
(``reread_province``): this reads more provinces right and makes no wrong one sure.
Measured with the general model and not kept, as they read it no better: the glyph alone
(upscaled, sharpened, padded, on a plain plate background, several such views combined),
photometric and scaling variants of the whole line, a province classifier over the
model's output trained on rendered plates (better on renders, not on photos), and a
classifier of the glyph's own pixels (gradient histograms of the straightened glyph,
trained on 7,500 degraded renders of all 31 provinces). Nor did reading a plate again in
the layouts its measured colour allows (a green plate has 8 characters) help: colour
measured on small photo crops is too often wrong. A province still unreadable keeps its
low confidence, and the lane holds the plate.

Finding plates in a frame starts from the text detector and falls back on colour (GA 36
plates are blue, yellow or green rectangles of known proportions). Each candidate is
straightened, its lean undone, read (a yellow double-layer plate as its two lines
joined), and kept when it reads as a plate. A line on a yellow plate that reads doubtful
may be one line of a double-layer plate whose other line the detector missed: the whole
yellow plate around it is read as well, and the surer reading kept.

Everything here blocks (ONNX Runtime inference, OpenCV); async callers use an executor.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from recognition.ctc import (
    TemplateAutomaton,
    column_groups,
    ctc_align,
    fold,
    prefix_beam_search,
)
from recognition.engine import MIN_REC_RATIO, Image, OcrEngine
from recognition.plate_fusion import Evidence, FusedPlate, fuse_plates, vote
from recognition.plate_grammar import (
    PROVINCES,
    SEPARATORS,
    TEMPLATES,
    PlateKind,
    is_valid,
    plate_kind,
)

__all__ = [
    "PlateColour",
    "PlateDecode",
    "PlateReader",
    "PlateReading",
    "decode_plate",
    "province_prefix_end",
    "reread_province",
]

PlateColour = Literal["blue", "yellow", "green", "white", "black"]
Quad = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]

PLATE_AUTOMATON = TemplateAutomaton([t.positions for t in TEMPLATES])
_PLATE_CHARS: tuple[str, ...] = tuple(sorted(PLATE_AUTOMATON.alphabet))
# each plate character's column in folded probabilities (column 0 is the blank)
_COLUMN = {c: j + 1 for j, c in enumerate(_PLATE_CHARS)}

# Glyphs a plate never carries but a general model reads for the ones it does.
_HOMOGLYPHS = {"O": "0", "I": "1"}


def _canonical(glyph: str) -> str:
    text = unicodedata.normalize("NFKC", glyph).upper()
    return _HOMOGLYPHS.get(text, text)


@dataclass(frozen=True)
class PlateDecode:
    """The grammar-constrained reading of one recogniser output."""

    text: str
    confidence: float  # 0..1, the least sure character's confidence
    char_confidence: tuple[float, ...]
    # per position: (character, weight) the reading vouches for, best first; weights sum to
    # at most 1 (posterior among the grammatical readings times the model's support)
    chars: tuple[tuple[tuple[str, float], ...], ...]
    # each character's first and last time step in the output it was decoded from, when
    # known (``decode_plate``): the province re-read needs them
    spans: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)


class _Alphabet:
    """Per-alphabet tables, built once per model: columns folded for the plate grammar."""

    def __init__(self, alphabet: Sequence[str]) -> None:
        self.source = alphabet  # held, so that its id stays its own while cached
        self.alphabet = list(alphabet)
        self.canon = [_canonical(a) if i else "" for i, a in enumerate(self.alphabet)]
        self.columns = column_groups(
            self.alphabet, _PLATE_CHARS, canonical=_canonical, blank_like="".join(SEPARATORS)
        )
        self.groups = dict(zip(_PLATE_CHARS, self.columns[1:], strict=True))
        self.blank_set = frozenset(int(i) for i in self.columns[0])


_ALPHABETS: dict[int, _Alphabet] = {}


def _tables(alphabet: Sequence[str]) -> _Alphabet:
    got = _ALPHABETS.get(id(alphabet))
    if got is None or got.source is not alphabet:
        if len(_ALPHABETS) >= 8:  # one model in a lane; tests build a few toy alphabets
            _ALPHABETS.clear()
        got = _Alphabet(alphabet)
        _ALPHABETS[id(alphabet)] = got
    return got


def decode_plate(
    probs: NDArray[np.float32],
    alphabet: Sequence[str],
    *,
    beam_width: int = 4,
) -> PlateDecode | None:
    """Decode recogniser probabilities (T x C, column 0 the CTC blank) as a plate number.

    Returns the most probable grammatical plate, or None when no plate fits (too few time
    steps, or nothing but blank). ``alphabet[i]`` is the character of column ``i``.
    """
    tables = _tables(alphabet)
    folded = fold(probs, tables.columns)
    hyps = prefix_beam_search(folded, _PLATE_CHARS, PLATE_AUTOMATON, beam_width=beam_width)
    if not hyps:
        return None
    best = hyps[0]
    weights = [math.exp(h.log_prob - best.log_prob) for h in hyps]
    total = sum(weights)
    spans = ctc_align(folded, [_COLUMN[c] for c in best.text])
    chars: list[tuple[tuple[str, float], ...]] = []
    confidence: list[float] = []
    for k, c in enumerate(best.text):
        posterior: dict[str, float] = {}
        for h, w in zip(hyps, weights, strict=True):
            if len(h.text) > k:
                posterior[h.text[k]] = posterior.get(h.text[k], 0.0) + w / total
        support = _support(probs, tables, c, spans[k])
        # what the model vouches for at this position; the rest of the weight is "unknown"
        evidence = sorted(((a, p * support) for a, p in posterior.items()), key=lambda x: -x[1])
        chars.append(tuple(evidence))
        confidence.append(posterior.get(c, 0.0) * support)
    return PlateDecode(
        text=best.text,
        confidence=min(confidence),
        char_confidence=tuple(confidence),
        chars=tuple(chars),
        spans=tuple(spans),
    )


def _pool(decodes: Sequence[PlateDecode]) -> PlateDecode | None:
    """One reading from views of the same plate: a character vote that counts the views
    together as one witness (so a single view and several are on the same scale)."""
    if not decodes:
        return None
    evidence = [Evidence(d.text, d.chars) for d in decodes]
    fused = vote(evidence, temper=1.0 / len(decodes))
    if fused.text is None:
        return None
    chars = tuple(
        tuple(
            sorted(
                _merge([dict(e.chars[k]) for e in evidence if len(e.text) == len(fused.text)]),
                key=lambda x: -x[1],
            )
        )
        for k in range(len(fused.text))
    )
    return PlateDecode(
        text=fused.text,
        confidence=fused.confidence,
        char_confidence=fused.char_confidence,
        chars=chars,
    )


def _combine(mine: PlateDecode | None, other: PlateDecode | None) -> PlateDecode | None:
    """Two models' readings of one plate: the surer one."""
    if other is None or (mine is not None and mine.confidence >= other.confidence):
        return mine
    return other


def _merge(dists: Sequence[dict[str, float]]) -> list[tuple[str, float]]:
    """The mean of several (character -> weight) maps."""
    out: dict[str, float] = {}
    for d in dists:
        for c, w in d.items():
            out[c] = out.get(c, 0.0) + w / len(dists)
    return list(out.items())


def _support(
    probs: NDArray[np.float32], tables: _Alphabet, char: str, span: tuple[int, int]
) -> float:
    """How strongly the model preferred ``char`` over any other glyph where it stands.

    At each aligned step: the probability of the character (and the glyphs that mean it)
    against that of the strongest other non-blank glyph; the best step counts.
    """
    same = tables.groups[char]
    best = 0.0
    first, last = span
    for t in range(first, last + 1):
        row = probs[t]
        p_same = float(row[same].sum())
        order = np.argpartition(-row, 6)[:6]
        rival = 0.0
        for j in order[np.argsort(-row[order])]:
            if tables.canon[j] == char or int(j) in tables.blank_set:
                continue
            rival = float(row[j])
            break
        if p_same + rival > 0.0:
            best = max(best, p_same / (p_same + rival))
    return best


# A plate the plate model reads less surely than this is read by the general model too.
# Read sure (0.8, the lane's default) and right, on 400 rendered plates: the general model
# alone 355, the plate model with this second opinion 374; sure and wrong: 0 and 1. On the
# 204 real crops, sure and right: 109 and 200, none sure and wrong. Asking the general model
# about surer readings too (below 0.95, or always), and holding a plate the two read
# differently, changed nothing on the renders and cost real crops their sureness.
_SECOND_OPINION_BELOW = 0.8
# A province character read less surely than this is read once more, from a view of the
# plate that ends after the issuing letter (see ``reread_province``).
_PROVINCE_REREAD_BELOW = 0.5
# Where that view ends: past the issuing letter's centre, in character pitches. The dot
# follows the letter; ends from 0.4 to 0.7 pitches read alike.
_PREFIX_END = 0.5


def _aligned(probs: NDArray[np.float32], tables: _Alphabet, text: str) -> list[tuple[int, int]]:
    """Each character's span of time steps when ``text`` is read from ``probs``."""
    return ctc_align(fold(probs, tables.columns), [_COLUMN[c] for c in text])


def province_prefix_end(
    decode: PlateDecode,
    probs: NDArray[np.float32],
    alphabet: Sequence[str],
) -> float | None:
    """Where a view holding only the province character and the issuing letter ends, in
    time steps of ``probs`` (step ``t`` covers [t, t + 1)), or None when the reading is too
    short to tell the character pitch.

    The letter's place comes from the alignment of the decoded text; the pitch from its
    serial characters, which GA 36 sets at the same pitch as province and letter.
    """
    if len(decode.text) < 5:
        return None
    spans = decode.spans or _aligned(probs, _tables(alphabet), decode.text)
    centres = [(a + b) / 2 + 0.5 for a, b in spans]
    pitch = float(np.median(np.diff(centres[2:])))
    if pitch <= 0:
        return None
    return centres[1] + _PREFIX_END * pitch


def _province_shares(
    probs: NDArray[np.float32], tables: _Alphabet, steps: slice
) -> NDArray[np.float64]:
    """Each province's best probability over ``steps``, as shares of their sum."""
    part = probs[steps]
    best = np.array(
        [float(part[:, tables.groups[c]].sum(axis=1).max()) for c in PROVINCES], np.float64
    )
    total = best.sum()
    return best / total if total > 0 else best


def reread_province(
    decode: PlateDecode,
    probs: NDArray[np.float32],
    prefix: NDArray[np.float32],
    alphabet: Sequence[str],
) -> PlateDecode:
    """The reading with its province character decided by two views of it together.

    ``probs`` is the recogniser's output for the whole line that gave ``decode``,
    ``prefix`` its output for a view that ends after the issuing letter (see
    ``province_prefix_end``). The short view changes what the recogniser's context
    makes of a small glyph, and reads it right more often on real and rendered plates
    alike; the two views' shares of each province are averaged and the largest wins. Its
    confidence is that share times how clearly the two views saw the glyph against any
    other they know (the support of ``decode_plate``), so a glyph that neither view makes
    out stays in doubt. Provinces are treated alike: none is preferred to another. The
    short view must hold province and letter (the letter aligns in it).
    """
    tables = _tables(alphabet)
    spans = decode.spans or _aligned(probs, tables, decode.text)
    letter = max(1, spans[1][0])
    before = slice(0, letter)
    share = (
        _province_shares(probs, tables, before) + _province_shares(prefix, tables, slice(None))
    ) / 2

    ranked = [
        (PROVINCES[j], float(share[j]))
        for j in np.argsort(-share)
        if share[j] > 0 and is_valid(PROVINCES[j] + decode.text[1:])
    ]
    if not ranked:
        return decode
    province = ranked[0][0]
    text = province + decode.text[1:]
    # how clearly each view saw that glyph where it aligns, against any other glyph
    where = spans[0] if province == decode.text[0] else _aligned(probs, tables, text)[0]
    seen = (
        _support(probs, tables, province, where)
        + _support(prefix, tables, province, _aligned(prefix, tables, text[:2])[0])
    ) / 2
    evidence = tuple((c, w * seen) for c, w in ranked[:3])
    first = evidence[0][1]
    char_confidence = (first, *decode.char_confidence[1:])
    return PlateDecode(
        text=text,
        confidence=min(char_confidence),
        char_confidence=char_confidence,
        chars=(evidence, *decode.chars[1:]),
    )


@dataclass(frozen=True)
class PlateReading:
    """One plate read from one image."""

    text: str  # compact plate number, always grammatical (plate_grammar.validate passes)
    confidence: float  # 0..1; low means doubt, to be held for a human
    box: Quad  # corners in image pixels, clockwise from top-left
    colour: PlateColour | None  # background colour measured on the crop, when clear
    kind: PlateKind
    double_layer: bool  # read as a two-line (yellow truck) plate
    char_confidence: tuple[float, ...]
    # per position: (character, weight) this reading vouches for, best first (for fusion)
    chars: tuple[tuple[tuple[str, float], ...], ...]
    crop: Image = field(repr=False, compare=False)  # the straightened plate, BGR, as evidence


class PlateReader:
    """Reads plates with a shared ``OcrEngine``. Thread-safe; every call blocks.

    ``find_plates`` reports a candidate region as a plate when its characters, all but
    the weakest, have a mean confidence of at least ``min_plate_score``; the reading's own
    confidence may still be low (an unclear province character), for the lane to hold.
    """

    def __init__(
        self,
        engine: OcrEngine,
        *,
        detect_side: int = 736,
        max_candidates: int = 4,
        min_plate_score: float = 0.6,
        beam_width: int = 4,
    ) -> None:
        self.engine = engine
        self.detect_side = detect_side
        self.max_candidates = max_candidates
        self.min_plate_score = min_plate_score
        self.beam_width = beam_width

    # -- recognition ---------------------------------------------------------------

    def _run(
        self, lines: Sequence[Image], min_ratio: float, *, general: bool
    ) -> tuple[list[NDArray[np.float32]], float]:
        """One recogniser batch, padded to the widest line but to no less than
        ``min_ratio`` heights: each line's output (T x C), and the input pixels per time
        step. ``general`` runs the general recogniser instead of the plate one."""
        ratio = max(min_ratio, *(im.shape[1] / im.shape[0] for im in lines))
        probs, width = self.engine.recognize_batch(lines, ratio, plates=not general)
        out = [np.asarray(o, dtype=np.float32) for o in probs]
        return out, width / out[0].shape[0]

    def _recognizer(self, general: bool) -> Any:
        return self.engine.recognizer if general else self.engine.plate_recognizer

    def decode_views(
        self,
        plates: Sequence[Sequence[Image]],
        *,
        reread: bool = True,
    ) -> list[PlateDecode | None]:
        """Decode plates, each given as one or more single-line views, in one batch.

        With ``reread``, a view whose province character is in doubt is read once more
        ending after the issuing letter, and the two readings of the province are
        combined (``reread_province``); views that are two lines joined are not.

        A plate the plate model reads in doubt is read by the general model as well, when
        the engine has both, and the surer reading is kept: the two models' mistakes
        differ (see ``_SECOND_OPINION_BELOW``).
        """
        out = self._decode_with(plates, reread=reread, general=False)
        if self.engine.plate_recognizer is self.engine.recognizer:
            return out
        # only plates in doubt: not regions that do not read as a plate at all (most
        # candidates in a street scene), which would cost a second run each
        doubtful = [
            i
            for i, d in enumerate(out)
            if d is not None
            and d.confidence < _SECOND_OPINION_BELOW
            and _plate_like(d.char_confidence, self.min_plate_score)
        ]
        if doubtful:
            again = self._decode_with([plates[i] for i in doubtful], reread=reread, general=True)
            for i, other in zip(doubtful, again, strict=True):
                out[i] = _combine(out[i], other)
        return out

    def _decode_with(
        self, plates: Sequence[Sequence[Image]], *, reread: bool, general: bool
    ) -> list[PlateDecode | None]:
        """``decode_views`` with one model."""
        flat = [v for views in plates for v in views]
        if not flat:
            return [None] * len(plates)
        # A text line pads to at least 320 px at 48 px high, as RapidOCR batches do: a
        # plate alone at its own width leaves the recogniser too few steps at the edges.
        probs, step_px = self._run(flat, 320 / 48, general=general)
        alphabet = self._recognizer(general).postprocess_op.character
        decodes = [decode_plate(p, alphabet, beam_width=self.beam_width) for p in probs]
        if reread:
            decodes = self._reread_provinces(flat, probs, decodes, step_px, general=general)
        out: list[PlateDecode | None] = []
        at = 0
        for views in plates:
            got = decodes[at : at + len(views)]
            at += len(views)
            out.append(_pool([d for d in got if d is not None]))
        return out

    def _reread_provinces(
        self,
        views: Sequence[Image],
        probs: Sequence[NDArray[np.float32]],
        decodes: Sequence[PlateDecode | None],
        step_px: float,
        *,
        general: bool,
    ) -> list[PlateDecode | None]:
        """``decodes`` with each doubtful province read again from a view that ends after
        the issuing letter (one recogniser batch for all of them)."""
        out = list(decodes)
        rec = self._recognizer(general)
        alphabet = rec.postprocess_op.character
        height = int(rec.rec_image_shape[1])
        todo: list[tuple[int, Image]] = []
        for i, (view, p, d) in enumerate(zip(views, probs, decodes, strict=True)):
            # only where the province is what keeps the reading in doubt: the rest is clear
            if (
                d is None
                or d.char_confidence[0] >= _PROVINCE_REREAD_BELOW
                or min(d.char_confidence[1:]) < _PROVINCE_REREAD_BELOW
            ):
                continue
            end = province_prefix_end(d, p, alphabet)
            if end is None:
                continue
            # step t covers input pixels [t, t + 1) * step; the view was resized to the
            # input's height (and fits its padded width)
            h, w = view.shape[:2]
            resized = min(p.shape[0] * step_px, math.ceil(height * w / h))
            x = round(end * step_px * w / resized) if resized > 0 else 0
            if h // 2 <= x < w:
                todo.append((i, np.ascontiguousarray(view[:, :x])))
        if todo:
            again, _ = self._run([v for _, v in todo], MIN_REC_RATIO, general=general)
            for (i, _), q in zip(todo, again, strict=True):
                d = out[i]
                if d is not None:
                    out[i] = reread_province(d, probs[i], q, alphabet)
        return out

    def read_crop(self, crop: Image, *, box: Quad | None = None) -> PlateReading | None:
        """Read a crop holding one plate (roughly straight, margins allowed).

        A crop of double-layer proportions is also read as two joined lines, and the
        more confident reading wins. ``box`` places the reading in a larger image;
        by default it is the crop's own outline. None when nothing reads as a plate.
        """
        bgr = _as_bgr(crop)
        if bgr is None or bgr.shape[0] < 8 or bgr.shape[1] < 16:
            return None
        got = self._read_many([[bgr]])[0]
        if got is None:
            return None
        return _place(got, box) if box is not None else got

    def _read_many(self, plates: Sequence[Sequence[Image]]) -> list[PlateReading | None]:
        """Read plates, each given as views (the first is kept as evidence), in one batch.

        A view of double-layer proportions is also read as its two lines joined; the more
        confident of the two readings of a plate wins.
        """
        singles = self.decode_views(plates)
        best: list[tuple[PlateDecode, bool] | None] = [
            None if d is None else (d, False) for d in singles
        ]
        # A weak reading of a crop with double-layer proportions may be a two-line plate:
        # read its lines joined, and keep whichever reading is surer.
        retry: list[tuple[int, list[Image]]] = []
        for i, (views, d) in enumerate(zip(plates, singles, strict=True)):
            if d is not None and d.confidence >= 0.5:
                continue
            joined = [_double_layer_view(v) for v in views]
            if joined and all(j is not None for j in joined):
                retry.append((i, [j for j in joined if j is not None]))
        if retry:
            doubles = self.decode_views([views for _, views in retry], reread=False)
            for (i, _), dec in zip(retry, doubles, strict=True):
                cur = best[i]
                if dec is not None and (cur is None or dec.confidence > cur[0].confidence):
                    best[i] = (dec, True)
        out: list[PlateReading | None] = []
        for views, got in zip(plates, best, strict=True):
            if got is None:
                out.append(None)
                continue
            dec, double = got
            crop = views[0]
            h, w = crop.shape[:2]
            outline: Quad = ((0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h)))
            out.append(
                PlateReading(
                    text=dec.text,
                    confidence=dec.confidence,
                    box=outline,
                    colour=plate_colour(crop),
                    kind=plate_kind(dec.text),
                    double_layer=double,
                    char_confidence=dec.char_confidence,
                    chars=dec.chars,
                    crop=crop,
                )
            )
        return out

    # -- finding -------------------------------------------------------------------

    def read_pass(
        self, views: Sequence[Sequence[Image]], *, min_confidence: float = 0.5
    ) -> FusedPlate[PlateReading]:
        """The plate of one truck pass: every plate found in every frame, fused.

        ``views`` holds each camera view's burst of frames. Views are independent
        witnesses; the frames of one burst count together as one. See ``fuse_plates`` for
        how readings are voted and when the answer is doubtful (to be held for a human).
        """
        readings: list[PlateReading] = []
        weights: list[float] = []
        for burst in views:
            for frame in burst:
                found = self.find_plates(frame)
                readings += found
                weights += [1.0 / len(burst)] * len(found)
        return fuse_plates(readings, weights=weights, min_confidence=min_confidence)

    def find_plates(
        self, image: Image, *, roi: tuple[int, int, int, int] | None = None
    ) -> list[PlateReading]:
        """Find and read every plate in a camera frame, the most clearly read first.

        Candidates come from the text detector, and from plate-coloured rectangles when no
        detected text reads as a plate. Each is straightened with a margin, its lean
        undone, and read. Regions that do not read as a plate, and readings of a place
        already read better, are dropped.

        ``roi`` (x0, y0, x1, y1 in pixels) limits the search to where a fixed camera sees
        plates: the detector then spends its resolution there, and boxes are still given
        in the whole frame's coordinates.
        """
        bgr = _as_bgr(image)
        if bgr is None:
            return []
        image = bgr
        if roi is not None:
            h, w = image.shape[:2]
            x0, y0 = max(0, roi[0]), max(0, roi[1])
            x1, y1 = min(w, roi[2]), min(h, roi[3])
            if x1 <= x0 or y1 <= y0:
                return []
            part = np.ascontiguousarray(image[y0:y1, x0:x1])
            return [_shift(r, x0, y0) for r in self.find_plates(part)]
        if min(image.shape[:2]) < 16:
            return []
        boxes = detect_text(self.engine, image, self.detect_side)
        # most plate-like first: a confident text box on a plate-coloured background
        boxes.sort(key=lambda qs: -qs[1] * (0.3 + _plate_colour_share(image, qs[0])))
        # a double-layer plate's two lines come as separate boxes: try them joined first
        stacked = [(q, _STACKED_MARGINS) for q in stack_lines([q for q, _ in boxes])]
        plates = self._plates_among(image, stacked + [(q, _TEXT_MARGINS) for q, _ in boxes])
        plates = self._as_whole_double_layers(image, plates)
        if not plates:
            regions = sorted(colour_regions(image), key=lambda qs: -qs[1])
            plates = self._plates_among(image, [(q, _colour_margins(q)) for q, _ in regions])
        readings = [
            _place(r, quad)
            for quad, r in plates
            if _plate_like(r.char_confidence, self.min_plate_score)
        ]
        # clearest plates first: the mean over characters, so that one unclear province
        # character does not rank a plate below a stripe pattern that reads as digits
        readings.sort(key=lambda r: -sum(r.char_confidence) / len(r.char_confidence))
        kept: list[PlateReading] = []
        for r in readings:
            if all(_overlap(r.box, k.box) < 0.3 and r.text != k.text for k in kept):
                kept.append(r)
        return kept

    def _as_whole_double_layers(
        self,
        image: Image,
        plates: list[tuple[NDArray[np.float32], PlateReading]],
    ) -> list[tuple[NDArray[np.float32], PlateReading]]:
        """``plates`` with each doubtful single line on a yellow plate read again as the
        whole yellow plate around it, as a double-layer plate, where that reads surer.

        The detector often boxes a double-layer plate's two lines apart, or sees only one
        of them (the small upper line, province and letter, is easily missed); either line
        alone then reads as a doubtful plate with made-up characters.
        """
        picked: list[tuple[int, NDArray[np.float32], Image]] = []
        for i, (quad, r) in enumerate(plates):
            if r.confidence < 0.5 and not r.double_layer and r.colour == "yellow":
                around = _plate_around(image, quad, "yellow")
                if around is not None:
                    picked.append((i, *around))
        if not picked:
            return plates
        out = list(plates)
        again = self._read_many([[view] for _, _, view in picked])
        for (i, quad, _), whole in zip(picked, again, strict=True):
            if (
                whole is not None
                and whole.double_layer
                and whole.confidence > plates[i][1].confidence
            ):
                out[i] = (quad, whole)
        return out

    def _plates_among(
        self,
        image: Image,
        candidates: Sequence[tuple[NDArray[np.float32], Margins]],
    ) -> list[tuple[NDArray[np.float32], PlateReading]]:
        """The candidates that read as a plate: (framed quad, reading)."""
        picked: list[tuple[NDArray[np.float32], Margins]] = []
        for quad, margins in candidates:
            if _plate_shaped(quad) and all(_iou(quad, q) < 0.5 for q, _ in picked):
                picked.append((quad, margins))
            if len(picked) >= self.max_candidates:
                break
        if not picked:
            return []
        framed = [_expand(q, *m) for q, m in picked]
        views: list[list[Image]] = []
        for f in framed:
            view = _warp(image, f)
            views.append([unslant(view, slant(view))])
        return [
            (f, r)
            for f, r in zip(framed, self._read_many(views), strict=True)
            if r is not None and _plate_like(r.char_confidence, self.min_plate_score)
        ]


# How far a double-layer plate reaches beyond one of its lines, in that line's heights:
# over its 110 mm lower line stand 20 mm of gap, 60 mm of characters and 15 mm of rim;
# under its 60 mm upper line, 20 mm of gap, the lower line and 15 mm of rim (GA 36).
_ABOVE = 0.9
_BELOW = 2.6
# and sideways, in the line's widths on each side: the upper line spans half the plate
_SIDEWAYS = 0.5

Margins = tuple[float, float]
# How a candidate is framed, as fractions of its width and height added on each side. The
# recogniser reads best when the characters fill the line's height and the province
# character has room at the left: a detector box already has some margin around the
# characters, a colour box is the whole plate (characters are 90 of its 140 mm). Reading
# several framings and voting did not read the province character better on the photos at
# hand, and cost a recogniser run each, so one is used.
_TEXT_MARGINS: Margins = (0.10, 0.0)
_COLOUR_MARGINS: Margins = (0.08, -0.14)
_STACKED_MARGINS: Margins = (0.06, 0.04)


def _colour_margins(quad: NDArray[np.float32]) -> Margins:
    """A single-layer plate is trimmed to its characters; a double-layer one is kept whole."""
    w, h = _quad_size(quad)
    return _STACKED_MARGINS if w < 2.6 * h else _COLOUR_MARGINS


def stack_lines(quads: Sequence[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
    """Outlines of a lower text line together with the shorter lines just above it.

    A yellow double-layer plate reads as a wide line of large characters under one or two
    boxes of small ones (province, issuing letter); the detector boxes them apart.
    """
    bounds = [_bounds(q) for q in quads]
    out: list[NDArray[np.float32]] = []
    for lx0, ly0, lx1, ly1 in bounds:
        lh, lw = ly1 - ly0, lx1 - lx0
        if lh <= 0 or not 2.0 <= lw / lh <= 6.0:
            continue
        upper = [
            (ux0, uy0, ux1, uy1)
            for ux0, uy0, ux1, uy1 in bounds
            if 0.25 * lh <= uy1 - uy0 <= 0.9 * lh
            and uy1 <= ly0 + 0.2 * lh
            and ly0 - uy1 <= 0.6 * lh
            and ux0 >= lx0 - 0.1 * lw
            and ux1 <= lx1 + 0.1 * lw
        ]
        if not upper:
            continue
        x0 = min(lx0, *(u[0] for u in upper))
        y0 = min(u[1] for u in upper)
        x1 = max(lx1, *(u[2] for u in upper))
        out.append(np.array([[x0, y0], [x1, y0], [x1, ly1], [x0, ly1]], dtype=np.float32))
    return out


def _plate_like(conf: Sequence[float], min_score: float) -> bool:
    """A reading, given by its characters' confidences ``conf``, is of a plate when all
    characters but the weakest read clearly, and the issuing letter is among the clear ones.

    The weakest is often the province character, which the model reads worst; its doubt
    stays in the reading's confidence, but it must not hide a plate that is really there.
    A line of five or six characters alone (a phone number, a container serial) would
    otherwise pass with a province and letter made up in front of it.
    """
    rest = sorted(conf)[1:]
    return len(conf) > 2 and conf[1] >= 0.3 and sum(rest) / len(rest) >= min_score


def _plate_shaped(quad: NDArray[np.float32]) -> bool:
    """Wide, roughly level, and big enough to hold seven legible characters."""
    q = _order(quad)
    w, h = _quad_size(q)
    dx, dy = (q[1] - q[0]).tolist()
    level = abs(math.degrees(math.atan2(dy, dx))) <= 35
    return level and h >= 8 and w >= 30 and 1.5 <= w / h <= 8


# -- geometry and image helpers --------------------------------------------------------


def detect_text(
    engine: OcrEngine, image: Image, max_side: int
) -> list[tuple[NDArray[np.float32], float]]:
    """Text regions from the engine's detector at a chosen scale: (quad, score) pairs."""
    return engine.detect_regions(
        image,
        max_side=max_side,
        thresh=0.3,
        box_thresh=0.4,
        unclip_ratio=1.6,
        max_candidates=200,
    )


# HSV ranges (OpenCV hue 0-179) of GA 36 plate backgrounds, wide enough for dusk and glare.
_COLOUR_RANGES: dict[PlateColour, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "blue": ((100, 90, 50), (130, 255, 255)),
    "yellow": ((12, 90, 90), (34, 255, 255)),
    "green": ((35, 35, 50), (90, 255, 255)),
}


def colour_regions(image: Image) -> list[tuple[NDArray[np.float32], float]]:
    """Plate-coloured rectangles of plate proportions: (quad, score) pairs.

    The score is high for a filled rectangle with many vertical strokes (characters) in it.
    """
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    edges = np.abs(cv2.Sobel(gray, cv2.CV_16S, 1, 0, ksize=3)) > 60
    h, w = gray.shape
    min_area = max(150.0, h * w * 1e-4)
    out: list[tuple[NDArray[np.float32], float]] = []
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 3))
    for lo, hi in _COLOUR_RANGES.values():
        mask = cv2.inRange(hsv, np.array(lo, np.uint8), np.array(hi, np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            area = cv2.contourArea(c)
            if area < min_area:
                continue
            rect = cv2.minAreaRect(c)
            (rw, rh) = rect[1]
            long, short = max(rw, rh), min(rw, rh)
            if short < 8 or not 1.5 <= long / short <= 6.0:
                continue
            fill = area / (long * short)
            if fill < 0.55:
                continue
            quad = _order(cv2.boxPoints(rect))
            x0, y0 = np.maximum(quad.min(axis=0).astype(int), 0)
            x1, y1 = quad.max(axis=0).astype(int)
            strokes = float(edges[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0
            if strokes < 0.04:
                continue
            out.append((quad, fill * min(1.0, strokes * 5)))
    return out


def _plate_colour_share(image: Image, quad: NDArray[np.float32]) -> float:
    """The share of a box's pixels in any plate background colour."""
    h, w = image.shape[:2]
    x0, y0 = np.clip(quad.min(axis=0).astype(int), 0, [w, h])
    x1, y1 = np.clip(quad.max(axis=0).astype(int) + 1, 0, [w, h])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    hsv = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2HSV)
    mask = np.zeros(hsv.shape[:2], dtype=bool)
    for lo, hi in _COLOUR_RANGES.values():
        mask |= cv2.inRange(hsv, np.array(lo, np.uint8), np.array(hi, np.uint8)) > 0
    return float(mask.mean())


def plate_colour(crop: Image) -> PlateColour | None:
    """The background colour of a plate crop, or None when unclear.

    >>> blue = np.zeros((20, 60, 3), np.uint8); blue[:] = (170, 70, 10)
    >>> plate_colour(blue)
    'blue'
    """
    h, w = crop.shape[:2]
    inner = crop[h // 6 : h - h // 6 or h, w // 12 : w - w // 12 or w]
    hsv = cv2.cvtColor(inner, cv2.COLOR_BGR2HSV).reshape(-1, 3)
    counts: dict[PlateColour, int] = {}
    for name, (lo, hi) in _COLOUR_RANGES.items():
        inside = np.all((hsv >= lo) & (hsv <= hi), axis=1)
        counts[name] = int(inside.sum())
    name, n = max(counts.items(), key=lambda kv: kv[1])
    if n >= 0.3 * len(hsv):
        return name
    sat_low = hsv[:, 1] < 50
    if sat_low.mean() > 0.6:
        v = float(np.median(hsv[sat_low, 2]))
        return "white" if v > 150 else "black" if v < 70 else None
    return None


def slant(crop: Image) -> float:
    """The horizontal shear (dx per dy) that makes the characters' strokes upright.

    A plate seen from the side is a parallelogram, and straightening its box leaves the
    characters leaning. The shear that makes the column profile of vertical edges the
    most peaked (strokes stacked in few columns) undoes the lean.

    >>> img = np.full((40, 120, 3), 255, np.uint8)
    >>> for x in range(10, 110, 20):
    ...     _ = cv2.line(img, (x, 35), (x + 12, 5), (0, 0, 0), 3)
    >>> round(slant(img), 1)
    0.4
    """
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    edges = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
    h, w = gray.shape
    best, best_score = 0.0, -1.0
    for s in np.linspace(-0.5, 0.5, 21):
        m = np.array([[1, s, -s * h / 2], [0, 1, 0]], dtype=np.float32)
        profile = cv2.warpAffine(edges, m, (w, h)).sum(axis=0)
        score = float((profile**2).sum())
        if score > best_score:
            best, best_score = float(s), score
    return best


def unslant(crop: Image, shear: float) -> Image:
    """The crop with a horizontal shear about its middle row undone."""
    if shear == 0.0:
        return crop
    h, w = crop.shape[:2]
    m = np.array([[1, shear, -shear * h / 2], [0, 1, 0]], dtype=np.float32)
    out = cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out)


def _double_layer_view(crop: Image) -> Image | None:
    h, w = crop.shape[:2]
    # single-layer plates are 440 x 140 mm (3.1:1), double-layer ones 440 x 220 (2:1)
    return join_double_layer(crop) if w / h < 2.6 else None


def join_double_layer(crop: Image) -> Image | None:
    """A two-line plate laid out as one line (upper line, then lower), or None.

    Yellow double-layer plates carry province and issuing letter small on the upper line
    and the serial large below. The rows between the lines are found from the density of
    character pixels; the upper line is scaled to the lower one's height and put first.
    """
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    if h < 16:
        return None
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink: NDArray[np.bool_] = np.asarray(binary) > 0
    core = ink[h // 4 : 3 * h // 4, w // 8 : w - w // 8]
    if core.mean() > 0.5:  # dark characters on a light plate
        ink = ~ink
    rows = ink[:, w // 10 : w - w // 10].mean(axis=1)
    lo, hi = int(h * 0.22), int(h * 0.55)
    if hi <= lo + 1:
        return None
    cut = lo + int(np.argmin(rows[lo:hi]))
    upper, lower = rows[lo // 2 : cut], rows[cut:]
    if len(upper) == 0 or len(lower) == 0:
        return None
    valley = rows[cut]
    if not (valley < 0.35 * float(np.median(lower)) and upper.max() > 2 * valley + 0.05):
        return None
    top, bottom = crop[:cut], crop[cut:]
    cols = ink[:cut].mean(axis=0)
    text_cols = np.flatnonzero(cols > 0.15)
    if len(text_cols) < 2:
        return None
    pad = max(2, (text_cols[-1] - text_cols[0]) // 10)
    top = top[:, max(0, text_cols[0] - pad) : min(w, text_cols[-1] + pad + 1)]
    scale = bottom.shape[0] / top.shape[0]
    upper_line = cv2.resize(top, (max(1, int(top.shape[1] * scale)), bottom.shape[0]))
    return np.ascontiguousarray(np.hstack([upper_line, bottom]))


def _order(points: NDArray[Any]) -> NDArray[np.float32]:
    """Four points clockwise from top-left."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    s = pts.sum(axis=1)
    d = np.diff(pts, axis=1).ravel()
    return np.array(
        [pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]],
        dtype=np.float32,
    )


def _quad_size(quad: NDArray[np.float32]) -> tuple[float, float]:
    w = max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2]))
    h = max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))
    return float(w), float(h)


def _plate_around(
    image: Image, line: NDArray[np.float32], colour: PlateColour
) -> tuple[NDArray[np.float32], Image] | None:
    """The plate of ``colour`` around a text line, as (quad in the image, straightened
    view), or None when no plate-sized region of that colour is there.

    The line is grown along its own axes by as much as a double-layer plate reaches
    beyond either of its lines, and cut to the region of the colour the line stands in.
    """
    q = _order(line)
    down = (q[3] - q[0] + q[2] - q[1]) / 2
    side = _SIDEWAYS * (q[1] - q[0] + q[2] - q[3]) / 2
    grown = np.array(
        [
            q[0] - _ABOVE * down - side,
            q[1] - _ABOVE * down + side,
            q[2] + _BELOW * down + side,
            q[3] + _BELOW * down - side,
        ],
        dtype=np.float32,
    )
    view = _warp(image, grown)
    lo, hi = _COLOUR_RANGES[colour]
    hsv = cv2.cvtColor(view, cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(hsv, np.array(lo, np.uint8), np.array(hi, np.uint8))
    h, w = mask.shape
    # close over the characters, which are not plate-coloured
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, w // 16), max(3, h // 16)))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # the region the line stands in
    centre = (w / 2, h * (_ABOVE + 0.5) / (_ABOVE + 1 + _BELOW))
    inside = [c for c in contours if cv2.pointPolygonTest(c, centre, False) >= 0]
    if not inside:
        return None
    x, y, bw, bh = cv2.boundingRect(inside[0])
    if bh < 16 or not 1.5 <= bw / bh <= 2.6:  # double-layer plates are 440 x 220 mm
        return None
    # the cut, back in the image's coordinates
    rect = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    back = cv2.getPerspectiveTransform(rect, _order(grown))
    corners = np.array([[[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]]], np.float32)
    quad = cv2.perspectiveTransform(corners, back)[0]
    return quad, np.ascontiguousarray(view[y : y + bh, x : x + bw])


def _expand(quad: NDArray[np.float32], fx: float, fy: float) -> NDArray[np.float32]:
    """Grow a quadrilateral by fractions of its width and height along its own axes."""
    q = _order(quad)
    centre = q.mean(axis=0)
    along = (q[1] - q[0] + q[2] - q[3]) / 2
    across = (q[3] - q[0] + q[2] - q[1]) / 2
    signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float32)
    return np.array(
        [centre + sx * along * (0.5 + fx) + sy * across * (0.5 + fy) for sx, sy in signs],
        dtype=np.float32,
    )


def _warp(image: Image, quad: NDArray[np.float32]) -> Image:
    """The quadrilateral straightened into a rectangle (replicating edges outside)."""
    w, h = _quad_size(quad)
    w, h = max(round(w), 16), max(round(h), 8)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(_order(quad), dst)
    out = cv2.warpPerspective(
        image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    return np.ascontiguousarray(out)


def _place(reading: PlateReading, quad: Quad | NDArray[np.float32]) -> PlateReading:
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    box: Quad = (
        (float(q[0, 0]), float(q[0, 1])),
        (float(q[1, 0]), float(q[1, 1])),
        (float(q[2, 0]), float(q[2, 1])),
        (float(q[3, 0]), float(q[3, 1])),
    )
    return replace(reading, box=box)


def _as_bgr(image: NDArray[Any]) -> Image | None:
    """The image as 8-bit BGR (grey and BGRA are converted), or None if it is no image."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        return None
    if image.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    if image.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR))
    if image.shape[2] == 3:
        return image
    return None


def _shift(reading: PlateReading, dx: float, dy: float) -> PlateReading:
    return _place(
        reading, np.asarray(reading.box, dtype=np.float32) + np.array([dx, dy], np.float32)
    )


def _bounds(quad: Quad | NDArray[np.float32]) -> tuple[float, float, float, float]:
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    return float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())


def _areas(
    a: Quad | NDArray[np.float32], b: Quad | NDArray[np.float32]
) -> tuple[float, float, float]:
    """The bounding boxes' intersection and their two areas."""
    ax0, ay0, ax1, ay1 = _bounds(a)
    bx0, by0, bx1, by1 = _bounds(b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    return iw * ih, (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)


def _iou(a: Quad | NDArray[np.float32], b: Quad | NDArray[np.float32]) -> float:
    inter, area_a, area_b = _areas(a, b)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _overlap(a: Quad, b: Quad) -> float:
    """Intersection over the smaller box: one reading nested in another counts as the same."""
    inter, area_a, area_b = _areas(a, b)
    small = min(area_a, area_b)
    return inter / small if small > 0 else 0.0
