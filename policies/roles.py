"""Roles per agency with Casbin (pycasbin): who may do what, in which agency's domain.

Casbin is the source of truth; rules persist in the store (``casbin_rule``) and reload without a
restart when the ``policy_version`` counter moves. Checks are answered from the permission set Casbin
computes for a principal in a domain (``get_implicit_permissions_for_user``), cached until the rules
change: the plain Enforcer costs about 25 ms per check at 10k rules and FastEnforcer is not
thread-safe, while a cached set is a dictionary lookup and safe under threads.
Separation of duties (PIPL 51, GB/T 35273): no principal holds both an admin and an auditor role.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import casbin
from casbin import persist
from sqlalchemy import Engine, delete, select
from sqlmodel import Session

from policies.errors import PolicyInputError, SeparationOfDuties
from policies.tables import CasbinRule, PolicyVersion

ROLES = (
    "officer",
    "investigator",
    "community_officer",
    "analyst",
    "agency_admin",
    "dpo",
    "auditor",
    "partner_service",
)
ADMIN_ROLES = frozenset({"agency_admin"})
AUDITOR_ROLES = frozenset({"auditor"})

# The permissions each role gets in its agency's domain.
ROLE_PERMISSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "officer": (("records", "read"),),
    "investigator": (("records", "read"), ("emergency", "declare")),
    "community_officer": (("records", "read"), ("alerts", "read")),
    "analyst": (("statistics", "read"),),
    "agency_admin": (
        ("agreements", "request"),
        ("agreements", "approve"),
        ("roles", "admin"),
        ("consents", "record"),
    ),
    "dpo": (("agreements", "review"), ("audit", "read"), ("consents", "record"), ("emergency", "review")),
    "auditor": (("audit", "read"), ("audit", "export")),
    "partner_service": (("records", "read"), ("records", "push"), ("agreements", "request")),
}
RELOAD_CHECK_SECONDS = 2.0


def model_path() -> Path:
    return Path(str(resources.files("policies") / "casbin" / "model.conf"))


class StoreAdapter(persist.Adapter):  # type: ignore[misc]
    """Casbin rules in the hub's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load_policy(self, model: Any) -> None:
        with Session(self.engine) as session:
            for rule in session.exec(select(CasbinRule).order_by(CasbinRule.id)).scalars():  # type: ignore[arg-type,call-overload]
                values = [v for v in (rule.v0, rule.v1, rule.v2, rule.v3, rule.v4, rule.v5) if v]
                persist.load_policy_line(", ".join([rule.ptype, *values]), model)

    def _row(self, ptype: str, rule: Sequence[str]) -> CasbinRule:
        values = [*rule, "", "", "", "", "", ""][:6]
        return CasbinRule(
            ptype=ptype, v0=values[0], v1=values[1], v2=values[2], v3=values[3], v4=values[4], v5=values[5]
        )

    def save_policy(self, model: Any) -> bool:
        with Session(self.engine) as session:
            session.execute(delete(CasbinRule))
            for section in ("p", "g"):
                for ptype, assertion in model.model.get(section, {}).items():
                    for rule in assertion.policy:
                        session.add(self._row(ptype, rule))
            session.commit()
        return True

    def add_policy(self, sec: str, ptype: str, rule: Sequence[str]) -> None:
        with Session(self.engine) as session:
            session.add(self._row(ptype, rule))
            session.commit()

    def add_policies(self, sec: str, ptype: str, rules: Iterable[Sequence[str]]) -> None:
        with Session(self.engine) as session:
            for rule in rules:
                session.add(self._row(ptype, rule))
            session.commit()

    def remove_policy(self, sec: str, ptype: str, rule: Sequence[str]) -> None:
        with Session(self.engine) as session:
            query = delete(CasbinRule).where(CasbinRule.ptype == ptype)  # type: ignore[arg-type]
            for i, value in enumerate(rule):
                query = query.where(getattr(CasbinRule, f"v{i}") == value)
            session.execute(query)
            session.commit()

    def remove_filtered_policy(self, sec: str, ptype: str, field_index: int, *field_values: str) -> None:
        with Session(self.engine) as session:
            query = delete(CasbinRule).where(CasbinRule.ptype == ptype)  # type: ignore[arg-type]
            for offset, value in enumerate(field_values):
                if value:
                    query = query.where(getattr(CasbinRule, f"v{field_index + offset}") == value)
            session.execute(query)
            session.commit()


class RoleService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enforcer = casbin.Enforcer(str(model_path()), StoreAdapter(engine))
        self._cache: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}
        # (role, agency) pairs by principal. Casbin finds them by scanning every grouping rule: 104 µs a call
        # with 200 officers assigned, on every officer's request (the role a request acts under).
        self._held: dict[str, frozenset[tuple[str, str]]] = {}
        self._lock = threading.Lock()
        self._version = self._stored_version()
        self._checked_at = time.monotonic()

    # -- reloading ----------------------------------------------------------------------------------

    def _stored_version(self) -> int:
        with Session(self.engine) as session:
            row = session.get(PolicyVersion, "roles")
            return row.version if row else 0

    def _bump(self) -> None:
        with Session(self.engine) as session:
            row = session.get(PolicyVersion, "roles") or PolicyVersion(name="roles", version=0)
            row.version += 1
            session.add(row)
            session.commit()
            self._version = row.version

    def reload(self) -> None:
        with self._lock:
            self.enforcer.load_policy()
            self._forget()
            self._version = self._stored_version()

    def _forget(self) -> None:
        """Drop what was derived from the rules (call with ``_lock`` held, after the rules changed)."""
        self._cache.clear()
        self._held.clear()

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < RELOAD_CHECK_SECONDS:
            return
        self._checked_at = now
        if self._stored_version() != self._version:
            self.reload()

    # -- administration -----------------------------------------------------------------------------

    def install_agency(self, agency: str) -> None:
        """Grant every role its permissions in ``agency``'s domain (idempotent)."""
        rules = [
            [role, agency, obj, act]
            for role, permissions in ROLE_PERMISSIONS.items()
            for obj, act in permissions
            if not self.enforcer.has_policy(role, agency, obj, act)
        ]
        if rules:
            with self._lock:
                self.enforcer.add_policies(rules)
                self._forget()
            self._bump()

    def roles_of(self, principal: str) -> frozenset[tuple[str, str]]:
        """(role, agency) pairs held by ``principal`` in every domain, as of the last reload check (see
        :meth:`permissions`)."""
        self._maybe_reload()
        held = self._held.get(principal)
        if held is None:
            with self._lock:
                rules = self.enforcer.get_filtered_grouping_policy(0, principal)
                held = frozenset((rule[1], rule[2]) for rule in rules)
                self._held[principal] = held
        return held

    def assign(self, principal: str, role: str, agency: str) -> None:
        if role not in ROLES:
            raise PolicyInputError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        held = {r for r, _ in self.roles_of(principal)}
        if (role in ADMIN_ROLES and held & AUDITOR_ROLES) or (role in AUDITOR_ROLES and held & ADMIN_ROLES):
            raise SeparationOfDuties(
                f"principal {principal} cannot hold both an admin and an auditor role (PIPL 51, GB/T 35273)"
            )
        with self._lock:
            self.enforcer.add_grouping_policy(principal, role, agency)
            self._forget()
        self._bump()

    def revoke(self, principal: str, role: str, agency: str) -> None:
        with self._lock:
            self.enforcer.remove_grouping_policy(principal, role, agency)
            self._forget()
        self._bump()

    # -- checking -----------------------------------------------------------------------------------

    def permissions(self, principal: str, agency: str) -> frozenset[tuple[str, str]]:
        self._maybe_reload()
        key = (principal, agency)
        cached = self._cache.get(key)
        if cached is None:
            with self._lock:
                rules = self.enforcer.get_implicit_permissions_for_user(principal, agency)
                cached = frozenset((rule[2], rule[3]) for rule in rules if rule[1] == agency)
                self._cache[key] = cached
        return cached

    def check(self, principal: str, agency: str, obj: str, act: str) -> bool:
        return (obj, act) in self.permissions(principal, agency)
