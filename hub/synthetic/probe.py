"""Reading each generated source back through its own interface, as a connector would reach it.

The demo uses this to show the sources are real systems (a SQL query, HTTP pages, files in a drop
folder) rather than in-memory fixtures; tests use it to check counts against the manifest.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import httpx

from hub.synthetic import education
from hub.synthetic.generate import SourceManifest
from hub.synthetic.serve import serve_in_thread


def _sql_count(path: Path, table: str) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,) = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608 - fixed table names
    finally:
        db.close()
    return int(count)


def _rest_count(directory: Path, page_size: int = 200) -> int:
    token = (directory / education.TOKEN_FILE).read_text(encoding="utf-8").strip()
    seen = 0
    with (
        serve_in_thread(education.create_app(directory)) as base_url,
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client,
    ):
        page = 1
        while True:
            response = client.get("/api/v1/safety-incidents", params={"page": page, "page_size": page_size})
            response.raise_for_status()
            body = response.json()
            seen += len(body["items"])
            if not body["has_more"]:
                return seen
            page += 1


def probe_sources(directory: Path) -> dict[str, int]:
    """Records readable per dataset through each source's real interface."""
    manifest = SourceManifest.read(directory)
    counts: dict[str, int] = {}
    for source in manifest.sources:
        location = directory / source.location
        if source.dataset == "police.incident":
            counts[source.dataset] = _sql_count(location, "bj_alarm")
        elif source.dataset == "health.visit":
            counts[source.dataset] = _sql_count(location, "his_visit")
        elif source.dataset == "education.campus_incident":
            counts[source.dataset] = _rest_count(location.parent)
        elif source.dataset == "civil_affairs.vulnerable_person":
            with location.open(encoding="utf-8", newline="") as handle:
                counts[source.dataset] = sum(1 for _ in csv.DictReader(handle))
        elif source.dataset == "civil_affairs.access_event":
            counts[source.dataset] = sum(
                sum(1 for line in path.open(encoding="utf-8") if line.strip())
                for path in sorted(location.glob("access_events_*.jsonl"))
            )
    return counts
