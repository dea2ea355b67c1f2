"""The education commission's campus-safety system: a small REST API serving paginated JSON.

The API needs a bearer token (written beside the data as ``token``), pages with ``page`` and
``page_size``, filters with ``updated_since``, and orders by (updatedAt, reportNo) so a client can
resume from a watermark. Items carry two fields the catalog does not list (``reporterTeacher``,
``teacherPhone``).
"""

from __future__ import annotations

import hmac
import json
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query

from hub.synthetic.dirt import DirtLedger
from hub.synthetic.population import AgeGroup, Resident

SOURCE = "education"
INCIDENT_TYPES = {"bullying": "欺凌", "injury": "受伤", "absence": "缺勤"}
_DESCRIPTIONS = {
    "bullying": "课间在走廊被同学推搡并辱骂，班主任已介入并通知家长。",
    "injury": "体育课跑步时摔倒，膝盖擦伤，已送校医室处理。",
    "absence": "连续两天未到校，电话联系家长未接通。",
}
DATA_FILE = "incidents.json"
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret
MAX_PAGE_SIZE = 500


def _school(resident: Resident, as_of: datetime) -> str:
    age = as_of.year - resident.born.year
    kind = "小学" if age <= 12 else "中学"
    number = int(resident.id_number[14:16]) % 3 + 1
    return f"北京市{resident.district}第{number}{kind}"


def build_rows(
    residents: Sequence[Resident], rng: random.Random, as_of: datetime, dirt: DirtLedger
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    serial = 0
    for resident in residents:
        if resident.age_group is not AgeGroup.CHILD or rng.random() >= 0.12:
            continue
        for _ in range(rng.randint(1, 2)):
            serial += 1
            kind = rng.choice(list(INCIDENT_TYPES))
            occurred = as_of - timedelta(minutes=rng.randrange(60, 300 * 24 * 60))
            updated = min(occurred + timedelta(hours=rng.randrange(1, 72)), as_of)
            report_no = f"XA{occurred:%Y}{serial:06d}"
            row: dict[str, Any] = {
                "reportNo": report_no,
                "studentIdCard": resident.id_number,
                "studentName": resident.name,
                "schoolName": _school(resident, as_of),
                "type": INCIDENT_TYPES[kind],
                "description": _DESCRIPTIONS[kind],
                "occurredAt": occurred.isoformat(timespec="seconds"),
                "updatedAt": updated.isoformat(timespec="seconds"),
                "reporterTeacher": f"教师{rng.randrange(100, 999)}",
                "teacherPhone": f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
            }
            dirt.spoil(
                row,
                source=SOURCE,
                position=f"safety-incidents.reportNo={report_no}",
                subject_field="studentIdCard",
                time_field="occurredAt",
                bad_time="yesterday afternoon",
                drop_missing=True,
            )
            rows.append(row)
    rows.sort(key=lambda r: (r["updatedAt"], r["reportNo"]))
    return rows


def write(rows: Sequence[dict[str, Any]], directory: Path, token: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DATA_FILE
    path.write_text(json.dumps(list(rows), ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (directory / TOKEN_FILE).write_text(token + "\n", encoding="utf-8")
    return path


def create_app(directory: Path) -> FastAPI:
    """The campus-safety REST API over the data written by :func:`write`."""
    items: list[dict[str, Any]] = json.loads((directory / DATA_FILE).read_text(encoding="utf-8"))
    token = (directory / TOKEN_FILE).read_text(encoding="utf-8").strip()
    app = FastAPI(title="Campus safety reporting API (synthetic)", version="1.0")

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="bearer token required")

    @app.get("/api/v1/safety-incidents", dependencies=[Depends(authorised)])
    def list_incidents(
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
        updated_since: Annotated[str | None, Query(description="ISO 8601; items updated strictly after")] = None,
    ) -> dict[str, Any]:
        selected = items
        if updated_since is not None:
            try:
                since = datetime.fromisoformat(updated_since)
            except ValueError:
                raise HTTPException(status_code=422, detail="updated_since must be ISO 8601") from None
            selected = [i for i in items if datetime.fromisoformat(i["updatedAt"]) > since]
        start = (page - 1) * page_size
        chunk = selected[start : start + page_size]
        return {
            "items": chunk,
            "page": page,
            "page_size": page_size,
            "total": len(selected),
            "has_more": start + page_size < len(selected),
        }

    return app
