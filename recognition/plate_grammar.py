"""Chinese motor-vehicle plate numbers (GA 36, 机动车号牌).

A plate number is a province character (省份简称), the letter of the issuing office
(发牌机关代号) and a serial (序号):

* ordinary plates (blue small cars, yellow large vehicles): 5 letters or digits;
* new-energy plates (green): 6 characters. Small vehicles put D (pure electric) or F (other)
  first, then a letter or digit, then 4 digits; since 2022 A, B, C, E also mark pure electric
  and G, H, J, K other new-energy cars where D and F ran out. Large vehicles use 5 digits
  followed by D or F;
* trailers (挂) and driving-school coaches (学): 4 letters or digits and the character;
* Guangdong cross-border vehicles (粤Z ... 港 / 澳): 4 letters or digits and the character.

The letters I and O are never used. Police (警), embassy (使, 领) and military plates are
outside what a freight lane sees and are not accepted.

The module follows python-stdnum: ``compact`` normalises, ``validate`` raises a precise error,
``is_valid`` answers yes or no. The lane compares plates with ``compact``.

>>> validate('皖A·12345')
'皖A12345'
>>> validate('粤B D12345')
'粤BD12345'
>>> validate('沪A 1234挂')
'沪A1234挂'
>>> validate('皖AI2345')
Traceback (most recent call last):
    ...
recognition.plate_grammar.InvalidComponent: position 3: I is never used on plates
>>> validate('皖A1234')
Traceback (most recent call last):
    ...
recognition.plate_grammar.InvalidLength: a plate has 7 or 8 characters, got 6
>>> format_plate('粤BD12345')
'粤B·D12345'
>>> plate_kind('皖A12345D')
<PlateKind.NEW_ENERGY_LARGE: 'new-energy-large'>
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ALNUM",
    "DIGITS",
    "LETTERS",
    "PROVINCES",
    "SUFFIXES",
    "TEMPLATES",
    "InvalidComponent",
    "InvalidFormat",
    "InvalidLength",
    "PlateError",
    "PlateKind",
    "Template",
    "compact",
    "format_plate",
    "is_valid",
    "plate_kind",
    "validate",
]

# The 31 province-level abbreviations of mainland China, in the order of GA 36's table.
PROVINCES = "京津冀晋蒙辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川贵云藏陕甘青宁新"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # A-Z without I and O
DIGITS = "0123456789"
ALNUM = LETTERS + DIGITS
NEV_SMALL_FIRST = "DABCE" + "FGHJK"  # pure electric, then hybrid / fuel cell
NEV_LARGE_LAST = "DF"
SUFFIXES = "挂学港澳"

# Characters that carry no information: the dot after the issuing letter, spaces, dashes.
SEPARATORS = frozenset(" \t\r\n·・•‧∙.-_")


class PlateError(ValueError):
    """The text is not a plate number; the message says what is wrong."""


class InvalidLength(PlateError):
    """Too few or too many characters."""


class InvalidFormat(PlateError):
    """The characters do not form any plate layout."""


class InvalidComponent(PlateError):
    """One character cannot stand where it stands (unknown province, I or O, ...)."""


class PlateKind(enum.Enum):
    """Plate layouts of GA 36 that a freight lane can meet."""

    ORDINARY = "ordinary"
    NEW_ENERGY_SMALL = "new-energy-small"
    NEW_ENERGY_LARGE = "new-energy-large"
    TRAILER = "trailer"
    COACH = "coach"
    HONG_KONG = "hong-kong"
    MACAU = "macau"


@dataclass(frozen=True)
class Template:
    """One plate layout: the characters allowed at each position."""

    kind: PlateKind
    positions: tuple[frozenset[str], ...]

    def __len__(self) -> int:
        return len(self.positions)

    def matches(self, text: str) -> bool:
        """True when ``text`` (compact) fills this layout exactly."""
        return len(text) == len(self.positions) and all(
            c in allowed for c, allowed in zip(text, self.positions, strict=True)
        )

    def admits_prefix(self, prefix: str) -> bool:
        """True when ``prefix`` can still grow into this layout."""
        return len(prefix) <= len(self.positions) and all(
            c in allowed for c, allowed in zip(prefix, self.positions, strict=False)
        )


def _t(kind: PlateKind, *positions: str) -> Template:
    return Template(kind, tuple(frozenset(p) for p in positions))


# Every layout the decoder may produce. Kept disjoint: no text matches two templates.
TEMPLATES: tuple[Template, ...] = (
    _t(PlateKind.ORDINARY, PROVINCES, LETTERS, *[ALNUM] * 5),
    _t(PlateKind.NEW_ENERGY_SMALL, PROVINCES, LETTERS, NEV_SMALL_FIRST, ALNUM, *[DIGITS] * 4),
    _t(PlateKind.NEW_ENERGY_LARGE, PROVINCES, LETTERS, *[DIGITS] * 5, NEV_LARGE_LAST),
    _t(PlateKind.TRAILER, PROVINCES, LETTERS, *[ALNUM] * 4, "挂"),
    _t(PlateKind.COACH, PROVINCES, LETTERS, *[ALNUM] * 4, "学"),
    _t(PlateKind.HONG_KONG, "粤", "Z", *[ALNUM] * 4, "港"),
    _t(PlateKind.MACAU, "粤", "Z", *[ALNUM] * 4, "澳"),
)


def compact(number: str) -> str:
    """Normalise a plate as read or typed: NFKC, upper case, no spaces, dots or dashes.

    >>> compact(' 皖ａ·１２３４５ ')
    '皖A12345'
    """
    text = unicodedata.normalize("NFKC", number).upper()
    return "".join(c for c in text if c not in SEPARATORS and not c.isspace())


def _first_bad_position(text: str, templates: Sequence[Template]) -> int:
    """The first position at which no template of this length admits the text."""
    for i in range(len(text)):
        if not any(t.admits_prefix(text[: i + 1]) for t in templates):
            return i
    return len(text)


def validate(number: str) -> str:
    """Check a plate number and return it compact, or raise a ``PlateError`` saying why.

    >>> validate('皖AD1234X')
    Traceback (most recent call last):
        ...
    recognition.plate_grammar.InvalidFormat: X at position 8 fits no 8-character plate layout
    >>> validate('港A12345')
    Traceback (most recent call last):
        ...
    recognition.plate_grammar.InvalidComponent: position 1: 港 is not a province character
    """
    text = compact(number)
    if len(text) not in (7, 8):
        raise InvalidLength(f"a plate has 7 or 8 characters, got {len(text)}")
    if any(t.matches(text) for t in TEMPLATES):
        return text
    if text[0] not in PROVINCES:
        raise InvalidComponent(f"position 1: {text[0]} is not a province character")
    if text[1] not in LETTERS:
        raise InvalidComponent(f"position 2: {text[1]} is not an issuing-office letter")
    for i, c in enumerate(text):
        if c in "IO":
            raise InvalidComponent(f"position {i + 1}: {c} is never used on plates")
    same_length = [t for t in TEMPLATES if len(t) == len(text)]
    bad = _first_bad_position(text, same_length)
    raise InvalidFormat(
        f"{text[bad]} at position {bad + 1} fits no {len(text)}-character plate layout"
    )


def is_valid(number: str) -> bool:
    """True when ``number`` is a plate number of one of the accepted layouts.

    >>> is_valid('皖AD12345'), is_valid('皖AX12345'), is_valid('皖A·1234学')
    (True, False, True)
    """
    try:
        validate(number)
    except PlateError:
        return False
    return True


def plate_kind(number: str) -> PlateKind:
    """The layout of a valid plate number; raises ``PlateError`` for an invalid one."""
    text = validate(number)
    return next(t.kind for t in TEMPLATES if t.matches(text))


def format_plate(number: str) -> str:
    """The plate as painted: province and letter, a middle dot, the serial.

    >>> format_plate('皖a 12345')
    '皖A·12345'
    """
    text = validate(number)
    return f"{text[:2]}·{text[2:]}"
