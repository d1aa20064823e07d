"""Text normalisation applied before any comparison of plates and container numbers."""

from __future__ import annotations

import unicodedata

from recognition import iso6346, plate_grammar


def plate(text: str) -> str:
    """Compact a plate: NFKC (full-width forms), upper case, no spaces, dots or dashes.

    >>> plate(" 沪A·12345 ")
    '沪A12345'
    >>> plate("ｓｕ Ａ１２３４５")
    'SUA12345'
    """
    return plate_grammar.compact(text)


def container(text: str) -> str:
    """Compact a container number (full-width forms folded, owner/serial/check joined).

    >>> container("MSCU 123456-5")
    'MSCU1234565'
    >>> container("ＭＳＣＵ１２３４５６５")
    'MSCU1234565'
    """
    return iso6346.compact(unicodedata.normalize("NFKC", text))
