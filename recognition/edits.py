"""How far apart two readings of the same text are."""

from __future__ import annotations

__all__ = ["edit_distance"]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: a character read wrong, dropped or added counts one.

    A reading whose window slipped by one place (its first character lost, a stray one
    read further on) is two edits from the text, where position by position it differs
    almost everywhere.

    >>> edit_distance("CSNU874259", "SNUJ874259")
    2
    >>> edit_distance("MSKU386603", "MSKU380603")
    1
    """
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]
