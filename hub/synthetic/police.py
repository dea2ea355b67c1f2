"""The police 110 dispatch system: a SQL database with pinyin-abbreviated column names.

Real Chinese police systems name columns like ``bjr_xm`` (报警人姓名); keeping that shape here makes the
connector's mapping do real work. The table also carries columns the catalog does not list
(``dispatch_unit``, ``officer_badge``), which the connector must drop.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from hub.synthetic.dirt import DirtLedger
from hub.synthetic.population import AgeGroup, Resident
from hub.synthetic.sqlfile import write_table

SOURCE = "police"
INCIDENT_TYPES = {
    "fraud": "诈骗",
    "missing_person": "人员走失",
    "theft": "盗窃",
    "dispute": "纠纷",
    "traffic": "交通事故",
    "domestic_violence": "家庭暴力",
    "other": "其他",
}
_TYPE_WEIGHTS = {
    "fraud": 20,
    "theft": 20,
    "dispute": 25,
    "traffic": 15,
    "domestic_violence": 5,
    "missing_person": 5,
    "other": 10,
}
_SCHEMA = """
CREATE TABLE bj_alarm (
    alarm_no TEXT PRIMARY KEY,
    alarm_time TEXT NOT NULL,
    xzqh TEXT NOT NULL,
    fadd TEXT,
    alarm_type TEXT NOT NULL,
    bjr_xm TEXT,
    bjr_dh TEXT,
    bjr_sfzh TEXT,
    sjr_sfzh TEXT,
    jqms TEXT,
    zt TEXT NOT NULL,
    dispatch_unit TEXT,
    officer_badge TEXT,
    is_deleted INTEGER NOT NULL DEFAULT 0,
    last_modified TEXT NOT NULL
);
CREATE INDEX bj_alarm_watermark ON bj_alarm (last_modified, alarm_no);
"""
_COLUMNS = [
    "alarm_no",
    "alarm_time",
    "xzqh",
    "fadd",
    "alarm_type",
    "bjr_xm",
    "bjr_dh",
    "bjr_sfzh",
    "sjr_sfzh",
    "jqms",
    "zt",
    "dispatch_unit",
    "officer_badge",
    "is_deleted",
    "last_modified",
]


def _narrative(kind: str, caller: Resident, involved: Sequence[Resident], when: datetime) -> str:
    if kind == "missing_person" and involved:
        person = involved[0]
        return (
            f"{caller.name}报警称其家属{person.name}（{person.id_number}）于{when:%m月%d日%H时}许从"
            f"{person.community}家中外出未归，老人患有记忆障碍，身穿深色外套。"
        )
    if kind == "fraud":
        loss = (int(caller.id_number[14:17]) % 9 + 1) * 1000
        return f"报警人{caller.name}称接到冒充公检法人员电话，按对方要求转账，损失约{loss}元。"
    if kind == "domestic_violence" and involved:
        return f"报警人{caller.name}称与家人发生冲突并受伤，涉事人{involved[0].name}。"
    return {
        "theft": "报警称电动自行车在小区楼下被盗。",
        "dispute": "报警称与邻居因噪音问题发生纠纷。",
        "traffic": "报警称路口发生两车刮擦，无人员受伤。",
    }.get(kind, "报警人反映情况，民警已到场处置。")


def build_rows(
    residents: Sequence[Resident], rng: random.Random, as_of: datetime, dirt: DirtLedger
) -> list[dict[str, object]]:
    callers = [r for r in residents if r.age_group is not AgeGroup.CHILD]
    elderly = [r for r in residents if r.age_group is AgeGroup.ELDERLY]
    guarded = [r for r in elderly if r.guardian is not None]
    kinds = list(_TYPE_WEIGHTS)
    weights = list(_TYPE_WEIGHTS.values())
    rows: list[dict[str, object]] = []
    count = max(1, len(residents) * 15 // 100)
    for n in range(count):
        kind = rng.choices(kinds, weights)[0]
        involved: list[Resident] = []
        missing = rng.choice(guarded) if kind == "missing_person" and guarded else None
        if missing is not None and missing.guardian is not None:
            caller = residents[missing.guardian]
            involved = [missing]
            reported = as_of - timedelta(minutes=rng.randrange(60, 72 * 60))
        else:
            caller = rng.choice(callers)
            if kind == "fraud" and elderly and rng.random() < 0.6:
                caller = rng.choice(elderly)
            if kind == "domestic_violence":
                involved = [rng.choice(callers)]
            reported = as_of - timedelta(minutes=rng.randrange(60, 180 * 24 * 60))
        modified = reported + timedelta(minutes=rng.randrange(5, 600))
        modified = min(modified, as_of)
        alarm_no = f"J{reported:%Y%m%d}{n:06d}"
        row: dict[str, object] = {
            "alarm_no": alarm_no,
            "alarm_time": f"{reported:%Y-%m-%d %H:%M:%S}",
            "xzqh": caller.district,
            "fadd": caller.address if kind in ("missing_person", "domestic_violence", "theft") else None,
            "alarm_type": INCIDENT_TYPES[kind],
            "bjr_xm": caller.name,
            "bjr_dh": caller.phone,
            "bjr_sfzh": caller.id_number,
            "sjr_sfzh": ",".join(p.id_number for p in involved) or None,
            "jqms": _narrative(kind, caller, involved, reported),
            "zt": "1" if as_of - reported > timedelta(days=7) else "0",
            "dispatch_unit": f"{caller.district}派出所",
            "officer_badge": f"{rng.randrange(100000, 999999)}",
            "is_deleted": 0,
            "last_modified": f"{modified:%Y-%m-%d %H:%M:%S}",
        }
        dirt.spoil(
            row,
            source=SOURCE,
            position=f"bj_alarm.alarm_no={alarm_no}",
            subject_field="bjr_sfzh",
            time_field="alarm_time",
        )
        rows.append(row)
    return rows


def write(rows: Sequence[dict[str, object]], directory: Path) -> Path:
    return write_table(directory / "police.db", _SCHEMA, "bj_alarm", _COLUMNS, rows)
