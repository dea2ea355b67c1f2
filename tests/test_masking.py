"""Display masks: the documented shapes, and properties that hold for any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.masking import Masker, MaskType

MASKER = Masker(b"k" * 32)


@pytest.mark.parametrize(
    ("mask", "value", "shown"),
    [
        (MaskType.MASK_ID, "11010119900307123X", "110101********123X"),
        (MaskType.MASK_PHONE, "13812345678", "138****5678"),
        (MaskType.MASK_NAME, "张三", "张*"),
        (MaskType.MASK_NAME, "欧阳修远", "欧***"),
        (MaskType.ADDRESS_TO_DISTRICT, "北京市朝阳区团结湖东里3号楼2单元1201室", "北京市朝阳区"),
        (MaskType.SHOW_LAST_4, "6222123412341234", "************1234"),
        (MaskType.SHOW_FIRST_4, "6222123412341234", "6222************"),
        (MaskType.DATE_SHOW_YEAR, "2026-11-20T08:00:00+08:00", "2026"),
        (MaskType.REDACT, "原发性高血压 I10", "****** Xnn"),
        (MaskType.NULLIFY, "anything", None),
        (MaskType.NONE, "fraud", "fraud"),
    ],
)
def test_documented_shapes(mask: MaskType, value: str, shown: str | None) -> None:
    assert MASKER.mask(mask, value) == shown


def test_lists_are_masked_element_by_element() -> None:
    assert MASKER.mask(MaskType.MASK_ID, ["11010119900307123X", "440524188001010014"]) == [
        "110101********123X",
        "440524********0014",
    ]


def test_hash_is_keyed_and_stable() -> None:
    assert MASKER.mask(MaskType.HASH, "x") == MASKER.mask(MaskType.HASH, "x")
    assert MASKER.mask(MaskType.HASH, "x") != Masker(b"j" * 32).mask(MaskType.HASH, "x")


ids = st.from_regex(r"[1-6]\d{16}[\dX]", fullmatch=True)
phones = st.from_regex(r"1[3-9]\d{9}", fullmatch=True)


@given(ids)
def test_mask_id_keeps_only_region_and_last_four(value: str) -> None:
    shown = MASKER.mask(MaskType.MASK_ID, value)
    assert len(shown) == len(value) and shown[:6] == value[:6] and shown[-4:] == value[-4:]
    assert set(shown[6:-4]) == {"*"}  # the birth date never shows


@given(phones)
def test_mask_phone_hides_the_middle(value: str) -> None:
    shown = MASKER.mask(MaskType.MASK_PHONE, value)
    assert shown == value[:3] + "****" + value[-4:]


@given(st.text(min_size=2, max_size=8).filter(lambda s: s.strip() == s and " " not in s))
def test_mask_name_keeps_only_the_first_character(value: str) -> None:
    shown = MASKER.mask(MaskType.MASK_NAME, value)
    assert shown[0] == value[0] and set(shown[1:]) == {"*"} and len(shown) == len(value)


@given(st.text(max_size=60))
def test_redact_preserves_length_and_reveals_no_letter_or_digit(value: str) -> None:
    shown = MASKER.mask(MaskType.REDACT, value)
    assert len(shown) == len(value)
    assert all(c in "xXn*" or c.isspace() for c in shown)


@given(st.sampled_from(list(MaskType)), st.one_of(st.text(max_size=40), st.integers(), st.none()))
def test_every_mask_is_total(mask: MaskType, value: object) -> None:
    MASKER.mask(mask, value)  # never raises, whatever the input


@given(st.sampled_from([m for m in MaskType if m not in (MaskType.NONE,)]), st.text(min_size=12, max_size=40))
def test_no_mask_returns_a_long_value_unchanged(mask: MaskType, value: str) -> None:
    assert MASKER.mask(mask, value) != value or set(value) <= set("xXn* \t\n*")
