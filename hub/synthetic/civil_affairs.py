"""The civil-affairs bureau's file drops: a CSV registry and daily JSONL door-sensor events.

Files land in ``inbox/`` by rename-on-complete (written as ``*.part``, then renamed), the convention a
file-drop connector relies on to never read half a file. The registry carries a bank account column
(for benefit payments) that the catalog deliberately omits; the events carry a firmware version.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hub.synthetic.dirt import DirtLedger
from hub.synthetic.population import AgeGroup, Resident

SOURCE = "civil_affairs"
CATEGORIES = {"solitary_elderly": "独居老人", "low_income": "低保", "disabled": "残疾"}
REGISTRY_HEADER = (
    "登记编号",
    "身份证号",
    "姓名",
    "类别",
    "住址",
    "联系电话",
    "监护人姓名",
    "监护人电话",
    "社区",
    "区划代码",
    "登记日期",
    "更新时间",
    "银行账号",
)
EVENT_DAYS = 7
STAY_IN_RATE = 0.05  # share of solitary elderly who have not gone out for three days or more


def build_registry(
    residents: Sequence[Resident], rng: random.Random, as_of: datetime, dirt: DirtLedger
) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for resident in residents:
        if resident.age_group is AgeGroup.ELDERLY and rng.random() < 0.35:
            category = "solitary_elderly"
        elif resident.age_group is AgeGroup.ADULT and rng.random() < 0.04:
            category = "low_income"
        elif rng.random() < 0.02:
            category = "disabled"
        else:
            continue
        guardian = residents[resident.guardian] if resident.guardian is not None else None
        registered = as_of - timedelta(days=rng.randrange(30, 3000))
        updated = min(registered + timedelta(days=rng.randrange(0, 400)), as_of - timedelta(hours=1))
        person_no = f"MZ{resident.district}{len(rows) + 1:06d}"
        row = {
            "登记编号": person_no,
            "身份证号": resident.id_number,
            "姓名": resident.name,
            "类别": CATEGORIES[category],
            "住址": resident.address,
            "联系电话": resident.phone,
            "监护人姓名": guardian.name if guardian else "",
            "监护人电话": guardian.phone if guardian else "",
            "社区": resident.community,
            "区划代码": resident.district,
            "登记日期": f"{registered:%Y-%m-%d}",
            "更新时间": f"{updated:%Y-%m-%d %H:%M:%S}",
            "银行账号": f"6222{rng.randrange(10**14, 10**15)}",
        }
        dirt.spoil(
            row,
            source=SOURCE,
            position=f"registry.登记编号={person_no}",
            subject_field="身份证号",
            missing="",
        )
        rows.append(row)
    return rows


def build_events(
    registry: Sequence[dict[str, str]],
    residents_by_id: dict[str, Resident],
    rng: random.Random,
    as_of: datetime,
    dirt: DirtLedger,
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Events per day file name, and the registry numbers of residents who stopped going out."""
    days: dict[str, list[dict[str, Any]]] = {}
    stay_in: list[str] = []
    first_day = (as_of - timedelta(days=EVENT_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    today = as_of.date()
    for row in registry:
        resident = residents_by_id.get(row["身份证号"])
        if resident is None:
            continue  # a planted dirty registry row; its sensor card is not issued
        quiet_days = 0
        if row["类别"] == CATEGORIES["solitary_elderly"] and rng.random() < STAY_IN_RATE:
            quiet_days = rng.randint(3, 5)
            stay_in.append(row["登记编号"])
        gates = [f"G{resident.community.encode('utf-8').hex()[:6]}-{n}" for n in (1, 2)]
        for day in range(EVENT_DAYS):
            start = first_day + timedelta(days=day)
            if quiet_days and start.date() >= today - timedelta(days=quiet_days):
                continue  # whole calendar days without any event, as the alert counts them
            for _ in range(rng.randint(1, 3)):
                out_at = start + timedelta(hours=rng.randint(7, 17), minutes=rng.randrange(60))
                back_at = out_at + timedelta(minutes=rng.randrange(20, 180))
                for direction, moment in (("out", out_at), ("in", back_at)):
                    if moment >= as_of:
                        continue
                    file = f"access_events_{moment:%Y%m%d}.jsonl"
                    event_id = f"E{moment:%Y%m%d%H%M%S}{rng.randrange(10**6):06d}"
                    event: dict[str, Any] = {
                        "event_id": event_id,
                        "card_holder_id": resident.id_number,
                        "community": resident.community,
                        "gate": rng.choice(gates),
                        "dir": direction,
                        "ts": moment.isoformat(timespec="seconds"),
                        "device_fw": "v2.3.1",
                    }
                    dirt.spoil(
                        event,
                        source=SOURCE,
                        position=f"{file}:event_id={event_id}",
                        subject_field="card_holder_id",
                        drop_missing=True,
                    )
                    days.setdefault(file, []).append(event)
    for events in days.values():
        events.sort(key=lambda e: (e["ts"], e["event_id"]))
    return dict(sorted(days.items())), stay_in


def _drop(path: Path, text: str) -> None:
    """Rename-on-complete: a reader never sees a partly written ``path``."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def write(
    registry: Sequence[dict[str, str]],
    events: dict[str, list[dict[str, Any]]],
    directory: Path,
    as_of: datetime,
) -> list[Path]:
    inbox = directory / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REGISTRY_HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(registry)
    paths = [inbox / f"registry_{as_of:%Y%m%d}.csv"]
    _drop(paths[0], buffer.getvalue())
    for name, day_events in events.items():
        lines = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in day_events)
        paths.append(inbox / name)
        _drop(paths[-1], lines)
    return paths
