from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.identifiers import (
    IdentifierError,
    age_on,
    birth_date_of,
    id_check_character,
    is_valid_id_number,
    make_id_number,
    normalise_id_number,
    normalise_phone,
)

# The worked example printed in GB 11643-1999 itself, and a second well-known sample.
STANDARD_EXAMPLES = ["11010519491231002X", "440524188001010014"]


@pytest.mark.parametrize("id_number", STANDARD_EXAMPLES)
def test_standard_examples_are_valid(id_number: str) -> None:
    assert id_check_character(id_number[:17]) == id_number[17]
    assert normalise_id_number(id_number.lower()) == id_number


def test_birth_date_and_age() -> None:
    assert birth_date_of("11010519491231002X") == date(1949, 12, 31)
    assert age_on("11010519491231002X", date(2026, 11, 20)) == 76
    assert age_on("11010519491231002X", date(2026, 12, 31)) == 77


def test_rejections_do_not_echo_the_value() -> None:
    for bad in ("11010519491231002Y", "110105194912310021", "1101051949123100", "110105194913310028"):
        with pytest.raises(IdentifierError) as caught:
            normalise_id_number(bad)
        assert bad[:10] not in str(caught.value)


births = st.dates(min_value=date(1920, 1, 1), max_value=date(2025, 12, 31))


@given(born=births, sequence=st.integers(0, 999), division=st.sampled_from(["110101", "110108", "440524"]))
def test_composed_numbers_validate(born: date, sequence: int, division: str) -> None:
    id_number = make_id_number(division, born, sequence)
    assert is_valid_id_number(id_number)
    assert birth_date_of(id_number) == born


@given(born=births, sequence=st.integers(0, 999), position=st.integers(0, 16), delta=st.integers(1, 9))
def test_any_single_digit_error_is_detected(born: date, sequence: int, position: int, delta: int) -> None:
    # ISO 7064 MOD 11-2 detects every single-digit substitution; that is why the checksum is worth checking.
    id_number = make_id_number("110105", born, sequence)
    digit = (int(id_number[position]) + delta) % 10
    altered = id_number[:position] + str(digit) + id_number[position + 1 :]
    assert id_check_character(altered[:17]) != altered[17]


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("138 1234 5678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("0086 13812345678", "13812345678"),
        ("010-6512 3456", "01065123456"),
    ],
)
def test_phone_normal_form(raw: str, normal: str) -> None:
    assert normalise_phone(raw) == normal


def test_phone_rejects_nonsense() -> None:
    with pytest.raises(IdentifierError):
        normalise_phone("12345")
