"""Planting dirty records on purpose, and remembering where, so tests can expect each one."""

from __future__ import annotations

import random
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hub.identifiers import id_check_character


class DirtKind(StrEnum):
    BAD_CHECKSUM = "bad_checksum"  # subject ID number with a wrong GB 11643 check character
    MISSING_SUBJECT = "missing_subject"  # no subject ID at all
    BAD_TIME = "bad_time"  # a timestamp that does not parse


@dataclass
class DirtLedger:
    """Decides which records get dirty and records (source, position, kind): no personal data."""

    rng: random.Random
    rate: float
    entries: list[dict[str, str]] = field(default_factory=list)
    seen: int = 0

    # A small source would often get no dirty record by chance; the error paths must always be exercised.
    FORCE_AT = 7

    def pick(self, source: str, position: str, kinds: tuple[DirtKind, ...]) -> DirtKind | None:
        self.seen += 1
        forced = self.rate > 0 and not self.entries and self.seen == self.FORCE_AT
        if self.rng.random() >= self.rate and not forced:
            return None
        kind = self.rng.choice(kinds)
        self.entries.append({"source": source, "position": position, "reason": kind.value})
        return kind

    def spoil(
        self,
        row: MutableMapping[str, Any],
        *,
        source: str,
        position: str,
        subject_field: str,
        time_field: str | None = None,
        bad_time: str = "2026-13-45 25:61:00",
        missing: Any = None,
        drop_missing: bool = False,
    ) -> None:
        """Maybe make ``row`` dirty in place: a broken or missing subject ID, or a bad time."""
        kinds = tuple(DirtKind) if time_field else (DirtKind.BAD_CHECKSUM, DirtKind.MISSING_SUBJECT)
        flaw = self.pick(source, position, kinds)
        if flaw is DirtKind.BAD_CHECKSUM:
            row[subject_field] = break_checksum(str(row[subject_field]))
        elif flaw is DirtKind.MISSING_SUBJECT:
            if drop_missing:
                del row[subject_field]
            else:
                row[subject_field] = missing
        elif flaw is DirtKind.BAD_TIME and time_field is not None:
            row[time_field] = bad_time


def break_checksum(id_number: str) -> str:
    """The same ID number with a check character that GB 11643 rejects."""
    good = id_check_character(id_number[:17])
    wrong = "0" if good != "0" else "1"
    return id_number[:17] + wrong
