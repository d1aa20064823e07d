"""Text normalisation applied before any comparison of plates and container numbers."""

from __future__ import annotations

import unicodedata

_DROP = str.maketrans("", "", " \t·•-_.")


def plate(text: str) -> str:
    """Compact a plate: NFKC (full-width forms), upper case, no spaces, dots or dashes.

    >>> plate(" 沪A·12345 ")
    '沪A12345'
    >>> plate("ｓｕ Ａ１２３４５")
    'SUA12345'
    """
    return unicodedata.normalize("NFKC", text).upper().translate(_DROP)


def container(text: str) -> str:
    """Compact a container number the same way (owner, serial and check digit joined).

    >>> container("MSCU 123456-5")
    'MSCU1234565'
    """
    return unicodedata.normalize("NFKC", text).upper().translate(_DROP)
