"""ISO 6346 (freight container identification).

A container number has an owner code of three capital letters, an equipment category
identifier (U for freight containers, J for detachable equipment, Z for trailers and
chassis), a six-digit serial number and a check digit. The check digit is the sum of the
ten character values, each weighted by 2**position, modulo 11; a remainder of 10 is
written as 0. Letters count from A=10 upwards, skipping the multiples of 11.

More information:

* https://en.wikipedia.org/wiki/ISO_6346
* https://www.bic-code.org/check-digit-calculator/

>>> validate('csqu3054383')
'CSQU3054383'
>>> validate('CSQU 305438 3')
'CSQU3054383'
>>> validate('CSQU3054384')
Traceback (most recent call last):
    ...
recognition.iso6346.InvalidChecksum: check digit 4 does not match the computed 3
>>> validate('TBJA7176445')
Traceback (most recent call last):
    ...
recognition.iso6346.InvalidFormat: category identifier must be U, J or Z, not 'A'
>>> is_valid('FCIU8384900')  # remainder 10 is written as 0
True
>>> calc_check_digit('MSKU386603')
'6'
>>> format('msku3866036')
'MSKU 386603 6'
"""

from __future__ import annotations

import re

__all__ = [
    "CATEGORIES",
    "InvalidChecksum",
    "InvalidFormat",
    "InvalidLength",
    "ValidationError",
    "calc_check_digit",
    "char_value",
    "compact",
    "format",
    "is_valid",
    "validate",
]

CATEGORIES = "UJZ"

# Letter values run from A=10 and skip 11, 22 and 33 (the multiples of 11), so that a
# letter never has the same value modulo 11 as another character in the same position.
_ALPHABET = "0123456789A BCDEFGHIJK LMNOPQRSTU VWXYZ"

_OWNER = re.compile(r"[A-Z]{3}")
_SERIAL = re.compile(r"[0-9]{6}")


class ValidationError(ValueError):
    """The number is not a valid ISO 6346 container number."""


class InvalidLength(ValidationError):
    """The number does not have 11 characters."""


class InvalidFormat(ValidationError):
    """A character is not of the kind its position requires."""


class InvalidChecksum(ValidationError):
    """The check digit does not match the owner code, category and serial number."""


def compact(number: str) -> str:
    """Convert the number to its minimal form: upper case, no spaces or dashes.

    >>> compact(' tcnu-720079 4 ')
    'TCNU7200794'
    """
    return "".join(number.split()).replace("-", "").upper()


def char_value(char: str) -> int:
    """The value of one character in the check digit sum (A=10, B=12, ..., Z=38).

    >>> char_value('A'), char_value('K'), char_value('L'), char_value('Z')
    (10, 21, 23, 38)
    """
    value = _ALPHABET.find(char)
    if value < 0 or char == " ":
        raise InvalidFormat(f"{char!r} is not a capital letter or digit")
    return value


def calc_check_digit(number: str) -> str:
    """Calculate the check digit for the first ten characters of a container number.

    >>> calc_check_digit('CSQU305438')
    '3'
    >>> calc_check_digit('FCIU838490')  # remainder 10
    '0'
    """
    number = compact(number)[:10]
    total = sum(char_value(c) << i for i, c in enumerate(number))
    return str(total % 11 % 10)


def validate(number: str) -> str:
    """Check the number and return it compacted; raise a ValidationError subclass if not.

    >>> validate('CSQU305438')
    Traceback (most recent call last):
        ...
    recognition.iso6346.InvalidLength: a container number has 11 characters, not 10
    >>> validate('CSQU3054Z83')
    Traceback (most recent call last):
        ...
    recognition.iso6346.InvalidFormat: serial number must be six digits, not '3054Z8'
    """
    number = compact(number)
    if len(number) != 11:
        raise InvalidLength(f"a container number has 11 characters, not {len(number)}")
    owner, category, serial, check = number[:3], number[3], number[4:10], number[10]
    if not _OWNER.fullmatch(owner):
        raise InvalidFormat(f"owner code must be three letters A-Z, not {owner!r}")
    if category not in CATEGORIES:
        raise InvalidFormat(f"category identifier must be U, J or Z, not {category!r}")
    if not _SERIAL.fullmatch(serial):
        raise InvalidFormat(f"serial number must be six digits, not {serial!r}")
    if not check.isdigit() or not check.isascii():
        raise InvalidFormat(f"check digit must be a digit, not {check!r}")
    expected = calc_check_digit(number)
    if check != expected:
        raise InvalidChecksum(f"check digit {check} does not match the computed {expected}")
    return number


def is_valid(number: str) -> bool:
    """Tell whether the number is a valid container number.

    >>> is_valid('MSKU3866036'), is_valid('MSKU3866037'), is_valid('MSKU386603')
    (True, False, False)
    """
    try:
        return bool(validate(number))
    except ValidationError:
        return False


def format(number: str) -> str:  # python-stdnum names it so, shadowing the builtin here
    """Reformat the number the way it is painted: owner and category, serial, check digit.

    >>> format('TEMU5660532')
    'TEMU 566053 2'
    """
    number = compact(number)
    return f"{number[:4]} {number[4:10]} {number[10:]}".strip()
