"""What every source reader provides."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson


class Row(NamedTuple):
    """One source row. A named tuple, made once per row: a dataclass instance took about twice as long to
    build and to pickle (measured: 2,000 rows, 7.0 ms against 4.7 ms). Rows cross to the worker processes
    as plain tuples (connectors.workers), which pickle without calling Python code."""

    position: str
    values: dict[str, Any]
    version_source: Any = None
    # Why the reader already knows the row cannot be taken in, if it does (a JSONL line that is not JSON,
    # a SQL row whose watermark is NULL): the runner makes it a dead letter with this reason.
    rejected: str | None = None


MALFORMED_LINE = "the line is not valid JSON"  # a Row's ``rejected`` for such a line
# The key under which a refused row's sealed dead letter keeps the reader's reason: a replay refuses the
# row again, since no mapping fix mends it (a CSV row shifted by a stray separator would otherwise be
# taken in with its columns wrong).
REFUSED = "__refused__"
_EXACT = frozenset((str, int, bool, type(None)))  # value classes orjson reads exactly as the standard parser


def parse_json_line(line: str) -> dict[str, Any] | None:
    """One JSONL line's object, or None when the line is malformed (not JSON, or not an object).

    orjson is the fast path, but it reads an integer past 64 bits as a rounded float, silently, and it
    refuses a few things the standard parser takes (NaN, lone surrogates). So a line with any float or
    nested value is read again by the standard parser, which keeps every integer exact; only lines that
    neither reads are malformed. Source rows are mostly flat strings and integers, so that costs one
    pass over the values.
    """
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        parsed = None
    else:
        if parsed.__class__ is not dict:
            return None
        exact = _EXACT
        for value in parsed.values():
            if value.__class__ not in exact:
                parsed = None
                break
        else:
            return parsed
    try:
        parsed = json.loads(line)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


class JsonLines(NamedTuple):
    """A batch of JSONL lines not yet parsed: the file's name, each line's number and text, and the
    column the rows' versions come from.

    A JSONL batch crosses to a worker process in this form (see connectors.workers): text pickles for a
    fraction of what the parsed rows cost (the benchmark's access events: 0.7 µs a line against 5.1-5.5 µs
    a row to pickle and unpickle), and the worker parses it with the same code a reader in one process
    uses (:meth:`rows`). The reading process then only splits lines: in bench/ingest.py's connectors it
    used 0.76 s of CPU against 0.99 s before, while the workers' CPU barely moved (2.90 s against 2.84 s;
    medians of 8 runs each)."""

    file: str
    lines: list[tuple[int, str]]
    version_from: str | None
    refused: tuple[tuple[int, str], ...] = ()  # (line number, why) of lines the reader refused already

    def rows(self) -> list[Row]:
        rows = []
        new, file, version_from = tuple.__new__, self.file, self.version_from
        refused = dict(self.refused)
        for number, line in self.lines:
            values = parse_json_line(line) if number not in refused else None
            if values is None:  # the raw line is kept (sealed) in the dead letter
                why = refused.get(number, MALFORMED_LINE)
                rows.append(new(Row, (f"{file}:{number}", {"__malformed__": line}, None, why)))
                continue
            version = values.get(version_from) if version_from else None
            rows.append(new(Row, (f"{file}:{number}", values, version, None)))
        return rows


class Unread(Protocol):
    """A batch's rows before they are read: small and picklable, so a worker process reads them itself
    (a JSONL batch's lines, a SQL batch's key range)."""

    def rows(self) -> list[Row]: ...


@dataclass
class Batch:
    """A batch of source rows and the checkpoint that covers them.

    ``source`` is the rows, or how to read them (:class:`Unread`); :attr:`rows` reads those on first use,
    so a batch sent to a worker process is read there, never in the reading process."""

    source: list[Row] | Unread
    checkpoint: dict[str, Any]  # the state to store once every row of this batch is on the bus
    on_committed: list[Callable[[], Any]] = field(default_factory=list)  # callbacks after the checkpoint

    @property
    def rows(self) -> list[Row]:
        if not isinstance(self.source, list):
            self.source = self.source.rows()
        return self.source


class Source(Protocol):
    def batches(self, state: dict[str, Any]) -> Iterator[Batch]: ...
