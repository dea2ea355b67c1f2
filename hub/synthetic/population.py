"""A seeded synthetic city population with valid, mutually consistent identities.

The same residents appear in every agency's source, which is what makes cross-agency joins (and the
tests that check nothing personal leaks) meaningful.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from faker import Faker

from hub.identifiers import make_id_number

# Districts of the synthetic city (real Beijing division codes, so the ID numbers look right).
DISTRICTS: dict[str, str] = {
    "110101": "东城区",
    "110102": "西城区",
    "110105": "朝阳区",
    "110106": "丰台区",
    "110107": "石景山区",
    "110108": "海淀区",
}
COMMUNITIES_PER_DISTRICT = 6
_COMMUNITY_SUFFIXES = ("东里", "西里", "北里", "南里", "花园", "新村", "家园", "小区")


class AgeGroup(StrEnum):
    CHILD = "child"  # 6-17: school age
    ADULT = "adult"  # 18-64
    ELDERLY = "elderly"  # 65-95


_AGE_RANGES = {AgeGroup.CHILD: (6, 17), AgeGroup.ADULT: (18, 64), AgeGroup.ELDERLY: (65, 95)}
_AGE_WEIGHTS = {AgeGroup.CHILD: 0.16, AgeGroup.ADULT: 0.60, AgeGroup.ELDERLY: 0.24}


@dataclass(frozen=True)
class Resident:
    """One synthetic resident. ``guardian`` is the index of another resident, if any."""

    index: int
    id_number: str
    name: str
    sex: str
    born: date
    age_group: AgeGroup
    phone: str
    district: str
    community: str
    address: str
    guardian: int | None = None


def _communities(fake: Faker, rng: random.Random) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for code in DISTRICTS:
        names: list[str] = []
        while len(names) < COMMUNITIES_PER_DISTRICT:
            name = fake.street_name().rstrip("街路") + rng.choice(_COMMUNITY_SUFFIXES) + "社区"
            if name not in names:
                names.append(name)
        result[code] = names
    return result


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year - years, day=28)


def _birth_date(today: date, age: int, rng: random.Random) -> date:
    """A birth date at which the resident is exactly ``age`` on ``today``."""
    latest = _years_before(today, age)
    earliest = _years_before(today, age + 1) + timedelta(days=1)
    return earliest + timedelta(days=rng.randrange((latest - earliest).days + 1))


def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        if phone not in used:
            used.add(phone)
            return phone


def generate_population(count: int, seed: int, as_of: datetime) -> list[Resident]:
    """``count`` residents; elderly residents get an adult guardian where the city has one."""
    rng = random.Random(seed)
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    communities = _communities(fake, rng)
    today = as_of.date()
    groups = list(_AGE_WEIGHTS)
    weights = [_AGE_WEIGHTS[g] for g in groups]
    used_ids: set[str] = set()
    used_phones: set[str] = set()
    residents: list[Resident] = []
    for index in range(count):
        group = rng.choices(groups, weights)[0]
        low, high = _AGE_RANGES[group]
        age = rng.randint(low, high)
        born = _birth_date(today, age, rng)
        sex = rng.choice("MF")
        district = rng.choice(list(DISTRICTS))
        while True:
            sequence = rng.randrange(500) * 2 + (1 if sex == "M" else 0)
            id_number = make_id_number(district, born, sequence)
            if id_number not in used_ids:
                used_ids.add(id_number)
                break
        name = fake.last_name() + (fake.first_name_male() if sex == "M" else fake.first_name_female())
        community = rng.choice(communities[district])
        address = (
            f"北京市{DISTRICTS[district]}{community.removesuffix('社区')}"
            f"{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元{rng.randint(1, 24)}{rng.randint(1, 4):02d}室"
        )
        residents.append(
            Resident(
                index=index,
                id_number=id_number,
                name=name,
                sex=sex,
                born=born,
                age_group=group,
                phone=_phone(rng, used_phones),
                district=district,
                community=community,
                address=address,
            )
        )
    adults = [r.index for r in residents if r.age_group is AgeGroup.ADULT]
    if adults:
        for i, resident in enumerate(residents):
            if resident.age_group is not AgeGroup.ADULT:
                residents[i] = Resident(**{**resident.__dict__, "guardian": rng.choice(adults)})
    return residents
