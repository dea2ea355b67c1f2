"""File drops: CSV or JSONL files in an inbox, moved to ``processed/`` (or ``rejected/``) once read.

Half-written files are never read: writers drop files by rename-on-complete, so names ending in ``.part``
are skipped. A file is read in batches; the checkpoint remembers the file and line, so a run that
stops mid-file resumes there, and the file moves to ``processed/`` only after its last batch is on the
bus. Each line is decoded on its own (UTF-8 by default, or the connector's ``encoding``, such as
GB18030), so a line that is not valid in it is a dead letter and the rest of the file goes on. A CSV file
the parser cannot go on with moves to ``rejected/`` after the rows before the fault, with a dead letter
that says where and why.
"""

from __future__ import annotations

import codecs
import csv
import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from connectors.config import ConnectorConfig
from connectors.sources.base import Batch, JsonLines, Row


def _checked(header: list[str], row: list[str]) -> tuple[dict[str, Any], str | None]:
    """A CSV row by column name, and why it cannot be taken in when its field count is not the header's.

    Such a row cannot be trusted column by column: a separator left unquoted (an address with a comma)
    shifts every later value into the wrong column, and a cut line loses its end. The row keeps its
    values (any surplus under ``__extra_fields__``), sealed in its dead letter. Counts are of the fields
    as written, so a header that repeats a name (the later column wins, as before) is no fault.
    """
    values: dict[str, Any] = dict(zip(header, row, strict=False))
    if len(row) == len(header):
        return values, None
    if len(row) > len(header):
        values["__extra_fields__"] = row[len(header) :]
    return values, f"the row has {len(row)} fields, the header {len(header)}"


def _drop_identity(path: Path) -> str:
    """Which file this is, beyond its name: writers drop files by rename-on-complete, so a new drop is a
    new inode with its own modification time, while a file being resumed keeps all three."""
    stat = path.stat()
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


class FileSource:
    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.pattern = config.require("pattern")
        self.inbox = Path(config.require("directory"))
        self.processed = self.inbox.parent / "processed"
        self.rejected = self.inbox.parent / "rejected"
        self.encoding = config.encoding
        self._utf8 = codecs.lookup(config.encoding).name == "utf-8"

    def _lines(self, handle: BinaryIO, refused: dict[int, str]) -> Iterator[str]:
        """The file's lines as text, each decoded on its own, so that a line which is not valid in the
        file's encoding refuses only itself: its number goes into ``refused``, and its text, with the
        bad bytes replaced, still reaches the parser so that the lines after it stay in step. The
        original bytes stay in the file, which is kept in ``processed/``. A UTF-8 byte-order mark
        (Excel writes one) is not part of the first line."""
        encoding = self.encoding
        for number, raw in enumerate(handle, start=1):
            if number == 1 and self._utf8 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError:
                refused[number] = f"the line is not valid {encoding}"
                yield raw.decode(encoding, errors="replace")

    def _rows(self, path: Path) -> Iterator[tuple[int, dict[str, Any] | str, str | None]]:
        """(line number, the CSV row or the JSONL line's text, why it cannot be taken in if it cannot).
        JSONL is parsed where the batch is used. A CSV row is refused when a line it spans is."""
        refused: dict[int, str] = {}
        with path.open("rb") as handle:
            lines = self._lines(handle, refused)
            if self.config.format == "csv":
                reader = csv.reader(lines)
                header, read_to = next(reader, []), reader.line_num
                number = 1  # rows are numbered as before: the header is 1, blank rows are not counted
                for row in reader:
                    spans = range(read_to + 1, reader.line_num + 1)  # the lines this row was read from
                    read_to = reader.line_num
                    if not row:
                        continue
                    number += 1
                    values, problem = _checked(header, row)
                    if problem is None and any(line in refused for line in spans):
                        problem = f"the row is not valid {self.encoding}"
                    yield number, values, problem
            else:
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        yield number, line, refused.pop(number, None)

    @staticmethod
    def _place(path: Path, folder: Path) -> Path:
        """Where ``path`` goes in ``folder``: beside, never over, an earlier file of the same name, so a
        re-export under the name of one already read keeps both sets of original bytes."""
        target, copy = folder / path.name, 1
        while target.exists():
            copy += 1
            target = folder / f"{path.stem}~{copy}{path.suffix}"
        return target

    @staticmethod
    def _move(path: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)

    def _batch(
        self, name: str, pending: list[Any], refused: list[tuple[int, str]], checkpoint: dict[str, Any]
    ) -> Batch:
        """A batch of the file kept as ``name``: its CSV rows, or its JSONL lines to be parsed by a worker."""
        if self.config.format == "csv":
            return Batch(pending, checkpoint)
        return Batch(JsonLines(name, pending, self.config.version_from, tuple(refused)), checkpoint)

    def batches(self, state: dict[str, Any]) -> Iterator[Batch]:
        files = sorted(p for p in self.inbox.glob(self.pattern) if not p.name.endswith(".part"))
        version_from = self.config.version_from
        for path in files:
            # The checkpoint names the file and this drop of it: a new file under the name of the last one
            # read (a corrected re-export) is read from its start, not skipped as finished.
            drop = _drop_identity(path)
            same = state.get("file") == path.name and state.get("drop", drop) == drop
            start = int(state.get("line", 0)) if same else 0
            # Rows are named by the file they will be kept as (a re-export's "events~2.jsonl:7"), so
            # every drop's positions, and its dead letters, are its own and lead to its bytes.
            kept = self._place(path, self.processed)
            pending: list[Any] = []  # CSV rows, or (number, text) of JSONL lines
            refused: list[tuple[int, str]] = []  # JSONL lines refused already: (number, why)
            number = 0
            try:
                for number, item, problem in self._rows(path):
                    if number <= start:
                        continue
                    if isinstance(item, str):
                        pending.append((number, item))
                        if problem is not None:
                            refused.append((number, problem))
                    else:
                        version = item.get(version_from) if version_from and problem is None else None
                        pending.append(Row(f"{kept.name}:{number}", item, version, problem))
                    if len(pending) >= self.config.batch_size:
                        yield self._batch(
                            kept.name, pending, refused, {"file": path.name, "drop": drop, "line": number}
                        )
                        pending, refused = [], []
            except csv.Error as error:  # the parser cannot go on (say, a field past its size limit)
                last = self._batch(kept.name, pending, refused, {"file": path.name, "drop": drop, "line": 10**12})
                reason = (
                    f"the file is not CSV the parser can go on with after row {number} ({error}); moved to rejected/"
                )
                if isinstance(last.source, list):
                    last.source.append(Row(f"{kept.name}:{number + 1}", {}, None, reason))
                last.on_committed.append(functools.partial(self._move, path, self._place(path, self.rejected)))
                yield last
                continue
            last = self._batch(kept.name, pending, refused, {"file": path.name, "drop": drop, "line": 10**12})
            last.on_committed.append(functools.partial(self._move, path, kept))
            yield last
