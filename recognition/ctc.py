"""CTC decoding restricted to a grammar of fixed-length layouts.

A CTC recogniser gives, for each time step (a narrow column of the text line), a probability
for every character of its alphabet and for the blank. Greedy decoding takes the best class
at each step; it drops a character whose glyph the model finds unclear (the tiny province
character of a plate) and happily produces texts no plate can have. A prefix beam search
that only extends a prefix by characters the layout allows at that position, and only keeps
prefixes that can still become a whole plate in the time steps left, returns the most
probable texts that *are* plates, summed over all their alignments.

Pure numpy and Python: probabilities in, ranked hypotheses out; no model, no I/O.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Hypothesis",
    "TemplateAutomaton",
    "column_groups",
    "ctc_align",
    "ctc_log_likelihood",
    "fold",
    "prefix_beam_search",
]

Probs = NDArray[np.floating[Any]]


class TemplateAutomaton:
    """Prefix automaton over layouts given as the allowed characters at each position.

    A state is the number of characters read and the set of layouts still possible (a
    bit mask). ``allowed(state)`` maps each character that may come next to the next state.
    """

    def __init__(self, templates: Sequence[Sequence[frozenset[str]]]) -> None:
        if not templates or any(len(t) == 0 for t in templates):
            raise ValueError("need at least one non-empty layout")
        self.templates = tuple(tuple(t) for t in templates)
        self.start: tuple[int, int] = (0, (1 << len(self.templates)) - 1)
        self._next: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}
        self._need: dict[tuple[int, int], int] = {}
        self.alphabet = frozenset(c for t in self.templates for p in t for c in p)

    def _alive(self, mask: int) -> list[int]:
        return [i for i in range(len(self.templates)) if mask >> i & 1]

    def allowed(self, state: tuple[int, int]) -> dict[str, tuple[int, int]]:
        """Characters that may follow, each with the state it leads to."""
        cached = self._next.get(state)
        if cached is not None:
            return cached
        pos, mask = state
        out: dict[str, int] = {}
        for i in self._alive(mask):
            t = self.templates[i]
            if pos < len(t):
                for c in t[pos]:
                    out[c] = out.get(c, 0) | (1 << i)
        result = {c: (pos + 1, m) for c, m in out.items()}
        self._next[state] = result
        return result

    def is_final(self, state: tuple[int, int]) -> bool:
        """True when the characters read so far fill a whole layout."""
        pos, mask = state
        return any(len(self.templates[i]) == pos for i in self._alive(mask))

    def min_remaining(self, state: tuple[int, int]) -> int:
        """Fewest characters still needed to complete some layout."""
        need = self._need.get(state)
        if need is None:
            pos, mask = state
            need = min((len(self.templates[i]) - pos for i in self._alive(mask)), default=0)
            self._need[state] = need
        return need


@dataclass(frozen=True)
class Hypothesis:
    """A complete text the grammar accepts, with its CTC log-probability."""

    text: str
    log_prob: float


def column_groups(
    alphabet: Sequence[str],
    chars: Iterable[str],
    *,
    canonical: Callable[[str], str] = lambda c: c,
    blank_like: str = "",
) -> list[NDArray[np.intp]]:
    """Which model classes make up the blank and each of ``chars`` (see ``fold``).

    A model class whose ``canonical`` form is one of ``chars`` counts for it (a read "O"
    where only digits may stand is the digit 0); classes in ``blank_like`` (separators
    the grammar ignores) count as blank. Column 0 of the alphabet is the blank.
    """
    wanted = list(chars)
    col = {c: j + 1 for j, c in enumerate(wanted)}
    groups: list[list[int]] = [[0]] + [[] for _ in wanted]
    for i, a in enumerate(alphabet):
        if i == 0:
            continue
        if a and a in blank_like:
            groups[0].append(i)
            continue
        j = col.get(canonical(a))
        if j is not None:
            groups[j].append(i)
    missing = [c for c, g in zip(wanted, groups[1:], strict=True) if not g]
    if missing:
        raise ValueError(f"characters not in the model's alphabet: {''.join(missing)}")
    return [np.array(g, dtype=np.intp) for g in groups]


def fold(probs: Probs, groups: Sequence[NDArray[np.intp]]) -> NDArray[np.float64]:
    """Reduce T x C model output to one column per group of classes (summed).

    >>> p = np.array([[0.5, 0.25, 0.25]], dtype=np.float32)
    >>> groups = column_groups(["blank", "O", "0"], ["0"], canonical=lambda c: c.replace("O", "0"))
    >>> fold(p, groups)
    array([[0.5, 0.5]])
    """
    src = probs.astype(np.float64)
    return np.stack(
        [src[:, g[0]] if len(g) == 1 else src[:, g].sum(axis=1) for g in groups], axis=1
    )


def prefix_beam_search(
    probs: Probs,
    chars: Sequence[str],
    automaton: TemplateAutomaton,
    *,
    beam_width: int = 8,
    top_chars: int = 4,
    floor: float = 1e-7,
    relative: float = 1e-2,
) -> list[Hypothesis]:
    """The most probable complete texts, best first (empty when none fits in time).

    ``probs`` is T x (1 + K): column 0 the blank, column ``j + 1`` the character
    ``chars[j]`` (see ``fold``). Beams are pruned to ``beam_width`` *per prefix
    length*: a prefix that has yet to spend a step on an unclear character is always less
    probable than a shorter one, and pruning across lengths would lose every complete
    text. At each step a beam tries the ``top_chars`` most probable characters its position
    allows (down to ``relative`` times the best of them), and drops a prefix that can no
    longer be completed in the steps left.
    """
    if probs.ndim != 2 or probs.shape[1] != len(chars) + 1:
        raise ValueError("probs must be T x (1 + len(chars))")
    missing = automaton.alphabet - set(chars)
    if missing:
        raise ValueError(f"no column for: {''.join(sorted(missing))}")
    # Steps at either end where nothing but blank is likely (the padding of a short line)
    # change no ranking: leave them out.
    busy = np.flatnonzero(probs[:, 1:].max(axis=1) > 1e-3)
    if len(busy) == 0:
        return []
    probs = probs[max(0, busy[0] - 1) : busy[-1] + 2]
    sub = probs[:, 1:].astype(np.float64)
    blank = probs[:, 0].astype(np.float64)
    col_of = {c: j for j, c in enumerate(chars)}
    n_steps = probs.shape[0]

    # Per state: the columns and characters it allows, in the automaton's order.
    choices: dict[tuple[int, int], tuple[NDArray[np.intp], list[str]]] = {}
    # Top candidates per step and state, computed once.
    top_cache: dict[tuple[int, tuple[int, int]], list[str]] = {}

    def candidates(t: int, state: tuple[int, int]) -> list[str]:
        key = (t, state)
        got = top_cache.get(key)
        if got is None:
            allowed = choices.get(state)
            if allowed is None:
                names = list(automaton.allowed(state))
                allowed = choices[state] = (np.array([col_of[c] for c in names]), names)
            js, names = allowed
            ps = sub[t, js]
            order = np.argsort(-ps)[:top_chars]
            least = max(floor, float(ps[order[0]]) * relative)
            got = [names[k] for k in order if ps[k] >= least]
            top_cache[key] = got
        return got

    # a beam: [state, p_blank, p_char], the prefix's probability with its last step a
    # blank and with its last step its last character (both scaled)
    beams: dict[str, list[Any]] = {"": [automaton.start, 1.0, 0.0]}
    log_scale = 0.0
    for t in range(n_steps):
        remaining = n_steps - t - 1  # steps after this one
        nxt: dict[str, list[Any]] = {}
        # Python floats: the same double arithmetic as numpy's, without its scalar overhead
        pblank = float(blank[t])
        row = sub[t].tolist()
        for prefix, (state, p_blank, p_char) in beams.items():
            total = p_blank + p_char
            # stay on the same prefix: a blank, or the last character repeated
            stay_char = p_char * row[col_of[prefix[-1]]] if prefix else 0.0
            b = nxt.get(prefix)
            if b is None:
                nxt[prefix] = [state, total * pblank, stay_char]
            else:
                b[1] += total * pblank
                b[2] += stay_char
            allowed = automaton.allowed(state)
            if not allowed:
                continue
            for c in candidates(t, state):
                to = allowed[c]
                if automaton.min_remaining(to) > remaining:
                    continue  # cannot finish in the steps left
                # a repeated character needs a blank between its two copies
                p = (p_blank if prefix and prefix[-1] == c else total) * row[col_of[c]]
                longer = prefix + c
                b = nxt.get(longer)
                if b is None:
                    nxt[longer] = [to, 0.0, p]
                else:
                    b[2] += p

        # prune per prefix length, keep probabilities in range
        by_len: dict[int, list[tuple[float, str, list[Any]]]] = {}
        for prefix, b in nxt.items():
            by_len.setdefault(len(prefix), []).append((b[1] + b[2], prefix, b))
        beams = {}
        top = 0.0
        for group in by_len.values():
            kept = (
                heapq.nlargest(beam_width, group, key=itemgetter(0))
                if len(group) > beam_width
                else group
            )
            for total, prefix, b in kept:
                beams[prefix] = b
                top = max(top, total)
        if top <= 0.0:
            return []
        for b in beams.values():
            b[1] /= top
            b[2] /= top
        log_scale += math.log(top)

    done = [
        Hypothesis(p, math.log(b[1] + b[2]) + log_scale)
        for p, b in beams.items()
        if automaton.is_final(b[0]) and b[1] + b[2] > 0.0
    ]
    done.sort(key=lambda h: h.log_prob, reverse=True)
    return done


def _extended(label: Sequence[int]) -> tuple[list[int], NDArray[np.bool_]]:
    """CTC's states for ``label``: blank, label, blank, ..., blank; and which states may
    skip the blank before them (those whose label differs from the one two back)."""
    ext = [0]
    for k in label:
        ext += [int(k), 0]
    ext_a = np.array(ext)
    skip = np.zeros(len(ext), dtype=bool)
    skip[2:] = (ext_a[2:] != 0) & (ext_a[2:] != ext_a[:-2])
    return ext, skip


def ctc_log_likelihood(probs: Probs | NDArray[np.float64], label: Sequence[int]) -> float:
    """log P(label | probs) summed over all CTC alignments (column 0 the blank).

    >>> p = np.array([[0.1, 0.9], [0.9, 0.1]], dtype=np.float32)
    >>> round(math.exp(ctc_log_likelihood(p, [1])), 4)  # "1" = 1- or -1 or 11... of 2 steps
    0.91
    """
    ext, skip = _extended(label)
    n = len(ext)
    p = probs[:, ext].astype(np.float64)
    alpha = np.zeros(n)
    alpha[0] = p[0, 0]
    if n > 1:
        alpha[1] = p[0, 1]
    log_scale = 0.0
    for t in range(1, p.shape[0]):
        new = alpha.copy()
        new[1:] += alpha[:-1]
        new[2:] += np.where(skip[2:], alpha[:-2], 0.0)
        new *= p[t]
        top = new.max()
        if top <= 0.0:
            return -math.inf
        alpha = new / top
        log_scale += math.log(top)
    total = alpha[-1] + (alpha[-2] if n > 1 else 0.0)
    return math.log(total) + log_scale if total > 0 else -math.inf


def ctc_align(probs: Probs, label: Sequence[int]) -> list[tuple[int, int]]:
    """The most probable alignment of ``label``: each label's first and last time step.

    ``probs`` is T x C with column 0 the blank; the label must fit (len(label) <= T, with room
    for the blanks between repeated labels).

    >>> p = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    >>> ctc_align(p, [1, 2])
    [(1, 2), (3, 3)]
    """
    ext, skip = _extended(label)
    n, steps = len(ext), probs.shape[0]
    lp = np.log(np.maximum(probs[:, ext].astype(np.float64), 1e-30))
    score = np.full(n, -np.inf)
    score[0] = lp[0, 0]
    if n > 1:
        score[1] = lp[0, 1]
    back = np.zeros((steps, n), dtype=np.intp)
    idx = np.arange(n)
    for t in range(1, steps):
        stay = score
        step1 = np.concatenate(([-np.inf], score[:-1]))
        step2 = np.where(skip, np.concatenate(([-np.inf, -np.inf], score[:-2])), -np.inf)
        choices = np.stack([stay, step1, step2])
        best = choices.argmax(axis=0)
        back[t] = idx - best
        score = choices[best, idx] + lp[t]
    s = n - 1 if n < 2 or score[n - 1] >= score[n - 2] else n - 2
    spans: dict[int, tuple[int, int]] = {}
    for t in range(steps - 1, -1, -1):
        if s % 2 == 1:
            k = s // 2
            first, last = spans.get(k, (t, t))
            spans[k] = (min(first, t), max(last, t))
        s = int(back[t, s])
    return [spans.get(k, (0, 0)) for k in range(len(label))]
