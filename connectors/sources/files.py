"""File drops: CSV or JSONL files in an inbox, moved to ``processed/`` (or ``rejected/``) once read.

Half-written files are never read: writers drop files by rename-on-complete, so names ending in ``.part``
are skipped. A file is read in batches; the checkpoint remembers the file and line, so a run that
stops mid-file resumes there, and the file moves to ``processed/`` only after its last batch is on the
bus. A file that cannot be decoded at all moves to ``rejected/``.
"""

from __future__ import annotations

import csv
import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.config import ConnectorConfig
from connectors.sources.base import Batch, JsonLines, Row


def _checked(row: dict[str | None, Any], width: int) -> tuple[dict[str, Any], str | None]:
    """A CSV row, and why it cannot be taken in when its field count is not the header's.

    Such a row cannot be trusted column by column: a separator left unquoted (an address with a comma)
    shifts every later value into the wrong column, and a cut line loses its end. The csv module puts
    the surplus values under the key None and fills missing ones with None; the row keeps its values
    (the surplus under ``__extra_fields__``), sealed in its dead letter.
    """
    extra = row.pop(None, None)
    if extra is not None:
        kept: dict[str, Any] = {k: v for k, v in row.items() if k is not None}
        kept["__extra_fields__"] = extra
        return kept, f"the row has {width + len(extra)} fields, the header {width}"
    present = {k: v for k, v in row.items() if k is not None and v is not None}
    if len(present) < width:
        return present, f"the row has {len(present)} fields, the header {width}"
    return present, None


class FileSource:
    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.pattern = config.require("pattern")
        self.inbox = Path(config.require("directory"))
        self.processed = self.inbox.parent / "processed"
        self.rejected = self.inbox.parent / "rejected"

    def _rows(self, path: Path) -> Iterator[tuple[int, dict[str, Any] | str, str | None]]:
        """(line number, the CSV row or the JSONL line's text, why the CSV row cannot be taken in if it
        cannot). JSONL is parsed where the batch is used."""
        with path.open(encoding="utf-8", newline="") as handle:
            if self.config.format == "csv":
                reader = csv.DictReader(handle)
                for number, row in enumerate(reader, start=2):
                    yield number, *_checked(row, len(reader.fieldnames or ()))
            else:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        yield number, line, None

    def _move(self, path: Path, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), folder / path.name)

    def _batch(self, path: Path, pending: list[Any], checkpoint: dict[str, Any]) -> Batch:
        if self.config.format == "csv":
            return Batch(pending, checkpoint)
        return Batch(JsonLines(path.name, pending, self.config.version_from), checkpoint)

    def batches(self, state: dict[str, Any]) -> Iterator[Batch]:
        files = sorted(p for p in self.inbox.glob(self.pattern) if not p.name.endswith(".part"))
        version_from = self.config.version_from
        for path in files:
            start = int(state.get("line", 0)) if state.get("file") == path.name else 0
            pending: list[Any] = []  # CSV rows, or (number, text) of JSONL lines
            try:
                for number, item, problem in self._rows(path):
                    if number <= start:
                        continue
                    if isinstance(item, str):
                        pending.append((number, item))
                    else:
                        version = item.get(version_from) if version_from and problem is None else None
                        pending.append(Row(f"{path.name}:{number}", item, version, problem))
                    if len(pending) >= self.config.batch_size:
                        yield self._batch(path, pending, {"file": path.name, "line": number})
                        pending = []
            except UnicodeDecodeError:
                self._move(path, self.rejected)
                continue
            last = self._batch(path, pending, {"file": path.name, "line": 10**12})
            last.on_committed.append(functools.partial(self._move, path, self.processed))
            yield last
