"""File drops: CSV or JSONL files in an inbox, moved to ``processed/`` (or ``rejected/``) once read.

Half-written files are never read: writers drop files by rename-on-complete, so names ending in ``.part``
are skipped. A file is read in batches; the checkpoint remembers the file and line, so a run that
stops mid-file resumes there, and the file moves to ``processed/`` only after its last batch is on the
bus. A file that cannot be decoded at all moves to ``rejected/``.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from connectors.config import ConnectorConfig
from connectors.sources.base import Batch, Row


class FileSource:
    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.pattern = config.require("pattern")
        self.inbox = Path(config.require("directory"))
        self.processed = self.inbox.parent / "processed"
        self.rejected = self.inbox.parent / "rejected"

    def _rows(self, path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
        """(line number, parsed row or None when the line is malformed, the raw line)."""
        with path.open(encoding="utf-8", newline="") as handle:
            if self.config.format == "csv":
                for number, row in enumerate(csv.DictReader(handle), start=2):
                    yield number, dict(row), ""
            else:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        parsed = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        # orjson refuses a few things the standard parser takes (integers past 64 bits,
                        # NaN): only lines that neither reads are malformed.
                        try:
                            parsed = json.loads(line)
                        except json.JSONDecodeError:
                            yield number, None, line
                            continue
                    yield number, parsed if isinstance(parsed, dict) else None, line

    def _move(self, path: Path, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), folder / path.name)

    def batches(self, state: dict[str, Any]) -> Iterator[Batch]:
        files = sorted(p for p in self.inbox.glob(self.pattern) if not p.name.endswith(".part"))
        for path in files:
            start = int(state.get("line", 0)) if state.get("file") == path.name else 0
            rows: list[Row] = []
            try:
                for number, row, raw in self._rows(path):
                    if number <= start:
                        continue
                    values = row if row is not None else {"__malformed__": raw}
                    version = values.get(self.config.version_from) if self.config.version_from else None
                    rows.append(Row(f"{path.name}:{number}", values, version))
                    if len(rows) >= self.config.batch_size:
                        yield Batch(rows, {"file": path.name, "line": number})
                        rows = []
            except UnicodeDecodeError:
                self._move(path, self.rejected)
                continue
            last = Batch(rows, {"file": path.name, "line": 10**12})
            last.on_committed.append(lambda p=path: self._move(p, self.processed))
            yield last
