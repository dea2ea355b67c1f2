"""Partner agencies' request-signing keys: registered with a validity period, revocable, looked up by keyid.

A key belongs to one agency; the agency a signed request acts for is the key's agency, never a
claim in the request. Lookups are cached for a few seconds so a revocation takes effect across
processes within that bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from audit.entries import Actor, EntryDraft
from hub.errors import HubError
from hub.store.tables import AgencyKeyRow

AuditSink = Callable[[EntryDraft], object]
CACHE_SECONDS = 2.0


class KeyRegistryError(HubError):
    """A key registration or revocation is invalid."""


class UnknownKey(HubError):
    """No key is registered under this keyid."""


class KeyNotValid(HubError):
    """The key is revoked, not yet valid or expired."""


@dataclass(frozen=True)
class PartnerKey:
    key_id: str
    agency: str
    public_key: Ed25519PublicKey


class PartnerKeyRegistry:
    def __init__(self, engine: Engine, audit: AuditSink | None, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock
        self._cache: dict[str, tuple[float, AgencyKeyRow | None]] = {}
        self._lock = threading.Lock()

    def register(
        self, agency: str, key_id: str, public_key: bytes, valid_from: int, valid_until: int, actor: Actor
    ) -> AgencyKeyRow:
        if len(public_key) != 32:
            raise KeyRegistryError("an Ed25519 public key is 32 bytes")
        Ed25519PublicKey.from_public_bytes(public_key)
        if valid_until <= valid_from:
            raise KeyRegistryError("valid_until must be after valid_from")
        row = AgencyKeyRow(
            key_id=key_id,
            agency=agency,
            public_key=public_key,
            valid_from=valid_from,
            valid_until=valid_until,
            registered_by=actor.principal,
        )
        with Session(self.engine) as session:
            if session.get(AgencyKeyRow, key_id) is not None:
                raise KeyRegistryError(f"key id {key_id!r} is already registered")
            session.add(row)
            session.commit()
            session.refresh(row)
        self._forget(key_id)
        if self.audit is not None:
            self.audit(
                EntryDraft(
                    type="admin",
                    actor=actor,
                    detail={"operation": "partner_key.register", "key_id": key_id, "agency": agency},
                )
            )
        return row

    def revoke(self, key_id: str, reason: str, actor: Actor) -> AgencyKeyRow:
        if not reason.strip():
            raise KeyRegistryError("revoking a key needs a reason")
        with Session(self.engine) as session:
            row = session.get(AgencyKeyRow, key_id)
            if row is None:
                raise UnknownKey(f"no key registered under {key_id!r}")
            if row.agency != actor.agency:
                raise KeyRegistryError(f"{actor.principal} may not revoke another agency's key")
            if row.revoked_at is None:
                row.revoked_at = int(self.clock())
                row.revoked_reason = reason
                session.add(row)
                session.commit()
                session.refresh(row)
        self._forget(key_id)
        if self.audit is not None:
            self.audit(
                EntryDraft(type="admin", actor=actor, detail={"operation": "partner_key.revoke", "key_id": key_id})
            )
        return row

    def list(self, agency: str | None = None) -> list[AgencyKeyRow]:
        query = select(AgencyKeyRow)
        if agency is not None:
            query = query.where(AgencyKeyRow.agency == agency)
        with Session(self.engine) as session:
            return list(session.exec(query.order_by(col(AgencyKeyRow.key_id))).all())

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _row(self, key_id: str) -> AgencyKeyRow | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        with Session(self.engine) as session:
            row = session.get(AgencyKeyRow, key_id)
            if row is not None:
                session.expunge(row)
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key_id] = (now, row)
        return row

    def resolve(self, key_id: str) -> PartnerKey:
        """The usable key registered under ``key_id``; raises :class:`UnknownKey` or :class:`KeyNotValid`."""
        row = self._row(key_id)
        if row is None:
            raise UnknownKey(f"unknown key id {key_id!r}")
        now = self.clock()
        if row.revoked_at is not None and row.revoked_at <= now:
            raise KeyNotValid(f"key {key_id!r} was revoked")
        if not row.valid_from <= now < row.valid_until:
            raise KeyNotValid(f"key {key_id!r} is outside its validity period")
        return PartnerKey(row.key_id, row.agency, Ed25519PublicKey.from_public_bytes(row.public_key))
