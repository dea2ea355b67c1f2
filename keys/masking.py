"""Display masks, in the spirit of GB/T 35273 de-identification and Apache Ranger's mask types.

A mask turns a decrypted value into what an officer may see without full need-to-know. Masks work
on text (lists element by element) and are total: any input gives an output, never an exception
that could echo the value. ``HASH`` is keyed (HMAC), because an unkeyed hash of an 18-digit ID
number is reversed by enumerating birth dates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from keys.suites import Suite, mac

_DISTRICT = re.compile(r"^(.*?(?:市|省|自治区).*?(?:区|县|旗|市))")
_DATE_YEAR = re.compile(r"^\s*(\d{4})")


class MaskType(StrEnum):
    MASK_ID = "MASK_ID"  # 110101********123X: region and last four kept
    MASK_PHONE = "MASK_PHONE"  # 138****5678
    MASK_NAME = "MASK_NAME"  # 张*: surname kept
    ADDRESS_TO_DISTRICT = "ADDRESS_TO_DISTRICT"  # 北京市朝阳区
    SHOW_LAST_4 = "SHOW_LAST_4"
    SHOW_FIRST_4 = "SHOW_FIRST_4"
    HASH = "HASH"  # keyed, truncated, stable: lets a reader see two values are equal, nothing more
    NULLIFY = "NULLIFY"
    DATE_SHOW_YEAR = "DATE_SHOW_YEAR"
    REDACT = "REDACT"  # Ranger style: letters -> x, digits -> n, other characters -> *
    NONE = "NONE"  # unmasked; the catalog allows it only on non-personal fields


def _stars(count: int) -> str:
    return "*" * max(count, 0)


def mask_id(value: str) -> str:
    if len(value) <= 10:
        return _stars(len(value))
    return value[:6] + _stars(len(value) - 10) + value[-4:]


def mask_phone(value: str) -> str:
    if len(value) < 8:
        return _stars(len(value))
    return value[:3] + _stars(len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    return value[0] + _stars(max(len(value) - 1, 1))


def address_to_district(value: str) -> str:
    match = _DISTRICT.match(value)
    return match.group(1) if match else "*"


def show_last_4(value: str) -> str:
    return _stars(len(value) - 4) + value[-4:] if len(value) > 4 else _stars(len(value))


def show_first_4(value: str) -> str:
    return value[:4] + _stars(len(value) - 4) if len(value) > 4 else _stars(len(value))


def date_show_year(value: str) -> str:
    match = _DATE_YEAR.match(value)
    return match.group(1) if match else "*"


def redact(value: str) -> str:
    out = []
    for ch in value:
        if ch.isascii() and ch.isalpha():
            out.append("X" if ch.isupper() else "x")
        elif ch.isascii() and ch.isdigit():
            out.append("n")
        elif ch.isspace():
            out.append(ch)
        else:
            out.append("*")
    return "".join(out)


_TEXT_MASKS: dict[MaskType, Callable[[str], str]] = {
    MaskType.MASK_ID: mask_id,
    MaskType.MASK_PHONE: mask_phone,
    MaskType.MASK_NAME: mask_name,
    MaskType.ADDRESS_TO_DISTRICT: address_to_district,
    MaskType.SHOW_LAST_4: show_last_4,
    MaskType.SHOW_FIRST_4: show_first_4,
    MaskType.DATE_SHOW_YEAR: date_show_year,
    MaskType.REDACT: redact,
}


class Masker:
    """Applies masks; holds the key for ``HASH``."""

    def __init__(self, hash_key: bytes, suite: Suite = Suite.AES_256_GCM) -> None:
        self._hash_key = hash_key
        self._suite = suite

    def __repr__(self) -> str:
        return "Masker(<hash key hidden>)"

    def mask(self, mask: MaskType, value: Any) -> Any:
        if value is None or mask is MaskType.NULLIFY:
            return None
        if isinstance(value, list | tuple):
            return [self.mask(mask, item) for item in value]
        if mask is MaskType.NONE:
            return value
        text = value if isinstance(value, str) else str(value)
        if mask is MaskType.HASH:
            return "h:" + mac(self._suite, self._hash_key, text.encode("utf-8")).hex()[:16]
        return _TEXT_MASKS[mask](text)
