"""The regional hospital information system: a SQL database of visits.

Besides the catalogued fields it holds an insurance card number and the attending doctor, which the
connector must not carry out of the health commission.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from hub.synthetic.dirt import DirtLedger
from hub.synthetic.population import AgeGroup, Resident
from hub.synthetic.sqlfile import write_table

SOURCE = "health"
HOSPITALS = (
    "北京协和医院",
    "北京朝阳医院",
    "北京友谊医院",
    "北京天坛医院",
    "北京积水潭医院",
    "北京安定医院",
    "首都儿科研究所附属儿童医院",
    "北京老年医院",
)
# (department, ICD-10 code, diagnosis), grouped by who tends to have them.
_ELDERLY = (
    ("心内科", "I10", "原发性高血压"),
    ("内分泌科", "E11.9", "2型糖尿病"),
    ("神经内科", "G30.9", "阿尔茨海默病"),
    ("神经内科", "F03", "痴呆"),
    ("骨科", "S72.0", "股骨颈骨折"),
    ("呼吸内科", "J44.9", "慢性阻塞性肺疾病"),
)
_ADULT = (
    ("消化内科", "K29.7", "胃炎"),
    ("急诊科", "T14.9", "外伤"),
    ("精神科", "F32.9", "抑郁发作"),
    ("呼吸内科", "J18.9", "肺炎"),
    ("心内科", "I10", "原发性高血压"),
)
_CHILD = (
    ("儿科", "J06.9", "急性上呼吸道感染"),
    ("急诊科", "S52.5", "桡骨远端骨折"),
    ("儿科", "A09", "感染性腹泻"),
)
_VISITS = {AgeGroup.ELDERLY: (0, 6), AgeGroup.ADULT: (0, 2), AgeGroup.CHILD: (0, 2)}
_SCHEMA = """
CREATE TABLE his_visit (
    visit_no TEXT PRIMARY KEY,
    patient_idcard TEXT,
    patient_name TEXT,
    hospital_name TEXT NOT NULL,
    dept_name TEXT,
    icd10 TEXT,
    diagnosis_name TEXT,
    reg_time TEXT NOT NULL,
    insurance_card_no TEXT,
    attending_doctor TEXT,
    update_time TEXT NOT NULL
);
CREATE INDEX his_visit_watermark ON his_visit (update_time, visit_no);
"""
_COLUMNS = [
    "visit_no",
    "patient_idcard",
    "patient_name",
    "hospital_name",
    "dept_name",
    "icd10",
    "diagnosis_name",
    "reg_time",
    "insurance_card_no",
    "attending_doctor",
    "update_time",
]


def build_rows(
    residents: Sequence[Resident], rng: random.Random, as_of: datetime, dirt: DirtLedger
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    serial = 0
    for resident in residents:
        low, high = _VISITS[resident.age_group]
        pool = {AgeGroup.ELDERLY: _ELDERLY, AgeGroup.ADULT: _ADULT, AgeGroup.CHILD: _CHILD}[resident.age_group]
        for _ in range(rng.randint(low, high)):
            serial += 1
            department, code, diagnosis = rng.choice(pool)
            hospital = (
                HOSPITALS[6] if resident.age_group is AgeGroup.CHILD else rng.choice(HOSPITALS[:6] + HOSPITALS[7:])
            )
            registered = as_of - timedelta(minutes=rng.randrange(30, 365 * 24 * 60))
            updated = min(registered + timedelta(hours=rng.randrange(1, 48)), as_of)
            visit_no = f"V{registered:%y%m%d}{serial:07d}"
            row: dict[str, object] = {
                "visit_no": visit_no,
                "patient_idcard": resident.id_number,
                "patient_name": resident.name,
                "hospital_name": hospital,
                "dept_name": department,
                "icd10": code,
                "diagnosis_name": diagnosis,
                "reg_time": f"{registered:%Y-%m-%d %H:%M:%S}",
                "insurance_card_no": f"{rng.randrange(10**11, 10**12)}",
                "attending_doctor": f"医师{rng.randrange(1000, 9999)}",
                "update_time": f"{updated:%Y-%m-%d %H:%M:%S}",
            }
            dirt.spoil(
                row,
                source=SOURCE,
                position=f"his_visit.visit_no={visit_no}",
                subject_field="patient_idcard",
                time_field="reg_time",
            )
            rows.append(row)
    return rows


def write(rows: Sequence[dict[str, object]], directory: Path) -> Path:
    return write_table(directory / "health.db", _SCHEMA, "his_visit", _COLUMNS, rows)
