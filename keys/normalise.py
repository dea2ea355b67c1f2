"""Canonical forms of identifiers before they are blind-indexed.

An index is only useful if every agency's spelling of a number maps to the same bytes; these are
the only canonical forms in the code base (``hub.identifiers`` validates on top of them).
"""

from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"\D")


def canonical_id_number(value: str) -> str:
    """No white space, upper-case check character ``X``."""
    return "".join(value.split()).upper()


def canonical_phone(value: str) -> str:
    """Digits only, without a +86 / 0086 country prefix."""
    digits = _NON_DIGITS.sub("", value)
    if digits.startswith("0086"):
        return digits[4:]
    if digits.startswith("86") and len(digits) == 13:
        return digits[2:]
    return digits


def canonical_text(value: str) -> str:
    """Names and other text: Unicode white space folded away."""
    return "".join(value.split())


CANONICAL_FORMS = {
    "id_number": canonical_id_number,
    "phone": canonical_phone,
    "text": canonical_text,
}
