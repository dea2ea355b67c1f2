"""The mapper's fast paths give exactly what the general conversions give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.mapping import _text, _zone, iso_time, offset_text, parse_time

ZONE = _zone("+08:00")


@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
    separator=st.sampled_from(["T", " "]),
)
def test_iso_time_equals_parsing_then_formatting(moment: datetime, minutes: int, separator: str) -> None:
    zone = timezone(timedelta(minutes=minutes))
    for text in (
        moment.replace(tzinfo=zone).isoformat(sep=separator, timespec="seconds"),
        moment.isoformat(sep=separator),
        moment.isoformat(sep=separator, timespec="seconds"),  # as SQL and CSV exports write times
        moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
    ):
        assert iso_time(text, ZONE) == parse_time(text, ZONE).isoformat()
        assert iso_time(text, zone, offset_text(zone)) == parse_time(text, zone).isoformat()


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T07:00:00+08:00",
        "2026-11-13T25:00:00+08:00",
        "2026-11-13T07:00:00+8:000",
        "2026-02-30 07:00:00",
        "2026-11-13 24:00:00",
        "2026-11-13 07:6a:00",
        "２026-11-13 07:00:00",
        "not a time",
    ],
)
def test_iso_time_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError):
        iso_time(text, ZONE)


def test_iso_time_rebuilds_other_iso_forms() -> None:
    assert iso_time("2026-W46-5T07:00:00+08:00", ZONE) == "2026-11-13T07:00:00+08:00"
    assert iso_time("2026-11-13T07:00:00-00:00", ZONE) == "2026-11-13T07:00:00+00:00"


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, None), ("", None), ("  ", None), (" a ", "a"), (0, "0"), (7, "7")]
)
def test_plain_text_is_stripped_and_empty_is_absent(raw: object, expected: str | None) -> None:
    assert _text(raw) == expected


def test_integers_are_refused_outside_64_bits_as_the_bus_and_store_hold_them() -> None:
    from connectors.config import load_connectors
    from connectors.mapping import Mapper, RecordRejected
    from hub.catalog import FieldType, load_catalog

    catalog = load_catalog()
    config = load_connectors(catalog)["civil_affairs.access_event"]
    dataset = catalog.dataset(config.dataset)
    fields = tuple(f.model_copy(update={"type": FieldType.INTEGER}) if f.name == "gate" else f for f in dataset.fields)
    mapper = Mapper(config, dataset.model_copy(update={"fields": fields}))
    row = {
        "event_id": "e1",
        "card_holder_id": "11010519491231002X",
        "ts": "2026-11-13 07:00:00",
        "dir": "in",
        "community": "c1",
    }
    for gate in (2**63 - 1, -(2**63), " 42 "):
        assert mapper.map({**row, "gate": gate}).values["gate"] == int(gate)
    for gate in (2**63, -(2**63) - 1, 123456789012345678901234567890):
        with pytest.raises(
            RecordRejected, match=r"civil_affairs\.access_event\.gate: integer outside the 64-bit range"
        ):
            mapper.map({**row, "gate": gate})
