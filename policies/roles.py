"""Roles per agency with Casbin (pycasbin): who may do what, in which agency's domain.

Casbin is the source of truth; rules persist in the store (``casbin_rule``) and reload without a
restart when the ``policy_version`` counter moves. Checks are answered from the permission set Casbin
computes for a principal in a domain (``get_implicit_permissions_for_user``), cached until the rules
change: the plain Enforcer costs about 25 ms per check at 10k rules and FastEnforcer is not
thread-safe, while a cached set is a dictionary lookup and safe under threads.
Separation of duties (PIPL 51, GB/T 35273): no principal holds both an admin and an auditor role. It is
checked against the rules as stored, in the transaction that stores the change and under the rules' write
lock, so two workers giving a principal the two roles at once cannot both succeed (see RoleService._change).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import casbin
from casbin import persist
from sqlalchemy import Connection, Engine, Table, delete, insert, select, text, update
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
T = TypeVar("T")


def model_path() -> Path:
    return Path(str(resources.files("policies") / "casbin" / "model.conf"))


class StoreAdapter(persist.Adapter):  # type: ignore[misc]
    """Casbin rules in the hub's database, loaded only: RoleService stores every change itself, in one locked
    transaction with its checks and the version (see RoleService._change), so the enforcer runs with auto-save
    off and never writes through an adapter."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load_policy(self, model: Any) -> None:
        with Session(self.engine) as session:
            for rule in session.exec(select(CasbinRule).order_by(CasbinRule.id)).scalars():  # type: ignore[arg-type,call-overload]
                values = [v for v in (rule.v0, rule.v1, rule.v2, rule.v3, rule.v4, rule.v5) if v]
                persist.load_policy_line(", ".join([rule.ptype, *values]), model)


ROLES_LOCK = 0x6875622D726F6C65  # pg_advisory_xact_lock key ("hub-role")
_RULES: Table = CasbinRule.__table__  # type: ignore[attr-defined]
_VERSIONS: Table = PolicyVersion.__table__  # type: ignore[attr-defined]


def _columns(rule: Sequence[str]) -> dict[str, str]:
    values = [*rule[1:], "", "", "", "", "", ""][:6]
    return {"ptype": rule[0], **{f"v{i}": v for i, v in enumerate(values)}}


def _stored(connection: Connection, ptype: str, column: str, values: set[str]) -> set[tuple[str, ...]]:
    """The stored rules of ``ptype`` whose ``column`` holds one of ``values``, as Casbin holds them (trailing
    empty values left out): one read for all that a change checks."""
    c = _RULES.c
    query = select(c.v0, c.v1, c.v2, c.v3, c.v4, c.v5).where(c.ptype == ptype, c[column].in_(values))
    found: set[tuple[str, ...]] = set()
    for row in connection.execute(query):
        rule = list(row)
        while rule and not rule[-1]:
            rule.pop()
        found.add(tuple(rule))
    return found


def _insert(connection: Connection, rules: Sequence[Sequence[str]]) -> None:
    if rules:
        connection.execute(insert(_RULES), [_columns(rule) for rule in rules])


def _bump(connection: Connection) -> int:
    """Move the roles' version on ``connection`` (in its transaction); the version it had before."""
    c = _VERSIONS.c
    found = connection.execute(select(c.version).where(c.name == "roles")).scalar()
    if found is None:
        connection.execute(insert(_VERSIONS).values(name="roles", version=1))
        return 0
    connection.execute(update(_VERSIONS).where(c.name == "roles").values(version=int(found) + 1))
    return int(found)


class RoleService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enforcer = casbin.Enforcer(str(model_path()), StoreAdapter(engine))
        # Changes are stored by _change, in its own transaction; the enforcer only keeps the copy in memory.
        self.enforcer.enable_auto_save(False)
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

    def reload(self) -> None:
        with self._lock:
            self._reload_locked()

    def _reload_locked(self) -> None:
        # The version first: a change committed between the two reads is then reloaded again at the next
        # check, rather than taken as already loaded.
        version = self._stored_version()
        self.enforcer.load_policy()
        self._forget()
        self._version = version

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
        wanted = [
            ("p", role, agency, obj, act) for role, permissions in ROLE_PERMISSIONS.items() for obj, act in permissions
        ]
        self._maybe_reload()
        if all(self.enforcer.has_policy(*rule[1:]) for rule in wanted):
            return  # every start installs every agency: no transaction, and no version move for other workers

        def in_database(connection: Connection) -> list[tuple[str, ...]]:
            stored = _stored(connection, "p", "v1", {agency})
            missing: list[tuple[str, ...]] = [rule for rule in wanted if rule[1:] not in stored]
            _insert(connection, missing)
            return missing

        def in_memory(missing: list[tuple[str, ...]]) -> None:
            if missing:
                self.enforcer.add_policies([list(r[1:]) for r in missing])

        self._change(in_database, in_memory)

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
        self.assign_all([(principal, role, agency)])

    def assign_all(self, assignments: Sequence[tuple[str, str, str]]) -> None:
        """Give each (principal, role, agency), in one change; refused as a whole if any breaks separation of
        duties, which is checked against the rules as stored, under the rules' write lock (see :meth:`_change`):
        an auditor role given by another worker a moment ago counts, however recently this one reloaded."""
        for _, role, _ in assignments:
            if role not in ROLES:
                raise PolicyInputError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")

        def in_database(connection: Connection) -> list[tuple[str, ...]]:
            principals = {principal for principal, _, _ in assignments}
            stored = _stored(connection, "g", "v0", principals)
            held: dict[str, set[str]] = {principal: set() for principal in principals}
            for rule in stored:
                held[rule[0]].add(rule[1])
            added: list[tuple[str, ...]] = []
            for principal, role, agency in assignments:
                roles = held[principal] | {role}
                if roles & ADMIN_ROLES and roles & AUDITOR_ROLES:
                    raise SeparationOfDuties(
                        f"principal {principal} cannot hold both an admin and an auditor role (PIPL 51, GB/T 35273)"
                    )
                held[principal] = roles
                if (principal, role, agency) not in stored:
                    stored.add((principal, role, agency))
                    added.append(("g", principal, role, agency))
            _insert(connection, added)
            return added

        def in_memory(added: list[tuple[str, ...]]) -> None:
            if added:
                self.enforcer.add_grouping_policies([list(r[1:]) for r in added])

        self._change(in_database, in_memory)

    def revoke(self, principal: str, role: str, agency: str) -> None:
        def in_database(connection: Connection) -> None:
            c = _RULES.c
            connection.execute(delete(_RULES).where(c.ptype == "g", c.v0 == principal, c.v1 == role, c.v2 == agency))

        self._change(in_database, lambda _: self.enforcer.remove_grouping_policy(principal, role, agency))

    def _change(self, in_database: Callable[[Connection], T], in_memory: Callable[[T], object]) -> T:
        """One change to the rules, in one order across processes, and this process's copy current after it.

        The transaction first takes the rules' write lock (PostgreSQL: an advisory lock; SQLite: the database's
        write lock, taken before anything is read), so what ``in_database`` checks is what it changes, whatever
        other workers do meanwhile. The version moves in the same commit. Then, if this process's copy was
        current before the change, the change is applied to it (``in_memory``, with what ``in_database``
        returned); if another process had changed the rules since this one last looked, the copy is reloaded:
        taking the new version number alone would have left that change out of it for good.
        """
        with self._lock:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLES_LOCK})
                else:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                result = in_database(connection)
                before = _bump(connection)
            if before == self._version:
                in_memory(result)  # auto-save is off: this changes the enforcer's copy only
                self._version = before + 1
                self._forget()
            else:
                self._reload_locked()
        return result

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
