"""Chinese personal identifiers: resident ID numbers (GB 11643-1999) and mobile phone numbers.

One normal form per identifier matters beyond tidiness: blind indexes are computed on the normal
form, so two agencies writing the same number differently must still produce the same index.
"""

from __future__ import annotations

import operator
import re
from datetime import date
from functools import lru_cache

from keys.normalise import canonical_id_number, canonical_phone

# ISO 7064 MOD 11-2 weights for the first 17 digits, and the check character for each remainder.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_WEIGHT_SUM = sum(_WEIGHTS)
_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class IdentifierError(ValueError):
    """A value is not a well-formed identifier. The message never repeats the value itself."""


def id_check_character(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of an ID number."""
    if len(first17) != 17 or not first17.isdigit():
        raise IdentifierError("an ID number body is 17 digits")
    digits = first17.encode("ascii")
    total = sum(map(operator.mul, digits, _WEIGHTS)) - 48 * _WEIGHT_SUM  # b"0" is 48
    return _CHECK[total % 11]


@lru_cache(maxsize=131072)
def normalise_id_number(value: str) -> str:
    """Strip spaces, upper-case a trailing x, and check shape, checksum and birth date.

    Memoised (bounded): ingestion meets the same residents' numbers again and again.
    """
    candidate = canonical_id_number(value)
    if not _ID_SHAPE.match(candidate):
        raise IdentifierError("ID number must be 17 digits followed by a digit or X")
    if id_check_character(candidate[:17]) != candidate[17]:
        raise IdentifierError("ID number check character does not match (GB 11643)")
    birth_date_of(candidate)
    return candidate


def is_valid_id_number(value: str) -> bool:
    try:
        normalise_id_number(value)
    except IdentifierError:
        return False
    return True


def birth_date_of(id_number: str) -> date:
    """The birth date encoded in positions 7-14 of an ID number."""
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        raise IdentifierError("ID number encodes no valid birth date") from None


def age_on(id_number: str, day: date) -> int:
    born = birth_date_of(id_number)
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def make_id_number(division: str, born: date, sequence: int) -> str:
    """Compose a valid ID number; ``sequence`` is 0-999, odd for men and even for women."""
    if len(division) != 6 or not division.isdigit():
        raise IdentifierError("division code is 6 digits")
    if not 0 <= sequence <= 999:
        raise IdentifierError("sequence is 0-999")
    body = f"{division}{born:%Y%m%d}{sequence:03d}"
    return body + id_check_character(body)


def normalise_phone(value: str) -> str:
    """Digits only, without the +86 / 0086 country prefix; mobile numbers must be 11 digits."""
    digits = canonical_phone(value)
    if not _MOBILE.match(digits) and not (7 <= len(digits) <= 12 and digits.startswith("0")):
        raise IdentifierError("phone must be an 11-digit mobile number or a landline with area code")
    return digits
