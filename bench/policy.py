"""Benchmark the policy decision point: Rego decisions and Casbin checks.

- For 10, 200 and 2,000 sharing agreements in the store: p50/p99 latency of the Rego evaluation alone
  (the embedded engine on the input the decision point builds) and of the whole decision (reading the
  relevant agreements and consents from SQLite, building the input, evaluating), and decisions/s. The
  agreements are spread over a city's consumers: the four agencies and their district units (16
  districts each), so a request meets the few agreements its own agency pair and dataset hold.
- A stress row, outside the goal: the same 2,000 agreements piled onto the four agencies alone, which
  puts dozens of usable agreements on every request; it shows the cost per agreement the policy weighs.
- Casbin at 10,000 rules: the cached permission-set check the hub uses, against pycasbin's own
  ``Enforcer.enforce`` measured in the same run.
Goals: Rego p50 <= 200 us, Casbin check <= 20 us. The last line is one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import itertools  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import TypeVar  # noqa: E402

from sqlalchemy import Engine  # noqa: E402
from sqlmodel import Session, SQLModel, select  # noqa: E402

from hub.catalog import load_catalog  # noqa: E402
from keys.sql import create_sql_engine  # noqa: E402
from policies import tables  # noqa: E402
from policies.agreements import AgreementService  # noqa: E402
from policies.consents import ConsentLedger  # noqa: E402
from policies.decide import DecisionRequest, DecisionService, PrincipalContext, RecordContext  # noqa: E402
from policies.engines import EmbeddedEngine  # noqa: E402
from policies.roles import RoleService  # noqa: E402

NOW = 1795000000
AGENCIES = ["police", "health", "education", "civil_affairs"]
DISTRICTS = 16
REQUESTS = 200
T = TypeVar("T")
CITY = AGENCIES + [f"{agency}.d{n:02d}" for agency in AGENCIES for n in range(1, DISTRICTS + 1)]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


def cycle(items: list[T], operation: Callable[[T], object]) -> Callable[[], object]:
    """One call per item, round and round: the latency figures span every sampled request."""
    endless = itertools.cycle(items)
    return lambda: operation(next(endless))


def timed(operation: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - started)
    return samples


def seed_agreements(engine: Engine, count: int, rng: random.Random, consumers: list[str]) -> None:
    catalog = load_catalog()
    datasets = [d for d in catalog if d.sharing.attribute.value != "not_shared"]
    with Session(engine) as session:
        for n in range(count):
            d = rng.choice(datasets)
            consumer = rng.choice([a for a in consumers if a != d.owner])
            session.add(
                tables.AgreementRow(
                    id=f"AGR-{n:05d}",
                    provider=d.owner,
                    consumer=consumer,
                    dataset=d.id,
                    fields=rng.sample([f.name for f in d.fields], k=min(4, len(d.fields))),
                    purposes=rng.sample(["missing_person", "welfare_check", "fraud_warning", "campus_safety"], k=2),
                    lawful_basis=rng.choice(["statutory_duty", "consent"]),
                    legal_citation="PIPL 13(3)",
                    necessity="needed",
                    valid_from=NOW - 1000,
                    valid_until=NOW + 10_000,
                    status=rng.choice(["active", "active", "paused", "revoked"]),
                    requester="bench",
                    approvers=["bench"],
                )
            )
        session.commit()


def decisions(count: int, scratch: Path, consumers: list[str]) -> dict[str, float]:
    engine = create_sql_engine(f"sqlite:///{scratch / f'policy-{count}-{len(consumers)}.db'}")
    SQLModel.metadata.create_all(engine)
    rng = random.Random(count)
    seed_agreements(engine, count, rng, consumers)
    roles = RoleService(engine)
    catalog = load_catalog()
    service = DecisionService(
        EmbeddedEngine(),
        roles,
        AgreementService(engine, roles, catalog.dataset_fields()),
        ConsentLedger(engine),
        catalog.policy_labels(),
        audit=None,  # the audit append is bench/audit.py's subject
        clock=lambda: NOW,
    )
    # Requests as the city makes them: each from an officer of an agency that holds an agreement, for that
    # agreement's dataset and one of its purposes (whatever state the agreement is in).
    with Session(engine) as session:
        held = list(session.exec(select(tables.AgreementRow)).all())
    requests = []
    for n, agreement in enumerate(rng.sample(held, k=min(REQUESTS, len(held)))):
        roles.install_agency(agreement.consumer)
        roles.assign(f"P-{n:04d}", "investigator", agreement.consumer)
        requests.append(
            DecisionRequest(
                PrincipalContext(f"P-{n:04d}", agreement.consumer, "investigator", "110105", mfa=True),
                RecordContext(agreement.dataset, agreement.provider, "110105", False, "ab" * 32),
                rng.choice(agreement.purposes),
            )
        )
    documents = [service.build_input(r) for r in requests]
    for document in documents:
        service.engine.evaluate(document)
    rego = timed(cycle(documents, service.engine.evaluate), 2000)
    whole = timed(cycle(requests, service.decide), 1000)
    rego_p50, rego_p99 = percentiles(rego)
    whole_p50, whole_p99 = percentiles(whole)
    return {
        "agreements": count,
        "consumer_agencies": len(consumers),
        "requests": len(requests),
        "relevant_agreements_mean": round(statistics.mean(len(d["agreements"]) for d in documents), 1),
        "allowed_share": round(statistics.mean(bool(service.evaluate(r).allow) for r in requests), 2),
        "rego_p50_us": round(rego_p50, 1),
        "rego_p99_us": round(rego_p99, 1),
        "decision_p50_us": round(whole_p50, 1),
        "decision_p99_us": round(whole_p99, 1),
        "decisions_per_s": round(1 / statistics.mean(whole)),
        "rego_evaluations_per_s": round(1 / statistics.mean(rego)),
    }


def casbin(scratch: Path, rules: int = 10_000) -> dict[str, float]:
    engine = create_sql_engine(f"sqlite:///{scratch / 'casbin.db'}")
    SQLModel.metadata.create_all(engine)
    roles = RoleService(engine)
    for agency in AGENCIES:
        roles.install_agency(agency)
    principals = []
    role_names = ["officer", "investigator", "community_officer", "analyst", "dpo", "partner_service"]
    grouping = [[f"U-{n:05d}", role_names[n % len(role_names)], AGENCIES[n % 4]] for n in range(rules)]
    roles.assign_all([(p, r, a) for p, r, a in grouping])
    principals = [(g[0], g[2]) for g in grouping]
    rng = random.Random(1)
    sample = [rng.choice(principals) for _ in range(5000)]
    for principal, agency in sample:
        roles.check(principal, agency, "records", "read")  # warm the per-principal sets
    cached = timed(lambda: roles.check(*rng.choice(sample), "records", "read"), 20000)
    enforce = timed(lambda: roles.enforcer.enforce(*rng.choice(sample), "records", "read"), 300)
    cached_p50, cached_p99 = percentiles(cached)
    enforce_p50, _ = percentiles(enforce)
    return {
        "casbin_rules": len(roles.enforcer.get_policy()) + len(roles.enforcer.get_grouping_policy()),
        "casbin_check_p50_us": round(cached_p50, 2),
        "casbin_check_p99_us": round(cached_p99, 2),
        "casbin_enforce_p50_us": round(enforce_p50, 1),
    }


def main() -> dict[str, object]:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        rows = [decisions(n, scratch, CITY) for n in (10, 200, 2000)]
        stress = decisions(2000, scratch, AGENCIES)
        for row in [*rows, stress]:
            print(
                f"{row['agreements']:>5} agreements over {row['consumer_agencies']} consumers "
                f"({row['relevant_agreements_mean']} relevant on average, {row['allowed_share']:.0%} allowed): "
                f"Rego p50 "
                f"{row['rego_p50_us']} us p99 {row['rego_p99_us']} us; whole decision p50 {row['decision_p50_us']} us "
                f"p99 {row['decision_p99_us']} us, {row['decisions_per_s']:,}/s"
            )
        results["decisions"] = rows
        results["stress_four_agencies"] = stress
        figures = casbin(scratch)
        results.update(figures)
        print(
            f"Casbin at {figures['casbin_rules']:,} rules: check p50 {figures['casbin_check_p50_us']} us "
            f"(p99 {figures['casbin_check_p99_us']} us); pycasbin enforce p50 {figures['casbin_enforce_p50_us']} us"
        )
    results["goals_met"] = (
        all(float(r["rego_p50_us"]) <= 200 for r in rows) and float(str(results["casbin_check_p50_us"])) <= 20
    )
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
